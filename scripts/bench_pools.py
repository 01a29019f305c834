"""Pools, measured through the stand-in gateway (docs/benchmarks.md, "Pools").

    python scripts/bench_pools.py [--rate 30] [--seconds 10] [--out docs/bench/pools.json]

1. Three accounts serve gpt-4o: acct-ptu (ProvisionedManaged), acct-a and acct-b (Standard, capacity
   3:1). Each backend gets a capacity in the stand-in (a ``rate`` fault on the backend: requests beyond
   it get a 429 with Retry-After) of PTU 20/s, acct-a 15/s, acct-b 5/s. A steady load above the
   provisioned member's capacity goes through the unified API ``ai/pool/openai`` and, side by side,
   the same load through acct-ptu's own API: client-visible 429 rate and each member's share.
2. ARM round trips from a deployment event to the pool updated (``reconcile(account,
   trigger="event")``, 40 ms of ARM latency; requests in flight together count once).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from armsim.server import Sim  # noqa: E402
from devhost import seed  # noqa: E402
from importer.azure.clients import Clients  # noqa: E402
from importer.fleet import enumerate_estate, run_pass  # noqa: E402
from importer.model import AccountRef  # noqa: E402
from importer.reconcile import Reconciler, build_reconciler  # noqa: E402
from importer.settings import Settings  # noqa: E402

SUB = seed.SUBSCRIPTION
MEMBERS = (("acct-ptu", "ProvisionedManaged", 100, 20.0), ("acct-a", "Standard", 300, 15.0),
           ("acct-b", "Standard", 100, 5.0))
CHAT = "/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
LATENCY = 0.04


def _call(url: str, key: str) -> tuple[int, str]:
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "api-key": key})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.headers.get("x-armsim-backend-url", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("x-armsim-backend-url", "")


def load(url: str, key: str, rate: float, seconds: float) -> dict[str, Any]:
    """``rate`` requests a second for ``seconds``, each sent at its slot on its own thread."""
    statuses: Counter[int] = Counter()
    served: Counter[str] = Counter()
    lock = threading.Lock()
    threads = []

    def one() -> None:
        status, backend = _call(url, key)
        with lock:
            statuses[status] += 1
            if status == 200:
                served[next((n for n, *_ in MEMBERS if f"{n}." in backend), backend)] += 1

    start = time.monotonic()
    total = int(rate * seconds)
    for i in range(total):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=one)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    ok = statuses[200]
    return {"requests": total, "statuses": dict(sorted(statuses.items())),
            "client_429_rate": round(statuses[429] / total, 3),
            "share": {name: round(served[name] / ok, 3) if ok else 0 for name, *_ in MEMBERS}}


def event_round_trips(sim: Sim, rec: Reconciler, ref: AccountRef, change: str) -> dict[str, Any]:
    sim.log.clear()
    rule = sim.faults.latency(LATENCY, path="^/subscriptions/")
    started = time.perf_counter()
    run = rec.reconcile(ref, trigger="event")
    wall = time.perf_counter() - started
    sim.faults.remove(rule)
    assert run.ok, run.error
    pool_changes = [c for c in (run.pools or {}).get("changes", [])]
    return {"case": change, "round_trips": sim.log.round_trips(), "requests": len(sim.log),
            "reads": sim.log.reads(), "writes": sim.log.writes(), "wall_s": round(wall, 2),
            "pool_changes": [f"{c['action']} {c['kind']} {c['id']}" for c in pool_changes]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=30.0, help="requests per second (default 30)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each load (default 10)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    with Sim(gateway=True) as sim:
        settings = Settings.from_env({"IMPORTER_ARM_ENDPOINT": sim.url, "IMPORTER_APIM_ID": seed.apim_id(),
                                      "IMPORTER_SCOPES": f"/subscriptions/{SUB}",
                                      "IMPORTER_POOL_PATH": "ai/pool", "IMPORTER_PROBE": "off"})
        clients = Clients(settings)
        seed.create_apim(clients)
        for name, sku, capacity, _ in MEMBERS:
            seed.create_account(clients, name=name, kind="OpenAI")
            seed.create_deployment(clients, seed.account_id(SUB, seed.AI_GROUP, name), "gpt-4o", sku=sku,
                                   capacity=capacity)
        rec = build_reconciler(settings, clients=clients, apim_ttl_s=60)
        runs = run_pass(rec, enumerate_estate(rec))
        assert all(r.ok for r in runs), [r.error for r in runs]
        apim = clients.apim(SUB)
        from azure.mgmt.apimanagement import models

        apim.subscription.create_or_update(seed.APIM_GROUP, seed.APIM_NAME, "bench",
                                           models.SubscriptionCreateParameters(
                                               scope="/apis", display_name="bench", state="active"))
        key = str(apim.subscription.list_secrets(seed.APIM_GROUP, seed.APIM_NAME, "bench").primary_key)
        gateway = apim.api_management_service.get(seed.APIM_GROUP, seed.APIM_NAME).gateway_url

        def capacities() -> None:
            sim.faults.clear()
            assert sim.gateway is not None
            sim.gateway.pools.reset()
            for name, _, _, per_second in MEMBERS:
                sim.faults.rate(per_second, path=f"{name}\\.", on="backend")

        capacities()
        single = load(f"{gateway}/acct-ptu/openai{CHAT}", key, args.rate, args.seconds)
        capacities()
        pooled = load(f"{gateway}/ai/pool/openai{CHAT}", key, args.rate, args.seconds)
        sim.faults.clear()

        seed.create_deployment(clients, seed.account_id(SUB, seed.AI_GROUP, "acct-a"), "gpt-4o",
                               sku="Standard", capacity=100)
        acct_a = AccountRef.parse(seed.account_id(SUB, seed.AI_GROUP, "acct-a"))
        acct_b = AccountRef.parse(seed.account_id(SUB, seed.AI_GROUP, "acct-b"))
        rescale = event_round_trips(sim, rec, acct_a,
                                    "gpt-4o rescaled on an imported account (weights change)")
        seed.create_deployment(clients, seed.account_id(SUB, seed.AI_GROUP, "acct-b"), "gpt-4o-mini",
                               model="gpt-4o-mini", sku="Standard", capacity=10)
        new_name = event_round_trips(sim, rec, acct_b,
                                     "new deployment name on an imported account (new pool, policies)")
        noop = event_round_trips(sim, rec, acct_b, "the same event again (nothing to do)")
        clients.close()

    figures = {"load": {"rate_per_s": args.rate, "seconds": args.seconds,
                        "capacity_per_s": {n: c for n, *_, c in MEMBERS}},
               "single_account_api": single, "unified_pool_api": pooled,
               "event_to_pool": [rescale, new_name, noop]}
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
