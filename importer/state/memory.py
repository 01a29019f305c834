"""In-memory twins of the lease locks, the run history and the owned-object index: the CLI's state
when no storage is set, and the demo's and the tests'.

Thread-safe, one process. They keep what Azure Storage would keep (leases that expire unless renewed,
runs fitted to table limits) through the shared ``core`` and ``codec``.
"""

from __future__ import annotations

import builtins
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

from importer.run import RUN_ID, Run
from importer.state.codec import fit_run, roundtrip, run_timeline_key
from importer.state.core import hold_lease
from importer.state.ports import Lease, LockLost, RunNotFound

Clock = Callable[[], float]


class MemoryLocks:
    """LockManager twin: leases expire after ``lease_s`` on ``clock`` unless renewed, like blob
    leases; an expired lease can be renewed by its holder until someone else takes it."""

    def __init__(self, *, lease_s: float = 60, renew_every_s: float | None = None, poll_s: float = 0.02,
                 clock: Clock = time.monotonic) -> None:
        self.lease_s = lease_s
        self.renew_every_s = renew_every_s if renew_every_s is not None else lease_s / 3
        self.poll_s = poll_s
        self._clock = clock
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[str, float]] = {}  # key → (lease id, expires at)

    def hold(self, account_key: str, wait: bool = True,
             timeout_s: float = 60.0) -> AbstractContextManager[Lease]:
        key = account_key.lower()
        return hold_lease(
            key, try_acquire=lambda: self._acquire(key), renew=lambda lid: self._renew(key, lid),
            release=lambda lid: self._release(key, lid), wait=wait, timeout_s=timeout_s,
            poll_s=self.poll_s, lease_s=self.lease_s, renew_every_s=self.renew_every_s)

    def held(self, account_key: str) -> bool:
        """Whether a live lease exists on the key now."""
        with self._lock:
            entry = self._leases.get(account_key.lower())
            return entry is not None and entry[1] > self._clock()

    def _acquire(self, key: str) -> str | None:
        with self._lock:
            entry = self._leases.get(key)
            now = self._clock()
            if entry is not None and entry[1] > now:
                return None
            lease_id = str(uuid.uuid4())
            self._leases[key] = (lease_id, now + self.lease_s)
            return lease_id

    def _renew(self, key: str, lease_id: str) -> None:
        with self._lock:
            entry = self._leases.get(key)
            if entry is None or entry[0] != lease_id:
                raise LockLost(f"lease on {key} was taken by another holder")
            self._leases[key] = (lease_id, self._clock() + self.lease_s)

    def _release(self, key: str, lease_id: str) -> None:
        with self._lock:
            entry = self._leases.get(key)
            if entry is not None and entry[0] == lease_id:
                del self._leases[key]


class MemoryRunHistory:
    """RunHistory twin. Stores runs fitted and JSON round-tripped, exactly as the table returns them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}

    def record(self, run: Run) -> Run:
        stored = roundtrip(fit_run(run))
        with self._lock:
            self._runs[stored.run_id] = stored
        return stored

    def get(self, run_id: str) -> Run:
        with self._lock:
            run = self._runs.get(run_id) if isinstance(run_id, str) and RUN_ID.match(run_id) else None
        if run is None:
            raise RunNotFound(f"no run {run_id!r} in the history")
        return run

    def list(self, account: str | None = None, limit: int = 50) -> builtins.list[Run]:
        if limit <= 0:
            return []
        with self._lock:
            runs = builtins.list(self._runs.values())
        if account is not None:
            runs = [r for r in runs if r.account_key == account.lower()]
        return sorted(runs, key=run_timeline_key)[:limit]

    def last_for(self, account: str) -> Run | None:
        runs = self.list(account, 1)
        return runs[0] if runs else None


class MemoryOwnedIndex:
    """OwnedIndex twin: a dict of key → account id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[str, str] = {}
        self.writes = 0

    def remember(self, account: str, keys: Iterable[str]) -> int:
        with self._lock:
            new = {k.lower(): account for k in keys if self._owners.get(k.lower()) != account}
            self._owners.update(new)
            self.writes += len(new)
        return len(new)

    def owner(self, key: str) -> str | None:
        with self._lock:
            return self._owners.get(key.lower())
