"""Event storm: many duplicated, shuffled, out-of-order events through the function app's entry points.

The same estate and the same ARM changes are made twice: once the recorded events are delivered as
a storm (each distinct event ×5, shuffled, deletes first) to ``on_resource_event`` → queue →
``reconcile_worker`` on several threads; once a single clean fleet pass reconciles the changes. The
clean pass's writes are the minimum; the storm must end in the same state with few more writes.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devhost import seed
from tests.faults.conftest import ACCOUNTS, Estates, FaultWorld, account_id, seed_estate

DUPLICATES = 5
MODEL = ("gpt-4o", "2024-11-20", "OpenAI")


def storm_accounts(n: int) -> tuple[dict[str, Any], list[str]]:
    """``n`` accounts: the first half exist (2 deployments each) and are imported before the storm,
    the second half are created during it. Returns (existing accounts for seeding, new names)."""
    half = n // 2
    existing = {f"old-{i:03d}": ("OpenAI", (("dep-a", *MODEL), ("dep-b", *MODEL))) for i in range(half)}
    return existing, [f"new-{i:03d}" for i in range(n - half)]


def make_changes(world: FaultWorld, existing: list[str], new: list[str]) -> None:
    """Four events per account: an old account gains 2 deployments, loses one, and is re-tagged
    (every fifth is deleted instead); a new account is created with 3 deployments."""
    cs = world.clients.cognitive(seed.SUBSCRIPTION)
    for i, name in enumerate(existing):
        aid = account_id(name)
        for dep in ("dep-c", "dep-d"):
            seed.create_deployment(world.clients, aid, dep, model=MODEL[0], version=MODEL[1])
        cs.deployments.begin_delete(seed.AI_GROUP, name, "dep-a").result()
        if i % 5 == 0:
            cs.accounts.begin_delete(seed.AI_GROUP, name).result()
        else:
            seed.create_account(world.clients, name=name, kind="OpenAI", tags={"team": f"t{i}"})
    for name in new:
        seed.create_account(world.clients, name=name, kind="OpenAI")
        for dep in ("dep-a", "dep-b", "dep-c"):
            seed.create_deployment(world.clients, account_id(name), dep, model=MODEL[0], version=MODEL[1])


@dataclass
class StormResult:
    accounts: int
    distinct_events: int
    delivered: int
    enqueued: int
    storm_writes: int
    minimum_writes: int
    storm_reads: int
    minimum_reads: int
    messages_processed: int
    worker_errors: list[str] = field(default_factory=list)
    poisoned: int = 0
    seconds: float = 0.0
    storm_state: dict[str, Any] = field(default_factory=dict)
    clean_state: dict[str, Any] = field(default_factory=dict)
    storm_foreign: tuple[dict[str, str], dict[str, str]] = ({}, {})
    leftover_plans: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.storm_writes / max(1, self.minimum_writes)


def _prepared(estates: Estates, n: int) -> tuple[FaultWorld, dict[str, str], list[dict[str, Any]]]:
    existing, new = storm_accounts(n)
    estates.sim.reset()
    world = seed_estate(estates.sim, estates.clients, {**ACCOUNTS, **existing})
    runs = world.run_pass()
    assert all(r.ok for r in runs), [r.error for r in runs if r.error]
    world.sim.clear_events()
    make_changes(world, list(existing), new)
    events = world.sim.events()
    before = world.foreign()
    world.sim.log.clear()
    return world, before, events


def storm_order(events: list[dict[str, Any]], seed_value: int) -> list[dict[str, Any]]:
    """Each event ×5, shuffled, then every delete ahead of every write (stable)."""
    storm = [e for e in events for _ in range(DUPLICATES)]
    random.Random(seed_value).shuffle(storm)
    return sorted(storm, key=lambda e: 0 if e["eventType"].endswith("DeleteSuccess") else 1)


def run_storm(estates: Estates, n: int, *, workers: int = 4, seed_value: int = 7,
              setenv: Callable[[str, str], None]) -> StormResult:
    from devhost.host import deliver, indexed, work
    from devhost.queues.memory import MemoryQueue
    from importer import service
    from importer.state.factory import memory_state

    # The minimum: one clean pass from the same start to the same end.
    clean, _, _ = _prepared(estates, n)
    clean_runs = clean.run_pass()
    assert all(r.ok for r in clean_runs), [r.error for r in clean_runs if r.error]
    minimum, minimum_reads, clean_state = clean.writes(), clean.sim.log.reads(), clean.state()

    world, foreign_before, events = _prepared(estates, n)
    for k, v in world.env.items():
        setenv(k, v)
    state, queue = memory_state(), MemoryQueue()
    rec = world.reconciler()
    rec.locks, rec.history = state.locks, state.history
    service.install(service.Service(rec.settings, rec, state))
    indexed()  # once, before the worker threads: azure.functions' indexing is not thread-safe
    storm = storm_order(events, seed_value)
    delivering = threading.Event()
    delivering.set()
    errors: list[str] = []
    processed = [0]
    lock = threading.Lock()

    def pump() -> None:
        idle = 0
        while True:
            batch = queue.receive(1, visibility_timeout_s=60)
            if not batch:
                if not delivering.is_set() and queue.count() == 0:
                    idle += 1
                    if idle > 3:
                        return
                time.sleep(0.01)
                continue
            idle = 0
            handle, request = batch[0]
            raised = work(queue, handle, request, retry_delay_s=0.05)
            if raised is not None:  # the host: visible again, counts towards poison
                with lock:
                    errors.append(f"{type(raised).__name__}: {raised}")
            with lock:
                processed[0] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=pump, name=f"worker-{i}") for i in range(workers)]
    for t in threads:
        t.start()
    enqueued = 0
    try:
        for event in storm:
            if deliver(event, queue) is not None:
                enqueued += 1
    finally:
        delivering.clear()
        for t in threads:
            t.join(timeout=300)
        service.reset_service()
    seconds = time.monotonic() - started
    return StormResult(
        accounts=len(ACCOUNTS) + n, distinct_events=len(events), delivered=len(storm), enqueued=enqueued,
        storm_writes=world.writes(), minimum_writes=minimum, storm_reads=world.sim.log.reads(),
        minimum_reads=minimum_reads,
        messages_processed=processed[0], worker_errors=errors, poisoned=queue.count(poison=True),
        seconds=round(seconds, 2), storm_state=world.state(), clean_state=clean_state,
        storm_foreign=(foreign_before, world.foreign()), leftover_plans=world.plans_nothing())
