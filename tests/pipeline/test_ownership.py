"""Ownership: foreign objects stay byte-identical, clashes are reported; offboarding deletes only ours;
hostile tag and option values never reach APIM."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from importer.identity import api_id, backend_id
from importer.model import AccountRef
from tests.fixtures.world import AOAI, FOUNDRY, SUB, World


def _snapshot(w: World, *, exclude: str = "") -> dict[str, str]:
    """Hash of every stored entity (optionally without those under ``exclude``)."""
    out = {}
    for rid in w.sim.ids():
        if exclude and exclude.lower() in rid.lower():
            continue
        body = w.sim.resource(rid)
        out[rid] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return out


def _foreign_api(w: World, api: str, path: str) -> None:
    from azure.mgmt.apimanagement import models

    doc = {"openapi": "3.0.1", "info": {"title": "foreign", "version": "1"},
           "paths": {"/hello": {"get": {"operationId": "hello",
                                        "responses": {"200": {"description": "ok"}}}}}}
    w.apim_client().api.begin_create_or_update(w.rg, w.svc, api, models.ApiCreateOrUpdateParameter(
        display_name="Someone else's API", path=path, protocols=["https"], format="openapi+json",
        value=json.dumps(doc))).result()


def _foreign_policy(w: World, api: str) -> None:
    from azure.mgmt.apimanagement import models

    w.apim_client().api_policy.create_or_update(w.rg, w.svc, api, "policy", models.PolicyContract(
        value="<policies><inbound><base /><set-header name=\"x-team\" exists-action=\"override\">"
              "<value>payments</value></set-header></inbound><backend><base /></backend>"
              "<outbound><base /></outbound><on-error><base /></on-error></policies>", format="xml"))


def test_foreign_api_on_our_path_is_reported_and_untouched(world: World) -> None:
    ref = AccountRef.parse(AOAI)
    _foreign_api(world, "payments-openai", "contoso-aoai/openai")
    _foreign_policy(world, "payments-openai")
    before = _snapshot(world)
    world.sim.log.clear()
    run = world.reconciler().reconcile(ref)
    assert run.outcome == "conflict"
    assert "payments-openai" in run.error
    assert world.writes() == 0
    assert _snapshot(world) == before


def test_foreign_api_with_our_id_is_reported_unless_adopted(world: World) -> None:
    ref = AccountRef.parse(AOAI)
    _foreign_api(world, api_id(ref), "legacy/aoai")
    before = _snapshot(world)
    world.sim.log.clear()
    run = world.reconciler().reconcile(ref)
    assert run.outcome == "conflict" and world.writes() == 0
    assert _snapshot(world) == before

    adopted = world.reconciler(IMPORTER_ADOPT="true").reconcile(ref)
    assert adopted.outcome == "applied", adopted.error
    api = world.apim_client().api.get(world.rg, world.svc, api_id(ref))
    assert api.path == "contoso-aoai/openai" and "managed-by=apim-ai-importer" in api.description
    assert world.reconciler().reconcile(ref, dry_run=True).plan.empty


def test_foreign_backend_with_our_id_is_not_overwritten(world: World) -> None:
    from azure.mgmt.apimanagement import models

    ref = AccountRef.parse(AOAI)
    world.apim_client().backend.create_or_update(world.rg, world.svc, backend_id(ref), models.BackendContract(
        url="https://mine.example.com", protocol="http", description="hand made"))
    before = _snapshot(world)
    world.sim.log.clear()
    run = world.reconciler().reconcile(ref)
    assert run.outcome == "conflict" and world.writes() == 0
    assert _snapshot(world) == before


def test_opt_out_offboards_exactly_the_owned_objects(world: World) -> None:
    from azure.mgmt.cognitiveservices import models

    aoai, foundry = AccountRef.parse(AOAI), AccountRef.parse(FOUNDRY)
    rec = world.reconciler(IMPORTER_PRODUCTS="ai-consumers")
    assert rec.reconcile(aoai).outcome == "applied"
    assert rec.reconcile(foundry).outcome == "applied"
    _foreign_api(world, "payments-api", "payments")
    _foreign_policy(world, "payments-api")
    others = _snapshot(world, exclude=api_id(aoai))
    world.clients.cognitive(SUB).accounts.begin_update(
        "rg-ai", aoai.name, models.Account(tags={"apim-importer": "disabled"})).result()

    run = rec.reconcile(aoai)
    assert run.outcome == "offboarded", run.error
    kinds = sorted((c.action.value, c.kind) for c in run.plan.changes)
    assert kinds == [("delete", "api"), ("delete", "backend"), ("delete", "role_assignment")]
    assert not [rid for rid in world.sim.ids() if api_id(aoai) in rid or backend_id(aoai) in rid]
    after = _snapshot(world, exclude=api_id(aoai))
    # Everything else — the other account's objects, the foreign API and policy, the product — is
    # byte-identical, except the account whose tag we changed and the deleted role assignment.
    changed = {rid for rid in set(others) | set(after) if others.get(rid) != after.get(rid)}
    assert {c.rsplit("/providers/", 1)[-1].split("/")[0] for c in changed} <= {
        "Microsoft.CognitiveServices", "Microsoft.Authorization"}
    assert not any("contoso-foundry" in c or "payments" in c for c in changed)
    assert rec.reconcile(aoai).outcome == "noop"


def test_deleted_account_is_offboarded(world: World) -> None:
    ref = AccountRef.parse(AOAI)
    rec = world.reconciler()
    rec.reconcile(ref)
    world.clients.cognitive(SUB).accounts.begin_delete("rg-ai", ref.name).result()
    run = rec.reconcile(ref)
    assert run.outcome == "offboarded" and run.not_found in run.notes
    assert run.not_found == f"account {ref.name} not found in resource group rg-ai (subscription {SUB})"
    assert not [rid for rid in world.sim.ids() if api_id(ref) in rid]


HOSTILE = ['a"b', "<x/>", "a&b", "]]>", "@(context.Request)", "ünïcødé", "a\nb"]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("tag", ["apim-importer-base-path", "apim-importer-products", "apim-importer-tpm",
                                 "apim-importer-cache", "apim-importer-mode", "apim-importer-quota"])
def test_hostile_tag_values_are_rejected_and_nothing_is_written(world: World, tag: str, value: str) -> None:
    from azure.mgmt.cognitiveservices import models

    ref = AccountRef.parse(AOAI)
    world.clients.cognitive(SUB).accounts.begin_update(
        "rg-ai", ref.name, models.Account(tags={tag: value})).result()
    world.sim.log.clear()
    run = world.reconciler().reconcile(ref)
    assert run.outcome == "failed" and run.error_kind == "permanent"
    assert tag in run.error
    assert world.writes() == 0


@pytest.mark.parametrize("override", [{"displayName": "x\u0000y"}, {"basePath": "../../x"},
                                      {"policyFragment": "a\"/><x"}, {"products": "a<b"},
                                      {"contentSafetyId": "/subscriptions/x/resourceGroups/@(1)/providers/"
                                                          "Microsoft.CognitiveServices/accounts/a"}])
def test_hostile_overrides_are_rejected(world: World, override: dict[str, Any]) -> None:
    run = world.reconciler().reconcile(AccountRef.parse(AOAI), overrides=override)
    assert run.outcome == "failed" and world.writes() == 0


def test_display_name_with_markup_is_stored_as_text(world: World) -> None:
    from importer import policyxml

    ref = AccountRef.parse(AOAI)
    name = 'Contoso "AI" <gateway> & friends ]]> ünïcødé'
    run = world.reconciler().reconcile(ref, overrides={"displayName": name})
    assert run.error is None, run.error
    api = world.apim_client().api.get(world.rg, world.svc, api_id(ref))
    assert api.display_name == name
    policy = world.apim_client().api_policy.get(world.rg, world.svc, api_id(ref), "policy").value
    assert [t for s, t in policyxml.statements(policy) if s == "inbound"] == [
        t for s, t in policyxml.statements(run.plan.changes[[c.kind for c in run.plan.changes].index(
            "policy")].after.xml) if s == "inbound"]


def test_an_account_that_is_not_enabled_costs_one_round_of_reads_and_no_apim_read(world: World) -> None:
    """IMPORTER_OPT_IN=true: an untagged account's events are common and must stay cheap."""
    ref = AccountRef.parse(AOAI)
    rec = world.reconciler(IMPORTER_OPT_IN="true")
    world.sim.log.clear()
    run = rec.reconcile(ref)
    assert run.outcome == "noop" and "opted out by tag" in run.notes
    assert world.writes() == 0
    # account, deployments, API, operations, policy, backends, role assignments (all in flight
    # together), and the probe key's subscription: the APIM service is not needed.
    assert world.reads() <= 8, world.sim.log.as_dicts()
    assert not world.sim.log.select(method="GET", path=r"/service/[^/]+$")


def test_offboarding_removes_our_assignment_even_for_a_previous_apim_identity(world: World) -> None:
    import uuid

    from azure.mgmt.apimanagement import models as apim_models
    from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
    from azure.mgmt.cognitiveservices import models

    ref = AccountRef.parse(AOAI)
    rec = world.reconciler()
    assert rec.reconcile(ref).outcome == "applied"
    auth = world.clients.authorization(SUB)
    reader = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/" \
             "acdd72a7-3385-48ef-bd42-f606fba81ae7"
    foreign = str(uuid.uuid4())
    auth.role_assignments.create(ref.id, foreign, RoleAssignmentCreateParameters(
        role_definition_id=reader, principal_id=str(uuid.uuid4()), principal_type="User",
        description="someone else's"))
    client = world.apim_client()
    for kind in ("None", "SystemAssigned"):  # APIM gets a new identity; ours names the old one
        client.api_management_service.begin_update(world.rg, world.svc,
            apim_models.ApiManagementServiceUpdateParameters(
                identity=apim_models.ApiManagementServiceIdentity(type=kind))).result()
    world.clients.cognitive(SUB).accounts.begin_update(
        "rg-ai", ref.name, models.Account(tags={"apim-importer": "disabled"})).result()
    run = rec.reconcile(ref)
    assert run.outcome == "offboarded", run.error
    assert ("delete", "role_assignment") in {(c.action.value, c.kind) for c in run.plan.changes}
    left = {a.name for a in auth.role_assignments.list_for_scope(ref.id, filter="atScope()")
            if (a.scope or "").lower() == ref.id.lower()}
    assert left == {foreign}
    assert rec.reconcile(ref).outcome == "noop"


def test_a_base_path_held_for_another_account_names_that_account(world: World) -> None:
    from azure.mgmt.cognitiveservices import models

    aoai, foundry = AccountRef.parse(AOAI), AccountRef.parse(FOUNDRY)
    rec = world.reconciler(IMPORTER_BASE_PATH="shared")
    assert rec.reconcile(aoai).outcome == "applied"
    # The Foundry account asked for the same base path and mode as the OpenAI account's API.
    world.clients.cognitive(SUB).accounts.begin_update(
        "rg-ai", foundry.name, models.Account(tags={"apim-importer-mode": "azure-openai"})).result()
    world.sim.log.clear()
    run = rec.reconcile(foundry)
    assert run.outcome == "conflict" and world.writes() == 0
    assert f"which the importer imported for account {AOAI}" in run.error
    assert "does not own" not in run.error


def test_a_deployment_left_off_for_its_name_says_so(world: World) -> None:
    from azure.mgmt.cognitiveservices import models as cs

    ref = AccountRef.parse(AOAI)
    world.clients.cognitive(SUB).deployments.begin_create_or_update(
        "rg-ai", ref.name, "gpt@4o", cs.Deployment(sku=cs.Sku(name="Standard", capacity=1), properties=(
            cs.DeploymentProperties(model=cs.DeploymentModel(format="OpenAI", name="gpt-4o", version="1"))))
    ).result()
    run = world.reconciler().reconcile(ref)
    assert run.outcome == "applied", run.error
    note = next(n for n in run.notes if n.startswith("deployment gpt@4o not routed"))
    assert "its name 'gpt@4o' is outside what the allow-list carries" in note
    assert "provisioningState" not in note


def test_adopt_takes_over_an_id_clash_but_never_a_path_clash(world: World) -> None:
    # What IMPORTER_ADOPT's documentation (settings table, README, docs/policy.md) says it does.
    from importer.settings import SETTINGS

    doc = next(s.doc for s in SETTINGS if s.name == "IMPORTER_ADOPT")
    assert "importer's id" in doc and "path clash stays a conflict" in doc
    ref = AccountRef.parse(AOAI)
    _foreign_api(world, "payments-openai", "contoso-aoai/openai")
    before = _snapshot(world)
    run = world.reconciler(IMPORTER_ADOPT="true").reconcile(ref)
    assert run.outcome == "conflict" and "payments-openai" in run.error
    assert _snapshot(world) == before
