"""The fleet pass: bulk listings keep a no-op account at 3 reads; orphans are found and offboarded."""

from __future__ import annotations

from devhost import seed
from importer.fleet import enumerate_estate, run_pass, summarise
from importer.identity import api_id
from importer.model import AccountRef
from tests.fixtures.world import SUB, World


def _fleet(world: World, n: int) -> list[str]:
    ids = []
    for i in range(n):
        name = f"fleet-{i:02d}"
        seed.create_account(world.clients, name=name, kind="OpenAI")
        aid = seed.account_id(SUB, "rg-ai", name)
        seed.create_deployment(world.clients, aid, "gpt-4o")
        ids.append(aid)
    return ids


def test_no_op_fleet_pass_costs_three_reads_per_account(world: World) -> None:
    _fleet(world, 10)
    rec = world.reconciler(apim_ttl_s=60, IMPORTER_PRODUCTS="ai-consumers")
    first = run_pass(rec, enumerate_estate(rec))
    assert summarise(first)["applied"] == 12, [r.error for r in first if r.error]
    world.sim.log.clear()
    again = run_pass(rec, enumerate_estate(rec))
    s = summarise(again)
    assert s == {"accounts": 12, "writes": 0, "noop": 12}
    assert world.writes() == 0
    # Per account: deployments, operations, policy. Plus a handful of paged listings per pass
    # (accounts, APIs, backends, role assignments, product links, the APIM service).
    per_account = world.reads() / 12
    assert world.reads() <= 3 * 12 + 6, world.sim.log.as_dicts()
    assert per_account <= 3.5


def test_drifted_accounts_in_a_fleet_pass_write_only_what_drifted(world: World) -> None:
    ids = _fleet(world, 6)
    rec = world.reconciler()
    run_pass(rec, enumerate_estate(rec))
    client = world.apim_client()
    victims = [AccountRef.parse(i) for i in ids[:2]]
    for ref in victims:
        client.api_policy.delete(world.rg, world.svc, api_id(ref), "policy", if_match="*")
    world.sim.log.clear()
    results = run_pass(rec, enumerate_estate(rec))
    assert summarise(results)["applied"] == 2
    assert world.writes() == 2
    assert all(r.outcome == "noop" for r in results if AccountRef.parse(r.account) not in victims)


def test_fleet_pass_offboards_objects_whose_account_is_gone(world: World) -> None:
    ids = _fleet(world, 2)
    rec = world.reconciler()
    run_pass(rec, enumerate_estate(rec))
    world.clients.cognitive(SUB).accounts.begin_delete("rg-ai", "fleet-01").result()
    estate = enumerate_estate(rec)
    gone = AccountRef.parse(ids[1])
    assert gone.key in estate.orphans
    results = {r.account.lower(): r for r in run_pass(rec, estate)}
    assert results[gone.key].outcome == "offboarded"
    assert world.sim.resource(f"{world.apim}/apis/{api_id(gone)}") is None


def test_accounts_not_imported_cost_no_reads_in_a_fleet_pass_until_they_hold_our_objects(
        world: World) -> None:
    """IMPORTER_OPT_IN=true with most accounts untagged: the pass's listings show nothing of ours
    for them, so they cost nothing; an account that opts out later is offboarded by the pass."""
    from azure.mgmt.cognitiveservices import models

    ids = _fleet(world, 10)
    cs = world.clients.cognitive(SUB)
    for aid in ids[:2]:
        cs.accounts.begin_update("rg-ai", AccountRef.parse(aid).name,
                                 models.Account(tags={"apim-importer": "enabled"})).result()
    rec = world.reconciler(apim_ttl_s=60, IMPORTER_OPT_IN="true")
    first = summarise(run_pass(rec, enumerate_estate(rec)))
    assert first == {"accounts": 12, "writes": first["writes"], "applied": 2, "noop": 10}, first
    world.sim.log.clear()
    again = run_pass(rec, enumerate_estate(rec))
    assert summarise(again) == {"accounts": 12, "writes": 0, "noop": 12}
    # 3 reads for each of the 2 imported accounts, plus the pass's listings; 0 for the other 10.
    assert world.reads() <= 3 * 2 + 6, world.sim.log.as_dicts()

    cs.accounts.begin_update("rg-ai", AccountRef.parse(ids[0]).name,
                             models.Account(tags={"apim-importer": "disabled"})).result()
    results = {r.account: r for r in run_pass(rec, enumerate_estate(rec))}
    assert results[ids[0]].outcome == "offboarded", results[ids[0]].error
    assert world.sim.resource(f"{world.apim}/apis/{api_id(AccountRef.parse(ids[0]))}") is None
    assert results[ids[1]].outcome == "noop"
