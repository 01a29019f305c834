"""Client-side pacing keeps a concurrent burst under ARM's read budget: throttled, not refused."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devhost import seed
from importer.azure.clients import Clients
from importer.azure.pacing import Bucket
from importer.settings import Settings


def _burst(sim: Any, clients: Clients, n: int) -> float:
    cs = clients.cognitive(seed.SUBSCRIPTION)
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: cs.accounts.get(seed.AI_GROUP, "contoso-aoai"), range(n)))
    return time.perf_counter() - start


def test_paced_burst_gets_no_429s_and_unpaced_server_is_not_slowed(armsim_factory: Any) -> None:
    sim = armsim_factory(throttling=True, read_burst=20, read_rate=100, exact_retry_after=True)
    clients = Clients(Settings.from_env({"IMPORTER_ARM_ENDPOINT": sim.url}))
    seed.create_account(clients, name="contoso-aoai")
    sim.log.clear()
    elapsed = _burst(sim, clients, 120)
    assert sim.log.reads() >= 120
    # A few 429s may race in before the first header arrives; after that the pacer holds the line.
    assert sim.log.count(status=429) <= 8, sim.log.count(status=429)
    assert elapsed >= (120 - 20 - 8) / 100 * 0.8  # the budget, not the server, set the pace
    assert clients.pacer.waited_s > 0

    free = armsim_factory()  # throttling off: no ratelimit headers, so no pacing at all
    free_clients = Clients(Settings.from_env({"IMPORTER_ARM_ENDPOINT": free.url}))
    seed.create_account(free_clients, name="contoso-aoai")
    _burst(free, free_clients, 120)
    assert free_clients.pacer.waited_s == 0


def test_bucket_debt_and_resync() -> None:
    b = Bucket(burst=10, rate=5)
    assert b.take(0.0) == 0.0  # inactive until ARM speaks
    b.sync(2, 0.0)
    assert b.take(0.0) == 0.0 and b.take(0.0) == 0.0
    assert b.take(0.0) == 1 / 5  # one token in debt: wait 0.2 s
    b.sync(0, 1.0)  # ARM says none left, whatever we thought
    assert b.take(1.0) == 1 / 5
