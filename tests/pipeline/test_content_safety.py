"""Content safety that authenticates (issue 13 §5), and the stand-in's data-plane auth behind it.

The importer names the Content Safety resource by its ARM id, reads its endpoint, writes a backend
whose credentials are APIM's managed identity (a field only the JSON seam's api-version carries) and
grants that identity Cognitive Services User on the resource. The stand-in's gateway answers a
model or Content Safety call only with a token of a principal that holds a role for inference there.
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.mgmt.apimanagement import models

from devhost import seed
from importer.azure.rest import ArmJson
from importer.identity import api_id, backend_id
from importer.model import AccountRef, Mode
from importer.render import ROLE_COGNITIVE_SERVICES_USER, ROLE_OPENAI_USER, owns_safety_grant
from tests.armsim.test_gateway import CHAT, _call, _subscription
from tests.fixtures.world import AOAI, FOUNDRY, SUB, World

SAFETY = seed.account_id(SUB, seed.AI_GROUP, "contoso-safety")
UNSAFE = "armsim-unsafe"


def _roles(world: World, scope: str) -> list[Any]:
    auth = world.clients.authorization(SUB)
    return [r for r in auth.role_assignments.list_for_scope(scope, filter="atScope()")
            if (r.scope or "").lower() == scope.lower()]


def _apim_principal(world: World) -> str:
    svc = world.apim_client().api_management_service.get(world.rg, world.svc)
    return str(svc.identity.principal_id)


def _grant_openai_user(world: World, scope: str, name: str, principal: str) -> None:
    from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

    world.clients.authorization(SUB).role_assignments.create(scope, name, RoleAssignmentCreateParameters(
        role_definition_id=f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
                           f"{ROLE_OPENAI_USER}", principal_id=principal, principal_type="ServicePrincipal"))


def _grants(world: World) -> list[Any]:
    principal = _apim_principal(world)
    return [r for r in _roles(world, SAFETY) if r.principal_id == principal
            and r.role_definition_id.lower().endswith(ROLE_COGNITIVE_SERVICES_USER)]


@pytest.fixture
def safe(gateway_world: World) -> dict[str, Any]:
    """contoso-aoai imported with content safety on; a key for its API."""
    seed.create_account(gateway_world.clients, name="contoso-safety", kind="ContentSafety")
    rec = gateway_world.reconciler(IMPORTER_CONTENT_SAFETY_ID=SAFETY, IMPORTER_PROBE="off")
    ref = AccountRef.parse(AOAI)
    run = rec.reconcile(ref)
    assert run.outcome == "applied", run.error
    svc = gateway_world.apim_client().api_management_service.get(gateway_world.rg, gateway_world.svc)
    key = _subscription(gateway_world, "k-aoai", f"/apis/{api_id(ref)}")
    return {"world": gateway_world, "rec": rec, "ref": ref, "key": key,
            "url": f"{svc.gateway_url}/contoso-aoai/openai" + CHAT.format("gpt-4o")}


def _chat(safe: dict[str, Any], text: str = "ping") -> tuple[int, dict[str, str], Any]:
    return _call(safe["url"], {"messages": [{"role": "user", "content": text}]}, {"api-key": safe["key"]})


def test_backend_authenticates_with_apims_identity_and_the_grant_is_marked(safe: dict[str, Any]) -> None:
    world: World = safe["world"]
    bid = backend_id(safe["ref"], "safety")
    raw, _ = ArmJson(world.apim_client()).get(f"{world.apim}/backends/{bid}")
    props = raw["properties"]
    assert props["credentials"]["managedIdentity"] == {"resource": "https://cognitiveservices.azure.com"}
    assert props["url"] == "https://contoso-safety.cognitiveservices.azure.com/"  # read from the resource
    # The typed SDK (2024-05-01) can't see the credentials: the reason for the JSON seam.
    typed = world.apim_client().backend.get(world.rg, world.svc, bid)
    assert typed.credentials is None or not getattr(typed.credentials, "managed_identity", None)
    grants = _grants(world)
    assert len(grants) == 1 and owns_safety_grant(grants[0].description, safe["rec"].apim)
    world.sim.log.clear()
    again = safe["rec"].reconcile(safe["ref"])
    assert again.outcome == "noop" and world.writes() == 0


def test_a_safe_prompt_passes_and_an_unsafe_one_is_blocked(safe: dict[str, Any]) -> None:
    status, _, body = _chat(safe)
    assert status == 200 and body["object"] == "chat.completion"
    status, _, body = _chat(safe, f"tell me something {UNSAFE}")
    assert status == 403 and "content safety" in body["message"]


def test_without_the_grant_content_safety_fails_and_the_next_run_restores_it(safe: dict[str, Any]) -> None:
    world: World = safe["world"]
    auth = world.clients.authorization(SUB)
    for grant in _grants(world):
        auth.role_assignments.delete(SAFETY, grant.name)
    status, _, body = _chat(safe)
    assert status == 500 and "answered 401" in body["message"] and "lacks the required data action" in body[
        "message"]
    run = safe["rec"].reconcile(safe["ref"])
    assert [(c.action.value, c.kind) for c in run.plan.changes] == [("create", "role_assignment")]
    assert _chat(safe)[0] == 200


def test_a_backend_written_without_credentials_fails_and_is_repaired(safe: dict[str, Any]) -> None:
    """Written at 2024-05-01 (the typed SDK), the credentials are gone: the Content Safety call
    carries no token; the importer sees the drift at the preview version and writes it back."""
    world: World = safe["world"]
    bid = backend_id(safe["ref"], "safety")
    client = world.apim_client()
    old = client.backend.get(world.rg, world.svc, bid)
    client.backend.create_or_update(world.rg, world.svc, bid, models.BackendContract(
        url=old.url, protocol="http", description=old.description, title=old.title))
    status, _, body = _chat(safe)
    assert status == 500 and "answered 401" in body["message"]
    run = safe["rec"].reconcile(safe["ref"])
    assert [(c.action.value, c.kind, c.id) for c in run.plan.changes] == [("update", "backend", bid)]
    assert "identity_resource: (none) → https://cognitiveservices.azure.com" in run.plan.changes[0].diff
    assert _chat(safe)[0] == 200


def test_a_missing_content_safety_resource_is_an_error_before_any_write(gateway_world: World) -> None:
    run = gateway_world.reconciler(IMPORTER_CONTENT_SAFETY_ID=SAFETY).reconcile(AccountRef.parse(AOAI))
    error = run.error or ""
    assert run.outcome == "failed" and "contoso-safety" in error and "IMPORTER_CONTENT_SAFETY_ID" in error
    assert gateway_world.writes() == 0


def test_the_retired_endpoint_setting_fails_closed(gateway_world: World) -> None:
    run = gateway_world.reconciler(
        IMPORTER_CONTENT_SAFETY_ENDPOINT="https://contoso-safety.cognitiveservices.azure.com/").reconcile(
        AccountRef.parse(AOAI))
    assert run.outcome == "failed" and "IMPORTER_CONTENT_SAFETY_ID" in (run.error or "")
    assert gateway_world.writes() == 0


def test_the_grant_goes_when_no_imported_api_uses_the_resource(safe: dict[str, Any]) -> None:
    world: World = safe["world"]
    rec = safe["rec"]
    foundry = AccountRef.parse(FOUNDRY)
    assert rec.reconcile(foundry).outcome == "applied"  # a second account uses the same resource
    assert len(_grants(world)) == 1  # one grant, shared
    cs = world.clients.cognitive(SUB)
    from azure.mgmt.cognitiveservices import models as cs_models

    cs.accounts.begin_update(seed.AI_GROUP, "contoso-aoai", cs_models.Account(
        tags={"apim-importer-safety": "off"})).result()
    run = rec.reconcile(safe["ref"])
    assert run.outcome == "applied" and len(_grants(world)) == 1  # contoso-foundry still uses it
    cs.accounts.begin_update(seed.AI_GROUP, "contoso-foundry", cs_models.Account(
        tags={"apim-importer": "disabled"})).result()
    run = rec.reconcile(foundry)
    assert run.outcome == "offboarded" and _grants(world) == []
    assert any("Cognitive Services User" in n for n in run.notes)
    world.sim.log.clear()
    assert rec.reconcile(safe["ref"]).outcome == "noop" and world.writes() == 0


def test_a_fleet_pass_removes_an_unused_grant_once(safe: dict[str, Any]) -> None:
    from importer.fleet import enumerate_estate, run_pass

    world: World = safe["world"]
    rec = world.reconciler(IMPORTER_PROBE="off")  # content safety no longer configured
    results = run_pass(rec, enumerate_estate(rec))
    assert all(r.error is None for r in results), [r.error for r in results]
    assert _grants(world) == []
    world.sim.log.clear()
    run_pass(rec, enumerate_estate(rec))
    assert world.writes() == 0


# ---------------------------------------------------------------------------------------------
# Data-plane auth of the model endpoint


def test_the_model_answers_401_without_apims_role_on_the_account(safe: dict[str, Any]) -> None:
    world: World = safe["world"]
    auth = world.clients.authorization(SUB)
    principal = _apim_principal(world)
    ours = [r for r in _roles(world, AOAI) if r.principal_id == principal]
    assert ours and all(r.role_definition_id.lower().endswith(ROLE_OPENAI_USER) for r in ours)
    for role in ours:
        auth.role_assignments.delete(AOAI, role.name)
    status, _, body = _chat(safe)
    assert status == 401 and body["error"]["code"] == "PermissionDenied"
    assert principal in body["error"]["message"]
    safe["rec"].reconcile(safe["ref"])
    assert _chat(safe)[0] == 200


def test_a_role_inherited_from_the_resource_group_counts(safe: dict[str, Any]) -> None:
    world: World = safe["world"]
    auth = world.clients.authorization(SUB)
    principal = _apim_principal(world)
    for role in [r for r in _roles(world, AOAI) if r.principal_id == principal]:
        auth.role_assignments.delete(AOAI, role.name)
    group = f"/subscriptions/{SUB}/resourceGroups/{seed.AI_GROUP}"
    _grant_openai_user(world, group, "0e5e4a7e-0000-4000-8000-000000000001", principal)
    assert _chat(safe)[0] == 200


def test_the_openai_role_does_not_open_the_models_route(gateway_world: World) -> None:
    """Azure AI mode (/models) needs Cognitive Services User: the OpenAI User role is not enough."""
    ref = AccountRef.parse(FOUNDRY)
    rec = gateway_world.reconciler(IMPORTER_MODE="azure-ai", IMPORTER_PROBE="off")
    assert rec.reconcile(ref).outcome == "applied"
    svc = gateway_world.apim_client().api_management_service.get(gateway_world.rg, gateway_world.svc)
    key = _subscription(gateway_world, "k-foundry", f"/apis/{api_id(ref, Mode.AZURE_AI)}")
    url = f"{svc.gateway_url}/contoso-foundry/models/chat/completions?api-version=2024-05-01-preview"
    body = {"model": "Phi-4", "messages": [{"role": "user", "content": "ping"}]}
    assert _call(url, body, {"api-key": key})[0] == 200
    auth = gateway_world.clients.authorization(SUB)
    principal = _apim_principal(gateway_world)
    for role in [r for r in _roles(gateway_world, FOUNDRY) if r.principal_id == principal]:
        auth.role_assignments.delete(FOUNDRY, role.name)
    _grant_openai_user(gateway_world, FOUNDRY, "0e5e4a7e-0000-4000-8000-000000000002", principal)
    status, _, answer = _call(url, body, {"api-key": key})
    assert status == 401 and answer["error"]["code"] == "PermissionDenied"
