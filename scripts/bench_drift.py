"""Drift benchmark: hand edits of the importer's objects, repaired by event through the function app.

A fleet of N accounts (3 deployments each, one product) is imported, then 100 hand edits spread over
the fleet (policy edits, deleted backends, deleted role assignments) are made by a person (the
stand-in's ``seed.OPERATOR_ID``) with 40 ms latency on every ARM request and ARM's per-subscription
throttle on. An Event Grid stand-in delivers every event the stand-in records (the importer's own
included) to ``on_resource_event``; 8 host workers run ``reconcile_worker`` off the queue. Measured:
edit → repair (the repairing run's end) p50/p95; requests raised by the importer's own writes (must be
0); then one timer pass (``drift_timer`` + the workers) for its read cost.

    python scripts/bench_drift.py [--accounts 500] [--edits 100] [--latency 0.04] \
        [--edit-interval 0] [--skip-timer] [--out docs/bench/drift.json]

Event Grid's own publish → deliver latency is not modelled: the figures are the importer's share.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from importer.events import OID_CLAIM as OID  # noqa: E402 - after the path set-up
from scripts.bench import (  # noqa: E402 - after the path set-up, like the other scripts
    APIM_GROUP,
    APIM_NAME,
    READ_BURST,
    READ_RATE,
    SUB,
    WRITE_BURST,
    WRITE_RATE,
    account_ids,
    code_version,
    seed_fleet,
    settings_env,
)

KINDS = ("policy edited", "backend deleted", "role assignment deleted")
EDITED_POLICY = ("<policies><inbound><base /><set-header name=\"x-edited-in-portal\" "
                 "exists-action=\"override\"><value>yes</value></set-header></inbound><backend><base />"
                 "</backend><outbound><base /></outbound><on-error><base /></on-error></policies>")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Host:
    """What the Functions host and Event Grid do around the functions: deliver each recorded event
    to ``on_resource_event`` (concurrently, as Event Grid pushes), put its output on the queue, and
    run ``reconcile_worker`` on ``workers`` threads (an exception makes the message visible again)."""

    def __init__(self, sim: Any, queue: Any, workers: int) -> None:
        from devhost.host import indexed

        self.sim, self.queue, self.workers = sim, queue, workers
        indexed()  # once, here: azure.functions' indexing is not safe to run from several threads
        self.cursor = 0
        self.delivered: list[tuple[str, str, bool]] = []  # (caller oid, operation, raised a request)
        self.raised: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="eventgrid")

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._events, daemon=True)]
        self._threads += [threading.Thread(target=self._work, daemon=True) for _ in range(self.workers)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self._pool.shutdown(wait=True)

    def _deliver(self, event: dict[str, Any]) -> None:
        from devhost.host import deliver

        queued = deliver(event, self.queue) is not None
        with self._lock:
            self.delivered.append((event["data"]["claims"].get(OID, ""), event["data"]["operationName"],
                                   queued))

    def _events(self) -> None:
        while not self._stop.is_set():
            events = self.sim.events()
            fresh, self.cursor = events[self.cursor:], len(events)
            for event in fresh:
                self._pool.submit(self._deliver, event)
            time.sleep(0.02)

    def _work(self) -> None:
        from devhost.host import work

        while not self._stop.is_set():
            batch = self.queue.receive(1, visibility_timeout_s=60)
            if not batch:
                time.sleep(0.02)
                continue
            handle, request = batch[0]
            raised = work(self.queue, handle, request, retry_delay_s=0.5)
            if raised is not None:  # the host: visible again after a short wait
                with self._lock:
                    self.raised.append(f"{type(raised).__name__}: {raised}"[:200])

    def idle(self) -> bool:
        return self.queue.count() == 0 and self.cursor == len(self.sim.events())


def make_edits(sim: Any, clients: Any, chosen: list[str], operator: str,
               interval: float = 0.0) -> list[dict[str, Any]]:
    """One hand edit per chosen account, kinds in turn, as a person would make them (SDK, over HTTP,
    with the stand-in's latency and throttle). Returns (account, kind, time ARM accepted the edit)."""
    from azure.mgmt.apimanagement.models import PolicyContract

    from importer.identity import api_id, backend_id
    from importer.model import AccountRef

    roles: dict[str, str] = {}
    for rid in sim.ids("Microsoft.Authorization/roleAssignments"):
        roles[rid.lower().split("/providers/microsoft.authorization/")[0]] = rid
    apim, auth = clients.apim(SUB), clients.authorization(SUB)
    edits = []
    for i, account in enumerate(chosen):
        if i and interval:
            time.sleep(interval)
        ref, kind = AccountRef.parse(account), KINDS[i % len(KINDS)]
        seen = len(sim.events())
        if kind == "policy edited":
            apim.api_policy.create_or_update(APIM_GROUP, APIM_NAME, api_id(ref), "policy",
                                             PolicyContract(value=EDITED_POLICY, format="xml"), if_match="*")
        elif kind == "backend deleted":
            apim.backend.delete(APIM_GROUP, APIM_NAME, backend_id(ref), if_match="*")
        else:
            auth.role_assignments.delete_by_id(roles[account.lower()])
        # The edit's time is when ARM accepted it: its event's eventTime (the person's own event).
        mine = next(e for e in sim.events()[seen:] if e["data"]["claims"].get(OID) == operator)
        edits.append({"account": account, "kind": kind, "edited_at": _event_time(mine["eventTime"])})
    return edits


def _event_time(value: str) -> float:
    """ARM's eventTime (seven fractional digits and a Z) → epoch seconds."""
    head, _, frac = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0"))


def repaired_at(state: Any, edit: dict[str, Any]) -> tuple[float, str] | None:
    """End of the first run for the edit's account that started after the edit and applied a change."""
    for run in reversed(state.history.list(account=edit["account"], limit=20)):
        if run.outcome == "applied" and _epoch(run.started_at) >= edit["edited_at"]:
            return _epoch(run.finished_at), run.trigger
    return None


def bench(n: int, edits: int, latency: float, workers: int, interval: float = 0.0,
          timer: bool = True) -> dict[str, Any]:
    from armsim.server import start
    from devhost import seed
    from devhost.host import fire_timer
    from devhost.queues.memory import MemoryQueue
    from importer import service
    from importer.azure.clients import LOCAL_PRINCIPAL_ID, Clients, StaticCredential
    from importer.fleet import enumerate_estate, run_pass
    from importer.model import AccountRef
    from importer.reconcile import build_reconciler
    from importer.settings import Settings
    from importer.state.factory import memory_state

    sim = start(page_size=100)
    result: dict[str, Any] = {"accounts": n, "edits": edits, "edit_interval_s": interval,
                              "latency_s": latency, "workers": workers,
                              "commit": code_version(), "cpus": os.cpu_count(),
                              "throttle": {"read_burst": READ_BURST, "read_rate": READ_RATE,
                                           "write_burst": WRITE_BURST, "write_rate": WRITE_RATE}}
    try:
        t0 = time.perf_counter()
        seed_fleet(sim, n)
        env = {**settings_env(sim), "IMPORTER_PROBE": "off", "AzureWebJobsStorage": "",
               "AzureWebJobsStorage__accountName": ""}
        os.environ.update(env)
        settings = Settings.from_env(env)
        state, queue = memory_state(), MemoryQueue()
        rec = build_reconciler(settings, state=state)
        onboard = run_pass(rec, enumerate_estate(rec))  # unmeasured: no latency, no throttle
        assert all(r.ok for r in onboard), [r.error for r in onboard if r.error][:3]
        service.install(service.Service(settings, rec, state))
        print(f"seeded and imported {n} accounts in {time.perf_counter() - t0:.0f} s", flush=True)

        people = Clients(settings, credential=StaticCredential(seed.OPERATOR_ID))
        chosen = account_ids(n)[:: max(1, n // edits)][:edits]
        sim.clear_events()
        sim.log.clear()
        sim.faults.latency(latency)
        sim.throttle.enable(read_burst=READ_BURST, read_rate=READ_RATE, write_burst=WRITE_BURST,
                            write_rate=WRITE_RATE)
        host = Host(sim, queue, workers)
        host.start()
        started = time.perf_counter()
        made = make_edits(sim, people, chosen, seed.OPERATOR_ID, interval)
        edit_span = time.perf_counter() - started
        deadline = time.time() + 600
        repairs: dict[int, tuple[float, str]] = {}
        while len(repairs) < len(made) and time.time() < deadline:
            for i, edit in enumerate(made):
                if i not in repairs and (hit := repaired_at(state, edit)) is not None:
                    repairs[i] = hit
            time.sleep(0.05)
        while not host.idle() and time.time() < deadline:  # the repairs' own events, delivered too
            time.sleep(0.1)
        time.sleep(1.0)
        host.stop()
        sim.faults.clear()
        sim.throttle.disable()
        entries = sim.log.entries
        own = [d for d in host.delivered if d[0] == LOCAL_PRINCIPAL_ID]
        by_people = [d for d in host.delivered if d[0] == seed.OPERATOR_ID]
        latencies = [repairs[i][0] - made[i]["edited_at"] for i in repairs]
        per_kind = {k: [repairs[i][0] - made[i]["edited_at"] for i in repairs if made[i]["kind"] == k]
                    for k in KINDS}
        runs = [r for r in state.history.list(limit=10000) if _epoch(r.started_at) >= made[0]["edited_at"]]
        unrepaired = [made[i]["account"] for i in range(len(made)) if i not in repairs]
        converged = sum(rec.reconcile(AccountRef.parse(e["account"]), dry_run=True).plan.empty for e in made)
        result["repair"] = {
            "edits_made": len(made), "edit_kinds": dict(Counter(e["kind"] for e in made)),
            "edits_span_s": round(edit_span, 2), "repaired": len(repairs),
            "unrepaired": unrepaired[:5], "converged_after": converged,
            "p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "p95_s": round(_pct(latencies, 0.95), 3) if latencies else None,
            "max_s": round(max(latencies), 3) if latencies else None,
            "per_kind_p50_s": {k: round(statistics.median(v), 3) for k, v in per_kind.items() if v},
            "repaired_by": dict(Counter(t for _, t in repairs.values())),
            "events_delivered": len(host.delivered),
            "events_from_edits": len(by_people),
            "requests_from_edits": sum(d[2] for d in by_people),
            "events_from_importer": len(own),
            "requests_from_importer_events": sum(d[2] for d in own),
            "importer_writes": len(own),  # every write the stand-in serves raises one event
            "runs": len(runs), "run_outcomes": dict(Counter(r.outcome for r in runs)),
            "arm_reads": sum(1 for e in entries if e.kind == "read"),
            "arm_writes": sum(1 for e in entries if e.kind == "write"),
            "throttled_429": sum(1 for e in entries if e.status == 429),
            "worker_errors": host.raised[:5],
        }
        print(json.dumps(result["repair"], indent=1), flush=True)
        if not timer:
            people.close()
            service.reset_service()
            return result

        # The timer pass through the function app: drift_timer enqueues every account, the workers
        # read each for themselves. Same latency and throttle, buckets rested.
        sim.log.clear()
        sim.clear_events()
        sim.faults.latency(latency)
        sim.throttle.enable(read_burst=READ_BURST, read_rate=READ_RATE, write_burst=WRITE_BURST,
                            write_rate=WRITE_RATE)
        host = Host(sim, queue, workers)
        started = time.perf_counter()
        enqueued = fire_timer(queue)  # the timer's messages on the queue, as the host would put them
        host.start()
        while queue.count() and time.perf_counter() - started < 1800:
            time.sleep(0.2)
        time.sleep(1.0)
        host.stop()
        wall = time.perf_counter() - started
        entries = sim.log.entries
        sim.faults.clear()
        sim.throttle.disable()
        reads = sum(1 for e in entries if e.kind == "read")
        result["timer"] = {
            "enqueued": enqueued, "wall_s": round(wall, 1), "arm_reads": reads,
            "reads_per_account": round(reads / n, 2),
            "arm_writes": sum(1 for e in entries if e.kind == "write"),
            "throttled_429": sum(1 for e in entries if e.status == 429),
            "read_floor_s": round(max(0.0, reads - READ_BURST) / READ_RATE, 1),
            "worker_errors": host.raised[:5],
        }
        print(json.dumps(result["timer"], indent=1), flush=True)
        people.close()
        service.reset_service()
        return result
    finally:
        sim.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.04, help="seconds added to every ARM request")
    parser.add_argument("--workers", type=int, default=8, help="queue-trigger workers (host concurrency)")
    parser.add_argument("--edit-interval", type=float, default=0.0,
                        help="seconds between two hand edits (0: back to back, as fast as ARM answers)")
    parser.add_argument("--skip-timer", action="store_true", help="measure the repairs only")
    parser.add_argument("--out", default="docs/bench/drift.json")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.ERROR)
    result = bench(args.accounts, args.edits, args.latency, args.workers, args.edit_interval,
                   timer=not args.skip_timer)
    out = ROOT / args.out if not Path(args.out).is_absolute() else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    repair = result["repair"]
    ok = (repair["repaired"] == repair["edits_made"] == repair["converged_after"]
          and repair["requests_from_importer_events"] == 0 and repair["requests_from_edits"] == args.edits)
    print(f"wrote {out}; {'OK' if ok else 'CHECK FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
