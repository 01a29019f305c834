"""State factory: Settings → State (queue, locks, history, owned index) on Azure Storage or in memory.

Edge. ``AzureWebJobsStorage`` (a connection string, incl. ``UseDevelopmentStorage=true``) wins, then
``AzureWebJobsStorage__accountName`` (identity-based, DefaultAzureCredential); else in memory.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from importer.settings import Settings, SettingsError
from importer.state.memory import MemoryLocks, MemoryOwnedIndex, MemoryQueue, MemoryRunHistory
from importer.state.ports import LockManager, OwnedIndex, RequestQueue, RunHistory

if TYPE_CHECKING:
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient
    from azure.storage.queue import QueueClient

logger = logging.getLogger(__name__)

# Azurite's well-known development account (public, documented; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_CONNECTION = (
    f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{AZURITE_ACCOUNT};"
    f"QueueEndpoint=http://127.0.0.1:10001/{AZURITE_ACCOUNT};"
    f"TableEndpoint=http://127.0.0.1:10002/{AZURITE_ACCOUNT};"
)
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")


@dataclass(frozen=True)
class StateConfig:
    """Names and timings. Defaults are production's; tests pass unique names per test."""

    queue: str = "reconcile-requests"
    poison_queue: str = ""  # empty: f"{queue}-poison", the name the Functions host uses
    container: str = "locks"
    table: str = "runs"
    lease_s: int = 60
    renew_every_s: float | None = None  # None: lease_s / 3
    poll_s: float = 1.0  # how often a waiting hold() retries
    max_dequeue_count: int = 5  # keep equal to host.json extensions.queues.maxDequeueCount

    @property
    def poison(self) -> str:
        return self.poison_queue or f"{self.queue}-poison"


@dataclass(frozen=True)
class State:
    queue: RequestQueue
    locks: LockManager
    history: RunHistory
    backend: str  # "memory" | "azure-storage"
    where: str = ""  # endpoint, never a key: for logs and `explain`
    owned: OwnedIndex | None = None  # which account owns an object (events on our objects)


def memory_state(config: StateConfig | None = None) -> State:
    config = config or StateConfig()
    return State(MemoryQueue(max_dequeue_count=config.max_dequeue_count),
                 MemoryLocks(lease_s=config.lease_s, renew_every_s=config.renew_every_s),
                 MemoryRunHistory(), "memory", "in-process memory", MemoryOwnedIndex())


def normalise_connection(connection: str) -> str:
    """``UseDevelopmentStorage=true`` → Azurite's default endpoints; anything else as given."""
    parts = dict(p.split("=", 1) for p in connection.strip().rstrip(";").split(";") if "=" in p)
    flags = {k.strip().lower(): v.strip().lower() for k, v in parts.items()}
    if flags.get("usedevelopmentstorage") == "true":
        return AZURITE_CONNECTION
    return connection.strip()


def build_state(settings: Settings, config: StateConfig | None = None) -> State:
    """Choose and build the state backend (no network: resources are created on first use)."""
    config = config or StateConfig()
    if settings.storage_connection.strip():
        state = _from_connection(normalise_connection(settings.storage_connection), config)
    elif settings.storage_account_name.strip():
        state = _from_identity(settings.storage_account_name.strip(), settings, config)
    else:
        state = memory_state(config)
    logger.info("state backend: %s (%s)", state.backend, state.where)
    return state


def _from_connection(connection: str, config: StateConfig) -> State:
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient
    from azure.storage.queue import QueueClient

    try:
        main = QueueClient.from_connection_string(connection, config.queue)
        poison = QueueClient.from_connection_string(connection, config.poison)
        container = ContainerClient.from_connection_string(connection, config.container)
        table = TableClient.from_connection_string(connection, table_name=config.table)
    except (ValueError, KeyError) as exc:  # never echo the string: it holds the key
        raise SettingsError(f"AzureWebJobsStorage is not a usable storage connection string "
                            f"({type(exc).__name__}); set all of Blob/Queue/TableEndpoint or "
                            "AccountName+EndpointSuffix") from None
    return _assemble(main, poison, container, table, config)


def _from_identity(account: str, settings: Settings, config: StateConfig) -> State:
    from azure.data.tables import TableClient
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import ContainerClient
    from azure.storage.queue import QueueClient

    if not _ACCOUNT_NAME.match(account):
        raise SettingsError(f"AzureWebJobsStorage__accountName={account!r}: 3–24 lowercase letters or digits")
    # A user-assigned identity is named like the Functions host names it, once settings declares it.
    client_id = settings.raw.get("AzureWebJobsStorage__clientId", "") or None
    credential = DefaultAzureCredential(managed_identity_client_id=client_id)
    queue_url, blob_url = f"https://{account}.queue.core.windows.net", f"https://{account}.blob.core.windows.net"
    table_url = f"https://{account}.table.core.windows.net"
    main = QueueClient(queue_url, config.queue, credential=credential)
    poison = QueueClient(queue_url, config.poison, credential=credential)
    container = ContainerClient(blob_url, config.container, credential=credential)
    table = TableClient(table_url, config.table, credential=credential)
    return _assemble(main, poison, container, table, config)


def _assemble(main: QueueClient, poison: QueueClient, container: ContainerClient, table: TableClient,
              config: StateConfig) -> State:
    from importer.state.storage import BlobLeaseLocks, StorageQueue, TableOwnedIndex, TableRunHistory

    return State(
        StorageQueue(main, poison, max_dequeue_count=config.max_dequeue_count),
        BlobLeaseLocks(container, lease_s=config.lease_s, renew_every_s=config.renew_every_s,
                       poll_s=config.poll_s),
        TableRunHistory(table), "azure-storage",
        f"queue {main.url}, blob {container.url}, table {table.url}/{table.table_name}",
        TableOwnedIndex(table))
