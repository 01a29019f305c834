"""Pools end to end through the SDK against the stand-in: a fleet pass and a single event build them,
membership follows deployments and accounts, concurrent workers lose nothing, a re-run writes 0."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devhost import seed
from importer import poolsync
from importer.fleet import enumerate_estate, run_pass, summarise
from importer.identity import backend_id
from importer.model import AccountRef, Mode
from importer.pools import owns, pool_id, unified_api_id
from importer.state.memory import MemoryLocks
from tests.fixtures.world import SUB, World

POOL = {"IMPORTER_POOL_PATH": "ai/pool"}
GPT = pool_id(Mode.AZURE_OPENAI, "gpt-4o")


def _account(world: World, name: str, *, sku: str = "Standard", capacity: int = 10,
             model: str = "gpt-4o", deployment: str = "gpt-4o",
             tags: dict[str, str] | None = None) -> AccountRef:
    seed.create_account(world.clients, name=name, kind="OpenAI", tags=tags)
    aid = seed.account_id(SUB, seed.AI_GROUP, name)
    seed.create_deployment(world.clients, aid, deployment, model=model, sku=sku, capacity=capacity)
    return AccountRef.parse(aid)


def _members(world: World, pid: str = GPT) -> dict[str, tuple[int, int]]:
    obj = world.apim_client().backend.get(world.rg, world.svc, pid)
    assert obj.type_properties_type == "Pool" and owns(obj.description)
    return {s.id.rsplit("/", 1)[-1]: (s.priority, s.weight) for s in obj.pool.services}


def _pool_exists(world: World, pid: str = GPT) -> bool:
    return any(b.name == pid for b in world.apim_client().backend.list_by_service(world.rg, world.svc))


def _leave_out_seeded(world: World) -> None:
    """The seeded contoso accounts stay out of these pools (tagged disabled), to keep counts small."""
    for name in ("contoso-aoai", "contoso-foundry"):
        world.clients.cognitive(SUB).accounts.begin_update(
            seed.AI_GROUP, name, {"tags": {"apim-importer": "disabled"}}).result()


def test_fleet_pass_builds_one_pool_per_deployment_name_provisioned_first_weighted_by_capacity(
        world: World) -> None:
    _leave_out_seeded(world)
    ptu = _account(world, "acct-ptu", sku="ProvisionedManaged", capacity=100)
    big = _account(world, "acct-big", capacity=300)
    small = _account(world, "acct-small", capacity=100)
    odd = _account(world, "acct-odd", model="gpt-4o-mini", capacity=50)
    rec = world.reconciler(**POOL)
    estate = enumerate_estate(rec)
    results = run_pass(rec, estate)
    assert all(r.ok for r in results), [r.error for r in results if r.error]
    assert _members(world) == {backend_id(ptu): (1, 1), backend_id(big): (2, 3), backend_id(small): (2, 1)}
    assert estate.pools is not None
    assert any("acct-odd" in n and "never pooled" in n for n in estate.pools.notes)
    assert not any(backend_id(odd) in m for m in _members(world))
    api = world.apim_client().api.get(world.rg, world.svc, unified_api_id(Mode.AZURE_OPENAI))
    assert api.path == "ai/pool/openai" and owns(api.description)
    # Every member's own backend trips its breaker on 429/5xx and honours Retry-After.
    member = world.apim_client().backend.get(world.rg, world.svc, backend_id(ptu))
    (rule,) = member.circuit_breaker.rules
    assert rule.accept_retry_after is True
    assert {(r.min, r.max) for r in rule.failure_condition.status_code_ranges} == {(429, 429), (500, 599)}
    world.sim.log.clear()
    again = run_pass(rec, enumerate_estate(rec))
    assert summarise(again)["writes"] == 0 and world.writes() == 0
    assert estate.pools.writes > 0


def test_a_single_event_run_updates_the_pools_and_a_deleted_deployment_leaves(world: World) -> None:
    _leave_out_seeded(world)
    a = _account(world, "acct-a", capacity=30)
    rec = world.reconciler(**POOL)
    first = rec.reconcile(a, trigger="event")
    assert first.ok, first.error
    assert _members(world) == {backend_id(a): (2, 1)}
    b = _account(world, "acct-b", capacity=10)
    run = rec.reconcile(b, trigger="event")  # b's event: its backend, then the pool, in one run
    assert run.ok and run.pools is not None and run.pools["writes"] >= 1
    assert _members(world) == {backend_id(a): (2, 3), backend_id(b): (2, 1)}
    # Rescaled on a: weights follow.
    seed.create_deployment(world.clients, a.id, "gpt-4o", capacity=10)
    rec.reconcile(a, trigger="event")
    assert _members(world) == {backend_id(a): (2, 1), backend_id(b): (2, 1)}
    # Deleted on b: b leaves the pool.
    world.clients.cognitive(SUB).deployments.begin_delete(seed.AI_GROUP, "acct-b", "gpt-4o").result()
    rec.reconcile(b, trigger="event")
    assert _members(world) == {backend_id(a): (2, 1)}
    # Deleted on a too: the empty pool and the unused unified API go.
    world.clients.cognitive(SUB).deployments.begin_delete(seed.AI_GROUP, "acct-a", "gpt-4o").result()
    last = rec.reconcile(a, trigger="event")
    assert last.ok, last.error
    assert not _pool_exists(world)
    names = {x.name for x in world.apim_client().api.list_by_service(world.rg, world.svc)}
    assert unified_api_id(Mode.AZURE_OPENAI) not in names
    world.sim.log.clear()
    assert rec.reconcile(a, trigger="event").writes == 0 and world.writes() == 0


def test_offboarding_an_account_removes_it_from_every_pool_before_its_backend(world: World) -> None:
    _leave_out_seeded(world)
    a = _account(world, "acct-a")
    seed.create_deployment(world.clients, a.id, "gpt-4o-mini", model="gpt-4o-mini")
    b = _account(world, "acct-b")
    seed.create_deployment(world.clients, b.id, "gpt-4o-mini", model="gpt-4o-mini")
    rec = world.reconciler(**POOL)
    run_pass(rec, enumerate_estate(rec))
    mini = pool_id(Mode.AZURE_OPENAI, "gpt-4o-mini")
    assert set(_members(world)) == set(_members(world, mini)) == {backend_id(a), backend_id(b)}
    world.clients.cognitive(SUB).accounts.begin_update(
        seed.AI_GROUP, "acct-b", {"tags": {"apim-importer": "disabled"}}).result()
    run = rec.reconcile(b, trigger="event")
    assert run.outcome == "offboarded", run.error
    assert set(_members(world)) == set(_members(world, mini)) == {backend_id(a)}
    ids = [c.id for c in run.applied]
    assert ids.index(GPT) < ids.index(backend_id(b))  # out of the pool, then its backend deleted


def test_eight_concurrent_workers_lose_no_member(world: World) -> None:
    _leave_out_seeded(world)
    refs = [_account(world, f"acct-{i}", capacity=10 * (i + 1)) for i in range(8)]
    leases = MemoryLocks()  # the lease store two instances share
    workers = [world.reconciler(**POOL) for _ in range(2)]
    for rec in workers:
        rec.locks = leases
    with ThreadPoolExecutor(max_workers=8) as pool:
        runs = list(pool.map(lambda i: workers[i % 2].reconcile(refs[i], trigger="event"), range(8)))
    assert all(r.ok for r in runs), [r.error for r in runs if r.error]
    members = _members(world)
    assert set(members) == {backend_id(r) for r in refs}
    assert [members[backend_id(r)][1] for r in refs] == [1, 2, 3, 4, 5, 6, 7, 8]
    world.sim.log.clear()
    assert sum(workers[0].reconcile(r, trigger="event").writes for r in refs) == 0
    assert not leases.held(f"{workers[0].apim.id.lower()}/pools")


def test_the_pools_lease_holds_another_instance_off_the_pools(world: World) -> None:
    """The lease (not only this process's lock) decides who writes the pools: while another instance
    holds it, a run writes the account's own objects and then waits; the pool follows the release."""
    _leave_out_seeded(world)
    ref = _account(world, "acct-a")
    leases = MemoryLocks()  # the lease store the instances share
    rec = world.reconciler(**POOL)
    rec.locks = leases

    def backend_written() -> bool:
        return any(b.name == backend_id(ref)
                   for b in world.apim_client().backend.list_by_service(world.rg, world.svc))

    with ThreadPoolExecutor(max_workers=1) as pool:
        with leases.hold(f"{rec.apim.id.lower()}/pools", wait=False):  # another instance's sync
            future = pool.submit(rec.reconcile, ref, trigger="event")
            deadline = time.monotonic() + 20
            while not backend_written() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert backend_written(), "the run never wrote the account's own backend"
            time.sleep(0.3)  # the run reached the pools and waits there
            assert not future.done() and not _pool_exists(world)
        run = future.result(timeout=30)
    assert run.ok, run.error
    assert set(_members(world)) == {backend_id(ref)}


def test_a_pool_changed_between_read_and_write_is_re_read_and_re_planned(world: World, mocker: Any) -> None:
    _leave_out_seeded(world)
    a = _account(world, "acct-a")
    b = _account(world, "acct-b")
    rec = world.reconciler(**POOL)
    run_pass(rec, enumerate_estate(rec))
    seed.create_deployment(world.clients, b.id, "gpt-4o", capacity=30)
    real = poolsync.plan_once
    calls: list[int] = []

    def racing(rec_: Any, run: Any, *rest: Any) -> Any:
        plan = real(rec_, run, *rest)
        if not calls:  # someone else writes the pool after our read: our ETag is stale
            client = world.apim_client()
            obj = client.backend.get(world.rg, world.svc, GPT)
            obj.description = obj.description.replace("Pool of", "Pool (touched) of")
            client.backend.create_or_update(world.rg, world.svc, GPT, obj)
        calls.append(1)
        return plan

    mocker.patch.object(poolsync, "plan_once", racing)
    run = rec.reconcile(a, trigger="event")
    assert run.ok, run.error
    assert len(calls) == 2 and any("re-planned" in n for n in run.pools["notes"])
    assert _members(world) == {backend_id(a): (2, 1), backend_id(b): (2, 3)}


def test_plan_shows_pool_membership_priorities_and_weights_as_a_diff(
        world: World, monkeypatch: Any, capsys: Any) -> None:
    from importer.cli import main

    _leave_out_seeded(world)
    ptu = _account(world, "acct-ptu", sku="DataZoneProvisionedManaged", capacity=50)
    std = _account(world, "acct-std", capacity=20)
    monkeypatch.setenv("IMPORTER_POOL_PATH", "ai/pool")
    monkeypatch.setenv("IMPORTER_SCOPES", f"/subscriptions/{SUB}")
    common = ["--apim", world.apim, "--arm-endpoint", world.sim.url]
    assert main(["apply", "--account", std.id, *common]) == 0  # std's backend and its pool
    capsys.readouterr()
    assert main(["plan", "--account", ptu.id, *common]) == 2
    out = capsys.readouterr().out
    assert "Pools (shared by every account):" in out
    assert f"~ pool {GPT}: update (pool membership changed)" in out
    assert f"+ member {backend_id(ptu).lower()}: priority 1, weight 1" in out  # its plan creates it
    assert "left out" not in out
    assert main(["apply", "--account", ptu.id, *common]) == 0
    capsys.readouterr()
    assert _members(world) == {backend_id(ptu): (1, 1), backend_id(std): (2, 1)}
    assert main(["plan", "--account", ptu.id, *common]) == 0
    assert "No changes to the pools." in capsys.readouterr().out


def test_explain_names_the_pools_of_a_deployment_and_who_was_left_out(world: World) -> None:
    from importer.explain import explain

    _leave_out_seeded(world)
    a = _account(world, "acct-a", sku="GlobalProvisionedManaged", capacity=50)  # outweighs acct-odd
    _account(world, "acct-odd", model="gpt-4o-mini")
    rec = world.reconciler(**POOL)
    run_pass(rec, enumerate_estate(rec))
    ex = explain(rec, a, "gpt-4o")
    lines = [f.detail for f in ex.findings if f.check == "pools"]
    assert any(f"in pool {GPT}" in line and "acct-a priority 1 weight 1" in line and "ai/pool/openai" in line
               for line in lines), lines
    assert any("acct-odd left out" in line and "gpt-4o-mini" in line for line in lines), lines
