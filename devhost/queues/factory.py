"""Queue factory: Settings → the reconcile-request queue, on the storage the product's state uses.

The same settings as ``importer.state.build_state`` (``storage_account``): ``AzureWebJobsStorage`` (a
connection string, incl. ``UseDevelopmentStorage=true`` for Azurite) wins, then
``AzureWebJobsStorage__accountName`` (identity-based); else in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from devhost.queues.memory import MemoryQueue
from devhost.queues.ports import RequestQueue
from importer.service import QUEUE_NAME
from importer.settings import Settings
from importer.state.factory import storage_account

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueConfig:
    """Names and the retry limit. Defaults are what function_app.py binds and host.json sets; tests
    pass unique names per test."""

    queue: str = QUEUE_NAME
    poison_queue: str = ""  # empty: f"{queue}-poison", the name the Functions host uses
    max_dequeue_count: int = 5  # keep equal to host.json extensions.queues.maxDequeueCount

    @property
    def poison(self) -> str:
        return self.poison_queue or f"{self.queue}-poison"


def build_queue(settings: Settings, config: QueueConfig | None = None) -> RequestQueue:
    """Choose and build the queue (no network: the queues are created on first use)."""
    config = config or QueueConfig()
    account = storage_account(settings)
    if account is None:
        logger.info("queue: in-process memory")
        return MemoryQueue(max_dequeue_count=config.max_dequeue_count)
    from azure.storage.queue import QueueClient

    from devhost.queues.storage import StorageQueue

    main = account.client(QueueClient, "queue", config.queue)
    poison = account.client(QueueClient, "queue", config.poison)
    logger.info("queue: %s (poison %s)", main.url, poison.url)
    return StorageQueue(main, poison, max_dequeue_count=config.max_dequeue_count)
