"""Backends for the state contract tests: every contract test runs on the in-memory twins and on
Azure Storage (Azurite). A Harness adds the few test-only moves each backend needs (raw wire, steal)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest

from importer.state import State
from importer.state.factory import StateConfig
from importer.state.memory import MemoryLocks, MemoryOwnedIndex, MemoryQueue, MemoryRunHistory
from importer.state.storage import BlobLeaseLocks, StorageQueue

ACCOUNT = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-ai/providers/" \
          "Microsoft.CognitiveServices/accounts/{name}"


def account(name: str = "") -> str:
    return ACCOUNT.format(name=name or f"acct-{uuid.uuid4().hex[:8]}")


class FakeClock:
    """Real monotonic time plus an offset the test can push forward (memory twins only)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Harness:
    name: str
    make: Callable[..., State]  # make(**StateConfig overrides) → a fresh, isolated State
    raw_texts: Callable[[State, bool], list[str]]  # visible message texts as stored on the wire
    put_raw: Callable[[State, str, bool], None]  # another producer's message text
    steal: Callable[[State, str], None]  # let the lease lapse and another holder take it


def _memory_make(clock: FakeClock) -> Callable[..., State]:
    def make(**overrides: Any) -> State:
        config = StateConfig(**{"lease_s": 15, **overrides})
        return State(MemoryQueue(max_dequeue_count=config.max_dequeue_count, clock=clock),
                     MemoryLocks(lease_s=config.lease_s, renew_every_s=config.renew_every_s, clock=clock),
                     MemoryRunHistory(), "memory", owned=MemoryOwnedIndex())
    return make


def _memory_harness() -> Harness:
    clock = FakeClock()

    def steal(state: State, key: str) -> None:
        locks = cast(MemoryLocks, state.locks)
        clock.advance(locks.lease_s + 1)
        assert locks._acquire(key.lower()) is not None

    return Harness(
        "memory", _memory_make(clock),
        lambda s, poison: cast(MemoryQueue, s.queue).raw_texts(poison=poison),
        lambda s, text, poison: cast(MemoryQueue, s.queue).put_raw(text, poison=poison),
        steal)


def _azure_harness(make: Callable[..., State]) -> Harness:
    def client(state: State, poison: bool) -> Any:
        queue = cast(StorageQueue, state.queue)
        return queue.poison_client if poison else queue.main_client  # no encode/decode policy

    def steal(state: State, key: str) -> None:
        from azure.storage.blob import BlobLeaseClient

        locks = cast(BlobLeaseLocks, state.locks)
        blob = locks.container.get_blob_client(locks.blob_name(key))
        BlobLeaseClient(blob).break_lease(lease_break_period=0)
        BlobLeaseClient(blob).acquire(lease_duration=-1)

    def put_raw(state: State, text: str, poison: bool) -> None:
        state.queue.count(poison=poison)  # creates the queue on first use
        client(state, poison).send_message(text)

    return Harness(
        "azure", make,
        lambda s, poison: [m.content for m in client(s, poison).peek_messages(max_messages=32)],
        put_raw, steal)


@pytest.fixture(params=["memory", pytest.param("azure", marks=pytest.mark.azurite)])
def harness(request: pytest.FixtureRequest) -> Harness:
    if request.param == "memory":
        return _memory_harness()
    return _azure_harness(request.getfixturevalue("storage_state_factory"))


@pytest.fixture
def state(harness: Harness) -> State:
    return harness.make()
