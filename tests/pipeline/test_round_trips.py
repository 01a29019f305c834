"""Event → API live in few sequential ARM round trips: reads go out together, writes in waves.

Round trips are counted from the stand-in's request log (requests in flight together count once),
with 200 ms added to every request so that requests sent together overlap even on a busy machine.
"""

from __future__ import annotations

from devhost import seed
from importer.identity import api_id
from importer.model import AccountRef
from tests.fixtures.world import SUB, World

LATENCY = 0.2


def _policy(world: World, ref: AccountRef) -> str:
    return str(world.apim_client().api_policy.get(world.rg, world.svc, api_id(ref), "policy").value)


def test_a_new_deployment_on_an_imported_account_is_routed_after_three_round_trips(
        world: World, aoai: AccountRef) -> None:
    rec = world.reconciler(IMPORTER_PRODUCTS="ai-consumers")  # cold: APIM service not cached
    assert rec.reconcile(aoai).outcome == "applied"
    seed.create_deployment(world.clients, aoai.id, "o3-mini", model="o3-mini", version="2025-01-31")
    world.sim.faults.latency(LATENCY)
    world.sim.log.clear()
    run = rec.reconcile(aoai)
    assert run.outcome == "applied" and [c.kind for c in run.applied] == ["policy"]
    # reads of the account and of our objects together; the APIM service (the plan has a change);
    # the policy PUT. A warm worker (APIM service cached) needs 2.
    assert world.sim.log.round_trips() == 3, [(e.method, e.path) for e in world.sim.log.entries]
    assert world.sim.log.reads() == 9 and world.sim.log.writes() == 1
    assert "o3-mini" in _policy(world, aoai)


def test_the_first_deployment_on_a_new_account_is_live_after_seven_round_trips(world: World) -> None:
    seed.create_account(world.clients, name="brand-new", kind="OpenAI")
    ref = AccountRef.parse(seed.account_id(SUB, "rg-ai", "brand-new"))
    seed.create_deployment(world.clients, ref.id, "gpt-4o")
    world.sim.faults.latency(LATENCY)
    world.sim.log.clear()
    run = world.reconciler(IMPORTER_PRODUCTS="ai-consumers").reconcile(ref)
    assert run.outcome == "applied", run.error
    # 1 reads together; 2 the APIM service, the path-clash listing and the product check together;
    # 3 role, backend and API PUTs together, 4-5 the API's LRO poll and final GET; 6 the policy;
    # 7 the product link (only once the policy is in place: no consumer reaches an API without it).
    assert world.sim.log.round_trips() <= 7, [(e.method, e.path) for e in world.sim.log.entries]
    assert world.sim.log.writes() == 5
    assert "gpt-4o" in _policy(world, ref)
