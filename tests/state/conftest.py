"""Backends for the state contract tests: every contract test runs on the in-memory twins and on
Azure Storage (Azurite). A Harness adds the test-only move each backend needs (steal a lease)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest

from importer.state import State
from importer.state.factory import StateConfig
from importer.state.memory import MemoryLocks, MemoryOwnedIndex, MemoryRunHistory
from importer.state.storage import BlobLeaseLocks

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
    steal: Callable[[State, str], None]  # let the lease lapse and another holder take it


def _memory_make(clock: FakeClock) -> Callable[..., State]:
    def make(**overrides: Any) -> State:
        config = StateConfig(**{"lease_s": 15, **overrides})
        return State(MemoryLocks(lease_s=config.lease_s, renew_every_s=config.renew_every_s, clock=clock),
                     MemoryRunHistory(), "memory", owned=MemoryOwnedIndex())
    return make


def _memory_harness() -> Harness:
    clock = FakeClock()

    def steal(state: State, key: str) -> None:
        locks = cast(MemoryLocks, state.locks)
        clock.advance(locks.lease_s + 1)
        assert locks._acquire(key.lower()) is not None

    return Harness("memory", _memory_make(clock), steal)


def _azure_harness(make: Callable[..., State]) -> Harness:
    def steal(state: State, key: str) -> None:
        from azure.storage.blob import BlobLeaseClient

        locks = cast(BlobLeaseLocks, state.locks)
        blob = locks.container.get_blob_client(locks.blob_name(key))
        BlobLeaseClient(blob).break_lease(lease_break_period=0)
        BlobLeaseClient(blob).acquire(lease_duration=-1)

    return Harness("azure", make, steal)


@pytest.fixture(params=["memory", pytest.param("azure", marks=pytest.mark.azurite)])
def harness(request: pytest.FixtureRequest) -> Harness:
    if request.param == "memory":
        return _memory_harness()
    return _azure_harness(request.getfixturevalue("storage_state_factory"))


@pytest.fixture
def state(harness: Harness) -> State:
    return harness.make()
