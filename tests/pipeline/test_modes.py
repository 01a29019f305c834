"""Modes as a set (issue 14 item 1): each mode of the set is its own API (own id and path) with its own
main backend; the modes share the account's role assignment; removing a mode removes exactly its API
and backend; a mode the account's kind can't serve is refused before any write. Every scenario ends
with a run that writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.mgmt.apimanagement import models

from importer import identity, render
from importer.cli import main
from importer.model import AccountRef, Mode
from importer.reconcile import Reconciler
from tests.fixtures.world import AOAI, FOUNDRY, SUB, World

BOTH = "azure-openai,azure-openai-v1"


def _noop(world: World, rec: Reconciler, ref: AccountRef, **kw: Any) -> None:
    assert rec.reconcile(ref, dry_run=True, **kw).plan.empty
    world.sim.log.clear()
    run = rec.reconcile(ref, **kw)
    assert run.error is None and run.outcome == "noop" and world.writes() == 0, run.to_json()


def _apis(world: World, ref: AccountRef) -> dict[str, str]:
    """The account's APIs in APIM: id → path."""
    return {a.name: a.path for a in world.apim_client().api.list_by_service(
        world.rg, world.svc, filter=identity.listing_filter(ref))}


def _backends(world: World, ref: AccountRef) -> dict[str, str]:
    return {b.name: b.url for b in world.apim_client().backend.list_by_service(
        world.rg, world.svc, filter=identity.listing_filter(ref))}


def _roles(world: World, ref: AccountRef) -> list[str]:
    auth = world.clients.authorization(SUB)
    return sorted(r.role_definition_id.rsplit("/", 1)[-1] for r in auth.role_assignments.list_for_scope(
        ref.id, filter="atScope()") if (r.scope or "").lower() == ref.key)


def test_two_modes_are_two_apis_sharing_one_role(world: World) -> None:
    ref = AccountRef.parse(AOAI)
    rec = world.reconciler(IMPORTER_MODE=BOTH, IMPORTER_PRODUCTS="ai-consumers")
    run = rec.reconcile(ref)
    assert run.outcome == "applied", run.error
    aoai, v1 = identity.api_id(ref, Mode.AZURE_OPENAI), identity.api_id(ref, Mode.AZURE_OPENAI_V1)
    assert _apis(world, ref) == {aoai: "contoso-aoai/openai", v1: "contoso-aoai/openai/v1"}
    assert _backends(world, ref) == {aoai: "https://contoso-aoai.openai.azure.com/openai",
                                     v1: "https://contoso-aoai.openai.azure.com/openai/v1"}
    assert _roles(world, ref) == [render.ROLE_OPENAI_USER]
    client = world.apim_client()
    for aid in (aoai, v1):
        policy = client.api_policy.get(world.rg, world.svc, aid, "policy").value
        assert f'backend-id="{aid}"' in policy
        assert [p.name for p in client.api_product.list_by_apis(world.rg, world.svc, aid)] == ["ai-consumers"]
    _noop(world, rec, ref)


def test_removing_a_mode_removes_exactly_its_api_and_backend(world: World) -> None:
    ref = AccountRef.parse(AOAI)
    assert world.reconciler(IMPORTER_MODE=BOTH).reconcile(ref).outcome == "applied"
    before = {rid: world.sim.resource(rid) for rid in world.sim.ids()}
    v1 = identity.api_id(ref, Mode.AZURE_OPENAI_V1)
    rec = world.reconciler(IMPORTER_MODE="azure-openai")
    world.sim.log.clear()
    run = rec.reconcile(ref)
    assert sorted((c.action, c.kind, c.id) for c in run.applied) == [
        ("delete", "api", v1), ("delete", "backend", v1)]
    after = {rid: world.sim.resource(rid) for rid in world.sim.ids()}
    assert {rid for rid in before if rid not in after} == {
        rid for rid in before if f"/apis/{v1}" in rid or rid.endswith(f"/backends/{v1}")}
    assert all(after[rid] == before[rid] for rid in after)  # nothing else touched
    _noop(world, rec, ref)


def test_adding_azure_ai_gives_the_shared_role_that_serves_every_mode(world: World) -> None:
    ref = AccountRef.parse(FOUNDRY)
    assert world.reconciler(IMPORTER_MODE="azure-openai").reconcile(ref).outcome == "applied"
    assert _roles(world, ref) == [render.ROLE_OPENAI_USER]
    rec = world.reconciler(IMPORTER_MODE="azure-openai,azure-ai")
    run = rec.reconcile(ref)
    assert run.outcome == "applied", run.error
    assert _roles(world, ref) == [render.ROLE_COGNITIVE_SERVICES_USER]
    assert set(_apis(world, ref)) == {identity.api_id(ref), identity.api_id(ref, Mode.AZURE_AI)}
    _noop(world, rec, ref)


def test_a_mode_the_kind_cannot_serve_is_refused_and_nothing_is_written(world: World) -> None:
    ref = AccountRef.parse(AOAI)  # an OpenAI account: no /models route
    rec = world.reconciler(IMPORTER_MODE=BOTH)
    assert rec.reconcile(ref).outcome == "applied"
    world.sim.log.clear()
    run = world.reconciler(IMPORTER_MODE="azure-openai,azure-ai").reconcile(ref)
    assert run.outcome == "failed" and "mode 'azure-ai' cannot be served" in (run.error or "")
    assert world.writes() == 0
    _noop(world, rec, ref)


def test_the_tag_and_the_http_option_take_a_list(world: World) -> None:
    from azure.mgmt.cognitiveservices import models as cs

    from importer.service import parse_import_body

    ref = AccountRef.parse(FOUNDRY)
    world.clients.cognitive(SUB).accounts.begin_update("rg-ai", ref.name, cs.Account(
        tags={"apim-importer-mode": "azure-openai-v1, azure-ai"})).result()
    rec = world.reconciler()
    assert rec.reconcile(ref).outcome == "applied"
    assert set(_apis(world, ref)) == {identity.api_id(ref, Mode.AZURE_AI),
                                      identity.api_id(ref, Mode.AZURE_OPENAI_V1)}
    _noop(world, rec, ref)
    _ref, _dry, _wait, overrides = parse_import_body(json.dumps({"account": FOUNDRY, "mode": BOTH}).encode())
    run = rec.reconcile(ref, overrides=overrides)
    assert run.outcome == "applied", run.error
    assert set(_apis(world, ref)) == {identity.api_id(ref), identity.api_id(ref, Mode.AZURE_OPENAI_V1)}
    _noop(world, rec, ref, overrides=overrides)


def test_the_cli_mode_option_takes_a_list(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--account", AOAI, "--apim", world.apim, "--arm-endpoint", world.sim.url]
    assert main(["apply", *common, "--mode", BOTH, "--json"]) == 0
    assert {c["id"] for c in json.loads(capsys.readouterr().out)["changes"] if c["kind"] == "api"} == {
        identity.api_id(AccountRef.parse(AOAI), m) for m in (Mode.AZURE_OPENAI, Mode.AZURE_OPENAI_V1)}
    assert main(["plan", *common, "--mode", "azure-openai-v1,azure-openai"]) == 0  # nothing to do
    capsys.readouterr()
    assert main(["plan", *common, "--mode", "azure-openai,openai"]) == 1
    out = capsys.readouterr()
    assert "option mode" in out.out + out.err


def test_an_account_published_before_modes_were_a_set_moves_to_its_mode_id(world: World) -> None:
    """Earlier releases gave every mode's API the bare prefix id: a v1 account's API sits at the
    account prefix on the v1 path. The API is replaced by the v1 id on that same path (the old one
    goes first: APIM refuses two APIs on one path), and nothing foreign is touched."""
    ref = AccountRef.parse(AOAI)
    old = identity.api_id(ref)  # the prefix: the only id an API ever had
    legacy = f"Azure AI Foundry API for account contoso-aoai.\n[managed-by=apim-ai-importer account={ref.id}]"
    client = world.apim_client()
    client.backend.create_or_update(world.rg, world.svc, old, models.BackendContract(
        url="https://contoso-aoai.openai.azure.com/openai/v1", protocol="http", description=legacy))
    client.api.begin_create_or_update(world.rg, world.svc, old, models.ApiCreateOrUpdateParameter(
        display_name="contoso-aoai (azure-openai-v1)", description=legacy, path="contoso-aoai/openai/v1",
        protocols=["https"])).result()
    rec = world.reconciler(IMPORTER_MODE="azure-openai-v1")
    world.sim.log.clear()
    run = rec.reconcile(ref)
    assert run.outcome == "applied", run.to_json()
    deletes = [(c.kind, c.id) for c in run.applied if c.action == "delete"]
    assert sorted(deletes) == [("api", old), ("backend", old)]
    assert _apis(world, ref) == {identity.api_id(ref, Mode.AZURE_OPENAI_V1): "contoso-aoai/openai/v1"}
    _noop(world, rec, ref)
