"""Backends for the queue contract tests: every contract test runs on the in-memory twin and on Azure
Storage queues (Azurite). A Harness adds the test-only moves each backend needs (the raw wire)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest

from devhost.queues import RequestQueue
from devhost.queues.memory import MemoryQueue
from devhost.queues.storage import StorageQueue


@dataclass
class Harness:
    name: str
    make: Callable[..., RequestQueue]  # make(**QueueConfig overrides) → a fresh, isolated queue
    raw_texts: Callable[[RequestQueue, bool], list[str]]  # visible message texts as stored on the wire
    put_raw: Callable[[RequestQueue, str, bool], None]  # another producer's message text


def _memory_harness() -> Harness:
    def make(max_dequeue_count: int = 5) -> RequestQueue:
        return MemoryQueue(max_dequeue_count=max_dequeue_count)

    return Harness(
        "memory", make,
        lambda q, poison: cast(MemoryQueue, q).raw_texts(poison=poison),
        lambda q, text, poison: cast(MemoryQueue, q).put_raw(text, poison=poison))


def _azure_harness(make: Callable[..., RequestQueue]) -> Harness:
    def client(queue: RequestQueue, poison: bool) -> Any:
        storage = cast(StorageQueue, queue)
        return storage.poison_client if poison else storage.main_client  # no encode/decode policy

    def put_raw(queue: RequestQueue, text: str, poison: bool) -> None:
        queue.count(poison=poison)  # creates the queue on first use
        client(queue, poison).send_message(text)

    return Harness(
        "azure", make,
        lambda q, poison: [m.content for m in client(q, poison).peek_messages(max_messages=32)],
        put_raw)


@pytest.fixture(params=["memory", pytest.param("azure", marks=pytest.mark.azurite)])
def harness(request: pytest.FixtureRequest) -> Harness:
    """The in-memory twin, or Azure Storage queues on Azurite (each test its own queue)."""
    if request.param == "azure":
        return _azure_harness(request.getfixturevalue("storage_queue_factory"))
    return _memory_harness()


@pytest.fixture
def queue(harness: Harness) -> RequestQueue:
    return harness.make()
