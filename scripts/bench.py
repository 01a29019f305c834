"""Fleet benchmark: the importer against the ARM stand-in with latency and ARM's throttle, at fleet size.

Measures, per fleet size N (accounts x 3 deployments, one subscription): (a) first onboarding, (b) a
no-op pass, (c) a pass with 5 % of the accounts drifted; for our fleet pass and for a naive sequential
baseline that re-PUTs everything. Every measured pass runs in a fresh subprocess (its peak RSS is read
with getrusage) and talks to the stand-in over HTTP through the real SDK clients; the stand-in lives in
this process and its request log gives reads, writes and 429s. Also measures one new deployment from
its event to the API being live (ARM round trips) and the function app's import time.

    python scripts/bench.py [--sizes 50,500,2000] [--latency 0.04] [--out docs/bench]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from armsim.requestlog import LogEntry
    from armsim.server import Sim

# The measured subprocess imports only the importer: armsim (and werkzeug) load lazily, in this
# process, so they never count towards the importer's peak RSS.
# devhost.seed's names (importing it loads no armsim, SDK or importer module).
from devhost.seed import (  # noqa: E402
    AI_GROUP,
    APIM_GROUP,
    APIM_NAME,
    apim_id,  # noqa: E402
)
from devhost.seed import SUBSCRIPTION as SUB  # noqa: E402

APIM_ID = apim_id()
PRODUCT = "ai-consumers"
DEPLOYMENTS = (("gpt-4o", "gpt-4o", "2024-11-20"), ("gpt-4o-mini", "gpt-4o-mini", "2024-07-18"),
               ("text-embedding-3-small", "text-embedding-3-small", "1"))
COGNITIVE_API = "2025-09-01"
# ARM's throttle (azure-facts §4): token buckets per subscription.
READ_BURST, READ_RATE, WRITE_BURST, WRITE_RATE = 250, 25.0, 200, 10.0
DRIFT_SHARE = 0.05
CONCURRENCY = 8
PHASES = ("onboard", "noop", "drift")


# ---------------------------------------------------------------------------------------------
# The fleet: seeded in-process through the stand-in's own WSGI app (no TCP, no throttle), measured
# passes over HTTP.


def account_name(i: int) -> str:
    return f"acct-{i:05d}"


def account_id(name: str, sub: str = SUB) -> str:
    return (f"/subscriptions/{sub}/resourceGroups/{AI_GROUP}/providers/Microsoft.CognitiveServices/"
            f"accounts/{name}")


def subscriptions(k: int) -> list[str]:
    """APIM's subscription first (it also holds accounts), then k-1 more."""
    return [SUB] + [f"00000000-0000-0000-0000-{i:012d}" for i in range(2, k + 1)]


def account_ids(n: int, k: int = 1) -> list[str]:
    """N accounts, dealt round-robin over k subscriptions."""
    subs = subscriptions(k)
    return [account_id(account_name(i), subs[i % k]) for i in range(n)]


def settings_env(sim: Sim, k: int = 1) -> dict[str, str]:
    return {"IMPORTER_ARM_ENDPOINT": sim.url, "IMPORTER_APIM_ID": APIM_ID,
            "IMPORTER_SCOPES": ",".join(f"/subscriptions/{s}" for s in subscriptions(k)),
            "IMPORTER_PRODUCTS": PRODUCT}


def seed_fleet(sim: Sim, n: int, k: int = 1) -> None:
    """APIM (with identity) and its product through the SDK; N accounts x 3 deployments through the
    stand-in's WSGI app directly (same handlers and bodies as over the wire, just no sockets)."""
    from werkzeug.test import Client

    from armsim.server import App
    from devhost import seed
    from importer.azure.clients import Clients
    from importer.settings import Settings

    clients = Clients(Settings.from_env(settings_env(sim)))
    seed.create_apim(clients)
    seed.create_product(clients, APIM_ID, PRODUCT)
    clients.close()
    wsgi = Client(App(sim))
    query = {"api-version": COGNITIVE_API}
    for rid in account_ids(n, k):
        name = rid.rsplit("/", 1)[-1]
        body = {"kind": "OpenAI", "location": "swedencentral", "sku": {"name": "S0"},
                "properties": {"customSubDomainName": name}}
        _check(wsgi.put(rid, query_string=query, json=body), rid)
        for dep, model, version in DEPLOYMENTS:
            body = {"sku": {"name": "GlobalStandard", "capacity": 10},
                    "properties": {"model": {"format": "OpenAI", "name": model, "version": version}}}
            _check(wsgi.put(f"{rid}/deployments/{dep}", query_string=query, json=body), dep)
    sim.log.clear()
    sim.clear_events()


def _check(response: Any, what: str) -> None:
    if response.status_code >= 300:
        raise RuntimeError(f"seeding {what} failed: {response.status_code} {response.get_data(as_text=True)}")


def drift(sim: Sim, n: int, k: int = 1) -> dict[str, int]:
    """Edit the policy of half of 5 % of the accounts and delete the backend of the other half,
    out of band (as a portal user would), through the SDK. Returns what was drifted."""
    from azure.mgmt.apimanagement.models import PolicyContract

    from importer.azure.clients import Clients
    from importer.identity import api_id, backend_id
    from importer.model import AccountRef
    from importer.settings import Settings

    clients = Clients(Settings.from_env(settings_env(sim)))
    client = clients.apim(SUB)
    rg, svc = APIM_GROUP, APIM_NAME
    step = max(1, round(1 / DRIFT_SHARE))
    chosen = account_ids(n, k)[::step]
    out = {"policy_edited": 0, "backend_deleted": 0}
    edited = ("<policies><inbound><base /><set-header name=\"x-edited-in-portal\" exists-action=\"override\">"
              "<value>yes</value></set-header></inbound><backend><base /></backend><outbound><base />"
              "</outbound><on-error><base /></on-error></policies>")
    for k, rid in enumerate(chosen):
        ref = AccountRef.parse(rid)
        if k % 2 == 0:
            client.api_policy.create_or_update(rg, svc, api_id(ref), "policy",
                                               PolicyContract(value=edited, format="xml"), if_match="*")
            out["policy_edited"] += 1
        else:
            client.backend.delete(rg, svc, backend_id(ref), if_match="*")
            out["backend_deleted"] += 1
    clients.close()
    sim.log.clear()
    return out


# ---------------------------------------------------------------------------------------------
# The log: totals, floors and the requests that dominate


_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_PATTERNS = [
    (re.compile(r"/subscriptions/" + _GUID, re.I), "/subscriptions/{sub}"),
    (re.compile(r"/resourceGroups/[^/]+", re.I), "/rg/{rg}"),
    (re.compile(r"/providers/Microsoft\.ApiManagement/service/[^/]+", re.I), "/apim"),
    (re.compile(r"/providers/Microsoft\.CognitiveServices/", re.I), "/cs/"),
    (re.compile(r"/providers/Microsoft\.Authorization/", re.I), "/auth/"),
    (re.compile(r"ai-acct-\d+-[0-9a-f]{8}(-embeddings|-safety)?"), "{id}"),
    (re.compile(r"acct-\d+"), "{account}"),
    (re.compile(r"(roleAssignments|roleDefinitions)/" + _GUID, re.I), r"\1/{guid}"),
    (re.compile(r"operationResults/[^/]+", re.I), "operationResults/{op}"),
    (re.compile(r"deployments/[^/]+", re.I), "deployments/{dep}"),
]


def pattern(entry: LogEntry) -> str:
    path = entry.path
    for regex, repl in _PATTERNS:
        path = regex.sub(repl, path)
    return f"{entry.method} {path}"


def read_floor_s(reads: int) -> float:
    """Seconds ARM's read bucket needs to serve ``reads``: the burst is free, then 25 per second."""
    return max(0, reads - READ_BURST) / READ_RATE


def write_floor_s(writes: int) -> float:
    return max(0, writes - WRITE_BURST) / WRITE_RATE


def log_stats(entries: list[LogEntry], n: int, wall_s: float) -> dict[str, Any]:
    throttled = [e for e in entries if e.status == 429]
    served = [e for e in entries if e.status != 429]
    reads = sum(1 for e in served if e.kind == "read")
    writes = sum(1 for e in served if e.kind == "write")
    by_pattern: Counter[str] = Counter(pattern(e) for e in served)
    # The buckets are per subscription: the floor is the busiest subscription's.
    per_sub: dict[str, Counter[str]] = {}
    for e in served:
        per_sub.setdefault((e.subscription or "").lower(), Counter())[e.kind] += 1
    rf = max((read_floor_s(c["read"]) for c in per_sub.values()), default=0.0)
    wf = max((write_floor_s(c["write"]) for c in per_sub.values()), default=0.0)
    floor = max(rf, wf)
    return {
        "requests": len(entries), "reads": reads, "writes": writes, "throttled": len(throttled),
        "throttled_pct": round(100.0 * len(throttled) / len(entries), 2) if entries else 0.0,
        "reads_per_account": round(reads / n, 3), "writes_per_account": round(writes / n, 3),
        "read_floor_s": round(rf, 2), "write_floor_s": round(wf, 2), "floor_s": round(floor, 2),
        "binding_floor": "reads" if rf >= wf else "writes",
        "wall_over_read_floor": round(wall_s / rf, 3) if rf > 0 else None,
        "wall_over_floor": round(wall_s / floor, 3) if floor > 0 else None,
        "mean_request_ms": round(1000 * sum(e.duration for e in entries) / len(entries), 1) if entries else 0,
        "other_errors": dict(Counter(str(e.status) for e in served if e.status >= 400)),
        "per_subscription": {s: dict(c) for s, c in sorted(per_sub.items())},
        "by_pattern": [{"pattern": p, "count": c, "per_account": round(c / n, 3)}
                       for p, c in by_pattern.most_common(12)],
    }


# ---------------------------------------------------------------------------------------------
# One measured pass, in a fresh subprocess


def child_main(args: argparse.Namespace) -> None:
    """Runs in the subprocess: one pass (ours or the baseline), prints one JSON line."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    from importer.azure.arm import AzureArm
    from importer.azure.clients import Clients
    from importer.model import ApimRef
    from importer.settings import Settings

    env = json.loads(args.env)
    settings = Settings.from_env(env)
    apim = ApimRef.parse(settings.apim_id)
    rss_before = _peak_rss_mb()  # after importing the SDKs, before any work
    if args.role == "ours":
        from importer.fleet import enumerate_estate, run_pass, summarise
        from importer.reconcile import build_reconciler

        rec = build_reconciler(settings)
        started = time.perf_counter()
        estate = enumerate_estate(rec)
        results = run_pass(rec, estate, concurrency=args.concurrency)
        wall = time.perf_counter() - started
        summary = summarise(results)
        errors = sorted({f"{r.error_kind}: {r.error}"[:300] for r in results if r.error})[:5]
    else:
        started = time.perf_counter()
        summary, errors = naive_pass(AzureArm(Clients(settings)), settings, apim)
        wall = time.perf_counter() - started
    print(json.dumps({"wall_s": round(wall, 3), "summary": summary, "errors": errors,
                      "rss_mb_before_pass": round(rss_before, 1), "peak_rss_mb": round(_peak_rss_mb(), 1)}))


def _peak_rss_mb() -> float:
    """Peak RSS of this process image: VmHWM. (getrusage's ru_maxrss would also count the parent's
    RSS at fork time, which here includes the whole stand-in, so it is not used.)"""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def naive_pass(arm: Any, settings: Any, apim: Any) -> tuple[dict[str, int], list[str]]:
    """The baseline: one account at a time, no diff, re-PUT everything every time.

    Per account: GET account + list deployments, PUT API (import, an LRO), PUT backend, PUT policy,
    PUT role assignment, PUT product link. Same SDK clients and same rendered content as ours.
    """
    from importer.config import resolve_options
    from importer.model import Scope
    from importer.render import render

    svc = arm.get_apim(apim)
    listed = [a for scope in settings.scopes for a in arm.list_accounts(Scope.parse(scope))]
    summary = {"accounts": 0, "writes": 0, "failed": 0}
    errors: list[str] = []
    for listed_account in sorted(listed, key=lambda a: a.ref.key):
        summary["accounts"] += 1
        try:
            acct = arm.get_account(listed_account.ref)
            desired = render(acct, svc, resolve_options(settings, acct.tag_map, account=acct.ref.name))
            arm.put_api(apim, desired.api, None)
            for backend in desired.backends:
                arm.put_backend(apim, backend, None)
            arm.put_policy(apim, desired.policy, None)
            for role in desired.role_assignments:
                arm.create_role_assignment(role, acct.ref.subscription)
            for link in desired.product_links:
                arm.link_product(apim, link)
            summary["writes"] += 2 + len(desired.backends) + len(desired.role_assignments) + len(
                desired.product_links)
        except Exception as exc:  # the baseline reports, like ours, and goes on
            summary["failed"] += 1
            if len(errors) < 5:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
    return summary, errors


def run_child(sim: Sim, role: str, env: dict[str, str], n: int, concurrency: int, *,
              throttled: bool = True) -> dict[str, Any]:
    sim.log.clear()
    if throttled:  # enabling also refills the buckets: each measured pass starts rested
        sim.throttle.enable(read_burst=READ_BURST, read_rate=READ_RATE, write_burst=WRITE_BURST,
                            write_rate=WRITE_RATE)
    cmd = [sys.executable, str(Path(__file__).resolve()), "_child", "--role", role, "--env", json.dumps(env),
           "--concurrency", str(concurrency)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    sim.throttle.disable()
    if proc.returncode != 0:
        raise RuntimeError(f"{role} pass failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(log_stats(sim.log.entries, n, result["wall_s"]))
    result["loadavg_1m_after"] = round(os.getloadavg()[0], 2)  # 2 cores: above ~2, the pass shared them
    result["code"] = code_version()  # the subprocess imported the importer as it was at this moment
    return result


def code_version() -> str:
    """HEAD, plus '+dirty' when importer/ has uncommitted changes (the tree is shared while we run)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                          check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "importer", "function_app.py"],
                           capture_output=True, text=True, cwd=ROOT, check=False).stdout.strip()
    return head + ("+dirty" if dirty else "")


def settle(sim: Sim, env: dict[str, str], n: int, concurrency: int) -> list[dict[str, Any]]:
    """Unmeasured catch-up passes (no throttle, no latency) until no run fails, so the next
    measured pass starts from the state it is meant to measure."""
    rules = sim.faults.specs()
    sim.faults.clear()
    done = []
    for _ in range(3):
        r = run_child(sim, "ours", env, n, concurrency, throttled=False)
        done.append({"summary": r["summary"], "writes": r["writes"], "errors": r["errors"]})
        if not r["errors"]:
            break
    for rule in rules:
        sim.faults.add(rule)
    return done


# ---------------------------------------------------------------------------------------------
# Checks that the passes did what they claim (so the figures describe correct runs)


def fleet_counts(sim: Sim) -> dict[str, int]:
    apis = sim.ids("Microsoft.ApiManagement/service/apis")
    with sim.state.lock:
        policies = sum(1 for a in apis if sim.state.store.get(f"{a}/policies/policy") is not None)
    return {"apis": len(apis), "policies": policies,
            "backends": len(sim.ids("Microsoft.ApiManagement/service/backends")),
            "role_assignments": len(sim.ids("Microsoft.Authorization/roleAssignments"))}


def _expect(ok: bool, message: str, problems: list[str]) -> None:
    if not ok:
        problems.append(message)
        print(f"  !! {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# One size


def bench_size(n: int, latency: float, roles: Iterable[str], concurrency: int,
               baseline_full_max: int, k: int = 1) -> dict[str, Any]:
    from armsim.server import start

    out: dict[str, Any] = {"n": n, "deployments_per_account": len(DEPLOYMENTS), "subscriptions": k,
                           "problems": []}
    for role in roles:
        sim = start(page_size=100)
        try:
            t0 = time.perf_counter()
            seed_fleet(sim, n, k)
            print(f"N={n} {role}: seeded {n} accounts x {len(DEPLOYMENTS)} deployments in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            sim.faults.latency(latency)
            env = settings_env(sim, k)
            phases: dict[str, Any] = {}
            for phase in PHASES:
                if role == "baseline" and phase != "onboard" and n > baseline_full_max:
                    phases[phase] = {"skipped": "the baseline re-PUTs everything: the same requests as its "
                                                "onboarding pass (see --baseline-full-max)"}
                    continue
                drifted = None
                if phase == "drift":
                    sim.faults.clear()
                    drifted = drift(sim, n, k)
                    sim.faults.latency(latency)
                result = run_child(sim, role, env, n, concurrency)
                result["counts_after"] = fleet_counts(sim)
                if drifted is not None:
                    result["drifted"] = drifted
                    result["drifted_objects"] = sum(drifted.values())
                phases[phase] = result
                _report_phase(n, role, phase, result)
                _check_phase(n, role, phase, result, out["problems"])
                if role == "ours" and result["errors"]:
                    result["settle_passes"] = settle(sim, env, n, concurrency)
                    result["counts_after_settle"] = fleet_counts(sim)
                    print(f"  settled in {len(result['settle_passes'])} unmeasured pass(es): "
                          f"{[p['summary'] for p in result['settle_passes']]}", flush=True)
            out[role] = phases
        finally:
            sim.stop()
    return out


def _report_phase(n: int, role: str, phase: str, r: dict[str, Any]) -> None:
    vs = f", {r['wall_over_floor']}x floor ({r['binding_floor']})" if r["wall_over_floor"] else ""
    print(f"N={n} {role:8} {phase:7} {r['wall_s']:8.1f} s{vs}; reads/acct {r['reads_per_account']}, "
          f"writes/acct {r['writes_per_account']}, 429s {r['throttled']} ({r['throttled_pct']} %), "
          f"peak RSS {r['peak_rss_mb']} MB; {r['summary']}", flush=True)


def _check_phase(n: int, role: str, phase: str, r: dict[str, Any], problems: list[str]) -> None:
    counts = r["counts_after"]
    where = f"N={n} {role} {phase}"
    _expect(not r["errors"], f"{where}: {r['summary'].get('failed', 0)} runs failed: {r['errors']}", problems)
    _expect(counts["apis"] == n and counts["policies"] == n and counts["backends"] == n
            and counts["role_assignments"] == n, f"{where}: fleet incomplete afterwards: {counts}", problems)
    if role == "ours" and phase == "noop":
        _expect(r["writes"] == 0, f"{where}: a no-op pass wrote {r['writes']} times", problems)
    if role == "ours" and phase == "drift":
        _expect(r["writes"] == r["drifted_objects"],
                f"{where}: wrote {r['writes']} for {r['drifted_objects']} drifted objects", problems)


# ---------------------------------------------------------------------------------------------
# One new deployment: event → API live, in ARM round trips


def bench_event(latency: float, fleet: int = 20) -> dict[str, Any]:
    """Two cases through the function app's own triggers (warm process, in-memory state): a new
    deployment on an imported account, and a brand-new account's first deployment."""

    from armsim.server import start
    from devhost import seed
    from devhost.host import deliver, work
    from devhost.queues.memory import MemoryQueue
    from importer import service
    from importer.azure.clients import Clients, StaticCredential
    from importer.fleet import enumerate_estate, run_pass
    from importer.identity import api_id
    from importer.model import AccountRef
    from importer.reconcile import build_reconciler
    from importer.settings import Settings
    from importer.state.factory import memory_state

    sim = start(page_size=100)
    try:
        seed_fleet(sim, fleet)
        env = settings_env(sim)
        settings = Settings.from_env(env)
        clients = Clients(settings)
        # The new deployments and accounts are a person's writes (the importer ignores its own events).
        people = Clients(settings, credential=StaticCredential(seed.OPERATOR_ID))
        state, queue = memory_state(), MemoryQueue()
        rec = build_reconciler(settings, state=state, clients=clients)
        run_pass(rec, enumerate_estate(rec))  # the fleet is imported and the process is warm
        service.install(service.Service(settings, rec, state))
        os.environ.update(env)
        sim.faults.latency(latency)
        sim.throttle.enable()
        cases: dict[str, Any] = {}

        def deliver_and_work(event: dict[str, Any]) -> tuple[float, list[LogEntry], str]:
            sim.log.clear()
            t0 = time.perf_counter()
            assert deliver(event, queue) is not None, event
            handle, request = queue.receive(1, visibility_timeout_s=30)[0]
            raised = work(queue, handle, request)
            if raised is not None:
                raise raised
            elapsed = time.perf_counter() - t0
            outcome = state.history.last_for(request.account).outcome
            return elapsed, sim.log.entries, outcome

        def case(name: str, make: Any, account: str, deployment: str) -> None:
            sim.faults.clear()
            sim.throttle.disable()
            sim.clear_events()
            make()
            event = [e for e in sim.events() if e["data"]["operationName"].endswith("deployments/write")][-1]
            sim.faults.latency(latency)
            sim.throttle.enable()
            elapsed, entries, outcome = deliver_and_work(event)
            ref = AccountRef.parse(account)
            policy = sim.resource(f"{APIM_ID}/apis/{api_id(ref)}/policies/policy") or {}
            live = deployment in json.dumps(policy)
            trips = sim.log.round_trips()
            cases[name] = {"round_trips": trips, "requests_sent": len(entries),
                           "wall_s": round(elapsed, 3), "outcome": outcome,
                           "deployment_routed_by_policy": live,
                           "requests": [f"{pattern(e)} -> {e.status}" for e in entries]}
            print(f"event case {name}: {trips} sequential round trips ({len(entries)} requests), "
                  f"{elapsed:.2f} s, "
                  f"{outcome}, live={live}", flush=True)
            for line in cases[name]["requests"]:
                print(f"    {line}", flush=True)

        existing = account_ids(fleet)[0]
        # Warm: the worker read the APIM service in the last minute. Cold: a fresh worker.
        for worker in ("warm", "cold"):
            if worker == "cold":
                rec.forget_apim()
            model = "o3-mini" if worker == "warm" else "o4-mini"
            case(f"new_deployment_on_imported_account_{worker}_worker",
                 lambda m=model: seed.create_deployment(people, existing, m, model=m,  # type: ignore[misc]
                                                        version="2025-01-31"), existing, model)
            if worker == "cold":
                rec.forget_apim()
            name = f"acct-new-{worker}"
            fresh = account_id(name)

            def new_account(name: str = name, fresh: str = fresh) -> None:
                seed.create_account(people, rg=AI_GROUP, name=name)
                seed.create_deployment(people, fresh, "gpt-4o")
            case(f"first_deployment_on_new_account_{worker}_worker", new_account, fresh, "gpt-4o")
        service.reset_service()
        clients.close()
        people.close()
        return cases
    finally:
        sim.stop()


# ---------------------------------------------------------------------------------------------
# Import time: function_app vs azure.functions, fresh interpreters


def bench_imports(runs: int = 9) -> dict[str, Any]:
    code = "import time; t = time.perf_counter(); import {m}; print(time.perf_counter() - t)"
    samples: dict[str, list[float]] = {"function_app": [], "azure.functions": []}
    for _ in range(runs):
        for module in samples:
            proc = subprocess.run([sys.executable, "-c", code.format(m=module)], capture_output=True,
                                  text=True, cwd=ROOT, check=True)
            samples[module].append(float(proc.stdout.strip()))
    med = {m: statistics.median(v) for m, v in samples.items()}
    probe = ("import sys, function_app; print(sorted(m for m in sys.modules "
             "if m.startswith(('azure.mgmt', 'azure.core', 'lxml', 'importer'))))")
    heavy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                           check=True).stdout.strip()
    out = {"runs": runs, "median_s": {m: round(v, 4) for m, v in med.items()},
           "ratio": round(med["function_app"] / med["azure.functions"], 3), "samples_s": samples,
           "modules_loaded_by_function_app": heavy}
    print(f"import: function_app {med['function_app'] * 1000:.0f} ms, azure.functions "
          f"{med['azure.functions'] * 1000:.0f} ms, ratio {out['ratio']} (median of {runs})", flush=True)
    return out


# ---------------------------------------------------------------------------------------------
# Output: table, JSON, plot


def table(results: dict[str, Any]) -> str:
    head = ("| N | pass | who | wall s | floor s (binding) | wall / floor | reads/acct | writes/acct | "
            "429s (%) | peak RSS MB |")
    lines = [head, "|" + "---|" * 10]
    for size in results["sizes"]:
        for phase in PHASES:
            for role in ("ours", "baseline"):
                r = size.get(role, {}).get(phase)
                if r is None or "skipped" in r:
                    continue
                ratio = f"{r['wall_over_floor']}" if r["wall_over_floor"] else "n/a (in burst)"
                lines.append(
                    f"| {size['n']} | {phase} | {role} | {r['wall_s']:.1f} | {r['floor_s']:.1f} "
                    f"({r['binding_floor']}) | {ratio} | {r['reads_per_account']:.2f} | "
                    f"{r['writes_per_account']:.2f} | {r['throttled']} ({r['throttled_pct']}) | "
                    f"{r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for size in results["sizes"]:
        if "ours" not in size or "baseline" not in size:
            continue
        for phase in PHASES:
            o, b = size["ours"][phase], size["baseline"][phase]
            measured = "skipped" not in b
            if not measured:  # same requests as its onboarding pass: a lower bound for it
                b = size["baseline"]["onboard"]
            out.append({"n": size["n"], "phase": phase, "baseline_measured": measured,
                        "wall_baseline_over_ours": round(b["wall_s"] / o["wall_s"], 2),
                        "reads_baseline_over_ours": round(b["reads"] / max(1, o["reads"]), 2),
                        "writes_baseline_minus_ours": b["writes"] - o["writes"]})
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = {"onboard": "o", "noop": "s", "drift": "^"}
    for role, colour in (("ours", "tab:blue"), ("baseline", "tab:red")):
        for phase in PHASES:
            pts = []
            for size in results["sizes"]:
                r = size.get(role, {}).get(phase)
                if r is None:
                    continue
                if "skipped" in r:  # the baseline's same requests as its onboarding: a lower bound
                    pts.append((size["n"], size[role]["onboard"], True))
                else:
                    pts.append((size["n"], r, False))
            if not pts:
                continue
            line = "-" if role == "ours" else "--"
            ns = [p[0] for p in pts]
            for ax, key in ((ax1, "reads_per_account"), (ax2, "wall_s")):
                ax.plot(ns, [p[1][key] for p in pts], linestyle=line, color=colour, marker=styles[phase],
                        label=f"{role} {phase}")
                for n, r, bound in pts:
                    if bound:
                        ax.plot([n], [r[key]], marker=styles[phase], color=colour, markerfacecolor="white")
    for phase, dash in (("onboard", (0, (1, 1))), ("noop", (0, (4, 2)))):
        pts = [(s["n"], s["ours"][phase]["floor_s"]) for s in results["sizes"]
               if "ours" in s and s["ours"][phase]["floor_s"] > 0]
        if pts:
            ax2.plot([p[0] for p in pts], [p[1] for p in pts], color="grey", linestyle=dash,
                     label=f"ARM throttle floor, {phase} pass")
    ax1.set(xscale="log", xlabel="accounts (N), 3 deployments each", ylabel="ARM reads per account",
            title="Reads per account (hollow: baseline pass not run, = its onboarding)")
    ax1.set_ylim(bottom=0)
    ax2.set(xscale="log", yscale="log", xlabel="accounts (N), 3 deployments each", ylabel="wall time (s)",
            title=f"Wall time, {results['latency_s'] * 1000:.0f} ms latency, ARM throttle on")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50,500,2000", help="fleet sizes (accounts)")
    parser.add_argument("--baseline-sizes", default=None,
                        help="sizes at which to run the naive baseline too (default: all of --sizes)")
    parser.add_argument("--baseline-full-max", type=int, default=500,
                        help="above this size the baseline runs its onboarding pass only (its no-op and "
                             "drift passes send the very same requests)")
    parser.add_argument("--latency", type=float, default=0.04, help="seconds added to every ARM request")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--subscriptions", type=int, default=1,
                        help="deal the accounts over this many subscriptions (each its own throttle buckets; "
                             "APIM stays in the first). The headline figures use 1.")
    parser.add_argument("--out", default="docs/bench", help="directory for results.json and bench.png")
    parser.add_argument("--merge-from", default=None,
                        help="a results.json whose other sizes are kept (sizes run now replace theirs)")
    parser.add_argument("--replot", default=None, metavar="RESULTS_JSON",
                        help="only redraw the plot (into --out) and print the table from a results.json")
    parser.add_argument("--skip-event", action="store_true")
    parser.add_argument("--skip-imports", action="store_true")
    args = parser.parse_args(argv)
    out_dir = (ROOT / args.out) if not Path(args.out).is_absolute() else Path(args.out)
    if args.replot:  # table and plot again from a results.json, nothing measured
        results = json.loads(Path(args.replot).read_text())
        results["ratios"] = ratios(results)
        out_dir.mkdir(parents=True, exist_ok=True)
        plot(results, out_dir / "bench.png")
        print(table(results))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    base_sizes = sizes if args.baseline_sizes is None else [
        int(s) for s in args.baseline_sizes.split(",") if s.strip()]
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "latency_s": args.latency,
        "concurrency": args.concurrency, "cpus": os.cpu_count(), "python": sys.version.split()[0],
        "commit": code_version(),
        "throttle": {"read_burst": READ_BURST, "read_rate": READ_RATE, "write_burst": WRITE_BURST,
                     "write_rate": WRITE_RATE, "per": "subscription"},
        "subscriptions": args.subscriptions,
        "sizes": []}
    json_path = out_dir / "results.json"
    for n in sizes:
        roles = ["ours"] + (["baseline"] if n in base_sizes else [])
        results["sizes"].append(bench_size(n, args.latency, roles, args.concurrency, args.baseline_full_max,
                                           args.subscriptions))
        json_path.write_text(json.dumps(results, indent=1))  # keep what is done if a later size fails
    if args.merge_from:
        earlier = json.loads(Path(args.merge_from).read_text())
        kept = [dict(size, measured_in=earlier.get("started"), code=earlier.get("commit"))
                for size in earlier.get("sizes", []) if size["n"] not in sizes]
        results["sizes"] = sorted(kept + results["sizes"], key=lambda size: size["n"])
        for key in ("event", "imports"):
            if key in earlier:
                results[f"{key}_earlier"] = earlier[key]
    results["ratios"] = ratios(results)
    if not args.skip_event:
        results["event"] = bench_event(args.latency)
    if not args.skip_imports:
        results["imports"] = bench_imports()
    results["duration_s"] = round(time.time() - started, 1)
    json_path.write_text(json.dumps(results, indent=1))
    plot(results, out_dir / "bench.png")
    print()
    print(table(results))
    for r in results["ratios"]:
        lower = "" if r["baseline_measured"] else " (baseline pass not run: >= its onboarding)"
        print(f"N={r['n']} {r['phase']}: baseline/ours wall {r['wall_baseline_over_ours']}x{lower}, "
              f"reads {r['reads_baseline_over_ours']}x, extra writes {r['writes_baseline_minus_ours']}")
    problems = [p for s in results["sizes"] for p in s["problems"]]
    print(f"\n{len(problems)} problem(s); total {results['duration_s']} s; wrote {json_path} and "
          f"{out_dir / 'bench.png'}")
    return 0


def _child_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=("ours", "baseline"), required=True)
    parser.add_argument("--env", required=True)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--subscriptions", type=int, default=1,
                        help="deal the accounts over this many subscriptions (each its own throttle buckets; "
                             "APIM stays in the first). The headline figures use 1.")
    return parser.parse_args(argv)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child_main(_child_args(sys.argv[2:]))
        sys.exit(0)
    sys.exit(main())
