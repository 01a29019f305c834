"""Fault injection: after each fault, the next run converges to what a fault-free run leaves.

Every test: a fresh estate brought to its start state fault-free, the fault installed, one fleet pass
(which may fail), the faults cleared, the next pass; then the stand-in must hold exactly the
fault-free reference (owned objects; ETags and timestamps aside), with nothing duplicated or
orphaned, every foreign object (and every account) untouched to the ETag, and a further pass
planning nothing. Each test also checks that its fault actually fired.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from importer.identity import api_id, backend_id
from importer.model import AccountRef
from importer.reconcile import MAX_REPLANS
from tests.faults.conftest import APIM, FULL, PRODUCT, Estates, FaultWorld, account_id, assert_converged

ALPHA = AccountRef.parse(account_id("alpha"))
GAMMA = AccountRef.parse(account_id("gamma"))
ALPHA_API = f"/apis/{api_id(ALPHA)}$"
ALPHA_POLICY = f"/apis/{api_id(ALPHA)}/policies/policy$"
ALPHA_BACKEND = f"/backends/{backend_id(ALPHA)}$"
ROOT = Path(__file__).resolve().parents[2]


def _outcomes(runs: list) -> dict[str, str]:
    return {r.account.rsplit("/", 1)[-1]: r.outcome for r in runs}


def _fired(world: FaultWorld, **select: object) -> int:
    return len(world.sim.log.select(**select))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Start states (applied fault-free): onboarding starts from nothing imported


def imported(world: FaultWorld) -> None:
    runs = world.run_pass()
    assert all(r.outcome == "applied" for r in runs), [r.error for r in runs]


def drifted(world: FaultWorld) -> None:
    """Imported, then alpha's policy and backend edited in the portal (both updates are ETag-guarded)."""
    from azure.mgmt.apimanagement import models

    imported(world)
    client = world.clients.apim(ALPHA.subscription)
    rg, svc = APIM.split("/")[4], APIM.rsplit("/", 1)[-1]
    client.api_policy.create_or_update(rg, svc, api_id(ALPHA), "policy", models.PolicyContract(
        value="<policies><inbound><base /><rate-limit calls=\"5\" renewal-period=\"60\" /></inbound>"
              "<backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error>"
              "</policies>", format="xml"), if_match="*")
    backend = client.backend.get(rg, svc, backend_id(ALPHA))
    backend.url = "https://somewhere-else.example/openai"
    client.backend.create_or_update(rg, svc, backend_id(ALPHA), backend, if_match="*")


def gamma_deleted(world: FaultWorld) -> None:
    """Imported, then account gamma deleted: the next pass must offboard what it owned."""
    imported(world)
    world.clients.cognitive(GAMMA.subscription).accounts.begin_delete(
        GAMMA.resource_group, GAMMA.name).result()


def _faulted(estates: Estates, scenario: str, setup, install) -> tuple[FaultWorld, list, dict]:  # noqa: ANN001
    reference = estates.reference(scenario, setup)
    world = estates.fresh(setup)
    before = world.foreign()
    install(world)
    first = world.run_pass()
    return world, first, {"reference": reference, "foreign": before}


def _next_run_converges(world: FaultWorld, ctx: dict) -> list:
    world.sim.faults.clear()
    runs = world.run_pass()
    assert all(r.ok for r in runs), [r.error for r in runs if r.error]
    assert_converged(world, ctx["reference"], ctx["foreign"])
    return runs


# ---------------------------------------------------------------------------------------------
# 429 with Retry-After


def test_429_with_retry_after_is_waited_out_within_the_run(estates: Estates) -> None:
    def install(w: FaultWorld) -> None:
        w.sim.faults.script("GET", r"/deployments$", [{"status": 429, "retry_after": 1}])
        w.sim.faults.script("PUT", ALPHA_BACKEND, [{"status": 429, "retry_after": 1}] * 2)

    world, first, ctx = _faulted(estates, "onboard", None, install)
    assert all(r.outcome == "applied" for r in first), [r.error for r in first]
    throttled = world.sim.log.select(status=429)
    assert len(throttled) == 3
    # Retry-After honoured: each retry of the backend PUT came at least ~1 s after its 429.
    puts = world.sim.log.select(method="PUT", path=ALPHA_BACKEND)
    assert [e.status for e in puts] == [429, 429, 201]
    assert puts[1].time - puts[0].time >= 0.9 and puts[2].time - puts[1].time >= 0.9
    runs = _next_run_converges(world, ctx)
    assert {r.outcome for r in runs} == {"noop"}


# ---------------------------------------------------------------------------------------------
# 500 / 503: inside the SDK's retry budget (same run), and beyond it (next run)


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("target", [("PUT", ALPHA_API), ("PUT", ALPHA_POLICY), ("GET", r"/policies/policy$")],
                         ids=["put-api", "put-policy", "get-policy"])
def test_5xx_within_the_retry_budget_recovers_in_the_same_run(estates: Estates, status: int,
                                                             target: tuple[str, str]) -> None:
    scenario, setup = ("onboard", None) if target[0] == "PUT" else ("repair", drifted)
    world, first, ctx = _faulted(estates, scenario, setup,
                                 lambda w: w.sim.faults.script(target[0], target[1], [status] * 2))
    assert _fired(world, status=status) == 2
    assert all(r.ok for r in first), [r.error for r in first]
    _next_run_converges(world, ctx)


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_beyond_the_retry_budget_fails_transient_then_the_next_run_converges(estates: Estates,
                                                                                 status: int) -> None:
    world, first, ctx = _faulted(estates, "onboard", None,
                                 lambda w: w.sim.faults.script("PUT", ALPHA_POLICY, [status] * 50))
    outcomes = _outcomes(first)
    assert outcomes.pop("alpha") == "failed" and set(outcomes.values()) == {"applied"}, outcomes
    failed = next(r for r in first if r.outcome == "failed")
    # role, backend, API; then the policy fails, and the product link, which waits for the policy,
    # is never sent: no consumer reaches an API without its policy
    assert failed.error_kind == "transient" and failed.writes == 3
    assert sorted(c.kind for c in failed.applied) == ["api", "backend", "role_assignment"]
    assert world.sim.resource(f"{APIM}/apis/{api_id(ALPHA)}/policies/policy") is None
    assert not [rid for rid in world.sim.ids()
                if "/products/" in rid and rid.endswith(f"/apis/{api_id(ALPHA)}")]
    runs = _next_run_converges(world, ctx)
    assert _outcomes(runs)["alpha"] == "applied"


# ---------------------------------------------------------------------------------------------
# Connection reset (no response at all)


def test_a_single_connection_reset_is_retried_in_the_same_run(estates: Estates) -> None:
    world, first, ctx = _faulted(estates, "onboard", None,
                                 lambda w: w.sim.faults.script("PUT", ALPHA_BACKEND, ["reset"]))
    assert _fired(world, fault="reset") == 1
    assert all(r.ok for r in first), [r.error for r in first]
    _next_run_converges(world, ctx)


@pytest.mark.parametrize("target", [ALPHA_BACKEND, ALPHA_API, ALPHA_POLICY, r"/products/.*/apis/ai-alpha-"],
                         ids=["backend", "api", "policy", "product-link"])
def test_connection_resets_beyond_the_retry_budget_then_the_next_run_converges(estates: Estates,
                                                                               target: str) -> None:
    world, first, ctx = _faulted(estates, "onboard", None,
                                 lambda w: w.sim.faults.script("PUT", target, ["reset"] * 50))
    assert _fired(world, fault="reset") >= 2
    assert _outcomes(first)["alpha"] == "failed"
    _next_run_converges(world, ctx)


# ---------------------------------------------------------------------------------------------
# Long-running operations: slow, failed


def test_a_slow_api_import_is_polled_to_the_end(estates: Estates) -> None:
    polls = 8
    world, first, ctx = _faulted(estates, "onboard", None,
                                 lambda w: w.sim.faults.lro("PUT", ALPHA_API, polls=polls))
    assert all(r.ok for r in first), [r.error for r in first]
    assert _fired(world, method="GET", path=r"/operationResults/") >= polls + 3
    _next_run_converges(world, ctx)


def test_a_failed_api_import_fails_the_run_and_the_next_run_converges(estates: Estates) -> None:
    world, first, ctx = _faulted(estates, "onboard", None,
                                 lambda w: w.sim.faults.lro("PUT", ALPHA_API, outcome="Failed", times=1))
    alpha = next(r for r in first if r.account == ALPHA.id)
    assert alpha.outcome == "failed", alpha
    assert world.sim.resource(f"{APIM}/apis/{api_id(ALPHA)}") is None  # a failed import leaves no API
    _next_run_converges(world, ctx)


def test_a_failed_api_update_keeps_the_old_api_and_the_next_run_converges(estates: Estates) -> None:
    def install(w: FaultWorld) -> None:
        from azure.mgmt.apimanagement import models

        client = w.clients.apim(ALPHA.subscription)
        api = client.api.get(APIM.split("/")[4], APIM.rsplit("/", 1)[-1], api_id(ALPHA))
        client.api.begin_create_or_update(APIM.split("/")[4], APIM.rsplit("/", 1)[-1], api_id(ALPHA),
                                          models.ApiCreateOrUpdateParameter(
                                              path=api.path, display_name="renamed in the portal",
                                              description=api.description, protocols=["https"]),
                                          if_match="*").result()
        w.sim.faults.lro("PUT", ALPHA_API, outcome="Failed", times=1)

    world, first, ctx = _faulted(estates, "repair", drifted, install)
    assert next(r for r in first if r.account == ALPHA.id).outcome == "failed"
    kept = world.sim.resource(f"{APIM}/apis/{api_id(ALPHA)}")
    assert kept is not None and kept["properties"]["displayName"] == "renamed in the portal"
    _next_run_converges(world, ctx)


# ---------------------------------------------------------------------------------------------
# 412: a concurrent edit moved the ETag between our read and our write


def test_412_on_the_policy_put_is_re_read_and_re_planned_in_the_same_run(estates: Estates) -> None:
    world, first, ctx = _faulted(estates, "repair", drifted,
                                 lambda w: w.sim.faults.script("PUT", ALPHA_POLICY, [412]))
    alpha = next(r for r in first if r.account == ALPHA.id)
    assert alpha.outcome == "applied" and any("re-planned" in n for n in alpha.notes), alpha
    assert _fired(world, method="PUT", path=ALPHA_POLICY, status=412) == 1
    _next_run_converges(world, ctx)


def test_412_on_every_backend_put_ends_in_conflict_then_the_next_run_converges(estates: Estates) -> None:
    world, first, ctx = _faulted(estates, "repair", drifted,
                                 lambda w: w.sim.faults.script("PUT", ALPHA_BACKEND, [412] * MAX_REPLANS))
    alpha = next(r for r in first if r.account == ALPHA.id)
    assert alpha.error_kind == "conflict", alpha
    assert _fired(world, method="PUT", path=ALPHA_BACKEND, status=412) == MAX_REPLANS
    _next_run_converges(world, ctx)


def test_a_real_concurrent_policy_edit_gets_412_and_a_fresh_read(estates: Estates) -> None:
    """Not scripted: after each of the importer's first two reads of alpha's policy, another writer
    changes it (straight through the stand-in's handler) while our PUT is still on the wire (held
    300 ms). The stale If-Match must meet a real 412; the run re-reads and wins on fresh data."""
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from armsim.server import App

    policy = f"{APIM}/apis/{api_id(ALPHA)}/policies/policy"
    edits: list[int] = []
    stop = threading.Event()

    def other_writer(w: FaultWorld) -> None:
        app, seen = App(w.sim), 0
        while not stop.is_set() and len(edits) < 2:
            reads = len(w.sim.log.select(method="GET", path=ALPHA_POLICY, status=200))
            if reads > seen:
                seen = reads
                xml = ("<policies><inbound><base /><set-header name=\"x-edit\" exists-action=\"override\">"
                       f"<value>{reads}</value></set-header></inbound><backend><base /></backend>"
                       "<outbound><base /></outbound><on-error><base /></on-error></policies>")
                env = EnvironBuilder(path=policy, method="PUT", query_string={"api-version": "2024-05-01"},
                                     json={"properties": {"value": xml, "format": "xml"}}).get_environ()
                edits.append(app._dispatch(Request(env), policy).status_code)
            time.sleep(0.001)

    def install(w: FaultWorld) -> None:
        w.sim.faults.latency(0.3, method="PUT", path=ALPHA_POLICY)
        threading.Thread(target=other_writer, args=(w,), daemon=True).start()

    try:
        world, first, ctx = _faulted(estates, "repair", drifted, install)
    finally:
        stop.set()
    assert edits and all(code == 200 for code in edits), edits
    alpha = next(r for r in first if r.account == ALPHA.id)
    assert alpha.outcome == "applied", alpha
    assert _fired(world, method="PUT", path=ALPHA_POLICY, status=412) >= 1
    assert any("re-planned" in n for n in alpha.notes), alpha.notes
    _next_run_converges(world, ctx)


# ---------------------------------------------------------------------------------------------
# The process dies after the k-th write of an apply


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_a_permanent_failure_after_k_writes_then_the_next_run_converges(estates: Estates, k: int) -> None:
    """Writes 1..k-1 of alpha's onboarding land, the k-th and everything after fail (500 beyond the
    retry budget): the state a crash after k-1 writes leaves, as seen by the importer."""
    actions = [None] * (k - 1) + [500] * 50
    world, first, ctx = _faulted(estates, "onboard", None,
                                 lambda w: w.sim.faults.script("PUT", r"alpha", actions))
    alpha = next(r for r in first if r.account == ALPHA.id)
    assert alpha.outcome == "failed" and alpha.writes == k - 1, alpha
    _next_run_converges(world, ctx)


@pytest.mark.parametrize("concurrency", [1, 8] if FULL else [1], ids=lambda c: f"concurrency{c}")
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5], ids=lambda k: f"k{k}")
def test_the_process_killed_after_k_writes_then_the_next_run_converges(estates: Estates, k: int,
                                                                       concurrency: int) -> None:
    """A real kill: a subprocess runs the pass (one account at a time in CI: alpha's apply is cut
    after its k-th write); every write after the k-th hangs up, and the process gets SIGKILL while
    the SDK is retrying. Exactly k writes landed."""
    reference = estates.reference("onboard")
    world = estates.fresh()
    before = world.foreign()
    world.sim.faults.script("PUT", None, [None] * k + ["reset"] * 200)
    env = {**os.environ, **world.env, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as stderr:
        cmd = [sys.executable, "-m", "tests.faults.runner", "--concurrency", str(concurrency)]
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + 30
            while not world.sim.log.select(fault="reset"):
                if proc.poll() is not None:
                    stderr.seek(0)
                    pytest.fail(f"the pass ended before its (k+1)-th write: {stderr.read()[-2000:]!r}")
                assert time.monotonic() < deadline, "the (k+1)-th write never came"
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    landed = [e for e in world.sim.log.select(kind="write") if e.fault is None]
    assert len(landed) == k and all(e.status < 300 for e in landed), [(e.path, e.status) for e in landed]
    world.sim.faults.clear()
    runs = world.run_pass()
    assert all(r.ok for r in runs), [r.error for r in runs if r.error]
    assert_converged(world, reference, before)


# ---------------------------------------------------------------------------------------------
# Offboarding interrupted: what is left must still be found (by its mark) and removed


@pytest.mark.parametrize("k", [1, 2])
def test_offboarding_interrupted_after_k_deletes_leaves_nothing_orphaned(estates: Estates, k: int) -> None:
    actions = [None] * (k - 1) + [500] * 50
    world, first, ctx = _faulted(estates, "offboard", gamma_deleted,
                                 lambda w: w.sim.faults.script("DELETE", r"ai-gamma-", actions))
    gamma = next(r for r in first if r.account.lower() == GAMMA.key)
    assert gamma.outcome == "failed", gamma
    runs = _next_run_converges(world, ctx)
    assert _outcomes(runs)["gamma"] == "offboarded"
    owned = world.owned_ids("Microsoft.ApiManagement/service/backends")
    assert owned and not [b for b in owned if "ai-gamma-" in b]


def test_the_yardstick_detects_a_difference(estates: Estates) -> None:
    """The yardstick itself: two fault-free estates compare equal, and a real difference shows."""
    reference = estates.reference("onboard")
    world = estates.fresh()
    before = world.foreign()
    world.run_pass()
    assert_converged(world, reference, before)
    world.sim.faults.clear()
    client = world.clients.apim(ALPHA.subscription)
    client.backend.delete(APIM.split("/")[4], APIM.rsplit("/", 1)[-1], "legacy-backend", if_match="*")
    with pytest.raises(AssertionError):
        assert_converged(world, reference, before)
    assert json.dumps(reference)  # plain JSON, printable in a failure
    assert PRODUCT in json.dumps(reference)
