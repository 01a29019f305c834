"""The pipeline against the stand-in with the real SDK clients: create, idempotence, refusal.

Assertions are on what the stand-in holds afterwards and on its request log, never on calls.
"""

from __future__ import annotations

from typing import Any

import pytest

from importer import openapi, policyxml
from importer.identity import api_id, backend_id
from importer.model import AccountRef, Mode
from importer.render import ROLE_COGNITIVE_SERVICES_USER, ROLE_OPENAI_USER
from tests.fixtures.world import World

CASES = [
    ("contoso-aoai", "OpenAI", Mode.AZURE_OPENAI, "contoso-aoai/openai", "openai", ROLE_OPENAI_USER),
    ("contoso-aoai", "OpenAI", Mode.AZURE_OPENAI_V1, "contoso-aoai/openai/v1", "openai/v1",
     ROLE_OPENAI_USER),
    ("contoso-foundry", "AIServices", Mode.AZURE_AI, "contoso-foundry/models", "models",
     ROLE_COGNITIVE_SERVICES_USER),
    ("contoso-foundry", "AIServices", Mode.AZURE_OPENAI, "contoso-foundry/openai", "openai",
     ROLE_OPENAI_USER),
]


@pytest.mark.parametrize(("name", "kind", "mode", "path", "suffix", "role"), CASES,
                         ids=[f"{c[0]}-{c[2].value}" for c in CASES])
def test_fresh_apply_creates_what_the_portal_creates(world: World, name: str, kind: str, mode: Mode,
                                                     path: str, suffix: str, role: str) -> None:
    ref = AccountRef.parse(f"/subscriptions/{world.sim_sub}/resourceGroups/rg-ai/providers/"
                           f"Microsoft.CognitiveServices/accounts/{name}")
    rec = world.reconciler(IMPORTER_MODE=mode.value, IMPORTER_PRODUCTS="ai-consumers")
    run = rec.reconcile(ref)
    assert run.error is None, run.error
    assert run.outcome == "applied"
    assert run.writes == world.writes()

    client = world.apim_client()
    aid = api_id(ref, mode)
    api = client.api.get(world.rg, world.svc, aid)
    assert api.path == path
    assert [str(p) for p in api.protocols] == ["https"]
    assert api.subscription_required is True
    assert (api.subscription_key_parameter_names.header, api.subscription_key_parameter_names.query) \
        == ("api-key", "api-key")
    assert api.display_name and "managed-by=apim-ai-importer" in api.description

    ops = {(o.method.upper(), o.url_template) for o in client.api_operation.list_by_api(
        world.rg, world.svc, aid)}
    assert ops == set(openapi.operations(openapi.document(mode)))
    if mode is Mode.AZURE_OPENAI:
        assert ("POST", "/deployments/{deployment-id}/chat/completions?api-version={api-version}") in ops

    account = world.clients.cognitive(world.sim_sub).accounts.get("rg-ai", name)
    backend = client.backend.get(world.rg, world.svc, backend_id(ref, "main", mode))
    assert backend.url == account.properties.endpoint + suffix
    assert str(backend.protocol) in ("http", "BackendProtocol.HTTP")

    policy = client.api_policy.get(world.rg, world.svc, aid, "policy", format="xml").value
    stmts = [tag for section, tag in policyxml.statements(policy) if section == "inbound"]
    assert stmts.index("authentication-managed-identity") < stmts.index("set-backend-service")
    assert f'backend-id="{backend_id(ref, "main", mode)}"' in policy
    assert 'resource="https://cognitiveservices.azure.com"' in policy

    assert client.product_api.check_entity_exists(world.rg, world.svc, "ai-consumers", aid) is True

    svc = client.api_management_service.get(world.rg, world.svc)
    assignments = list(world.clients.authorization(world.sim_sub).role_assignments.list_for_scope(
        ref.id, filter=f"principalId eq '{svc.identity.principal_id}'"))
    assert [a.role_definition_id.rsplit("/", 1)[-1] for a in assignments] == [role]
    assert assignments[0].principal_type == "ServicePrincipal"

    # Idempotence: plan is empty and a second apply makes 0 ARM writes.
    before = world.writes()
    assert rec.reconcile(ref, dry_run=True).plan.empty
    again = rec.reconcile(ref)
    assert again.outcome == "noop" and again.writes == 0
    assert world.writes() == before


def test_a_mode_the_account_kind_cannot_serve_is_refused_and_nothing_is_written(
        world: World, aoai: AccountRef) -> None:
    run = world.reconciler(IMPORTER_MODE="azure-ai").reconcile(aoai)
    assert run.outcome == "failed" and run.error_kind == "permanent"
    assert "azure-ai" in run.error and "OpenAI" in run.error
    assert world.writes() == 0


def test_a_missing_product_is_a_clear_error_before_any_write(world: World, aoai: AccountRef) -> None:
    run = world.reconciler(IMPORTER_PRODUCTS="no-such-product").reconcile(aoai)
    assert run.outcome == "failed"
    assert "no-such-product" in run.error and "does not exist" in run.error
    assert world.writes() == 0


def test_no_apim_identity_is_a_clear_error_unless_the_option_turns_it_on(world: World,
                                                                         aoai: AccountRef) -> None:
    from azure.mgmt.apimanagement import models

    world.apim_client().api_management_service.begin_update(
        world.rg, world.svc, models.ApiManagementServiceUpdateParameters(
            identity=models.ApiManagementServiceIdentity(type="None"))).result()
    world.sim.log.clear()
    run = world.reconciler().reconcile(aoai)
    assert run.outcome == "failed" and "identity" in run.error
    assert "IMPORTER_ENABLE_APIM_IDENTITY" in run.error
    assert world.writes() == 0

    run = world.reconciler(IMPORTER_ENABLE_APIM_IDENTITY="true").reconcile(aoai)
    assert run.error is None and run.outcome == "applied"
    svc = world.apim_client().api_management_service.get(world.rg, world.svc)
    assert svc.identity.principal_id


def test_no_op_reconcile_read_budget(world: World, aoai: AccountRef) -> None:
    """Issue budget: a no-op reconcile of one account in a cold process costs at most 8 reads."""
    rec = world.reconciler(IMPORTER_PRODUCTS="ai-consumers")
    assert rec.reconcile(aoai).outcome == "applied"
    world.sim.log.clear()
    run = rec.reconcile(aoai)
    assert run.outcome == "noop" and world.writes() == 0
    paths = sorted(e.path.rsplit("/providers/", 1)[-1] for e in world.sim.log.entries)
    # account, deployments, API, operations, policy, backend, product links, role assignments:
    # APIM's principal comes from our own role assignment, so the APIM service is not read.
    assert world.reads() == 8, paths
    assert not any(p.lower().endswith(f"service/{world.svc}".lower()) for p in paths), paths


def test_a_cold_run_with_something_to_do_reads_the_apim_service(world: World, aoai: AccountRef) -> None:
    rec = world.reconciler()
    assert rec.reconcile(aoai).outcome == "applied"
    world.apim_client().api_policy.create_or_update(
        world.rg, world.svc, api_id(aoai), "policy",
        {"value": "<policies><inbound><base /></inbound></policies>", "format": "xml"}, if_match="*")
    world.sim.log.clear()
    run = rec.reconcile(aoai)
    assert run.outcome == "applied" and [c.kind for c in run.applied] == ["policy"]
    services = [e for e in world.sim.log.entries
                if e.method == "GET" and e.path.lower().endswith(f"/service/{world.svc}".lower())]
    assert len(services) == 1  # the plan had a change: decided on APIM's own word
    assert rec.reconcile(aoai).outcome == "noop"


def _count_renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from importer import reconcile

    calls = [0]
    real = reconcile.render

    def counted(*args: Any, **kw: Any) -> Any:
        calls[0] += 1
        return real(*args, **kw)

    monkeypatch.setattr(reconcile, "render", counted)
    return calls


def _drift_policy(world: World, ref: AccountRef) -> None:
    world.apim_client().api_policy.create_or_update(
        world.rg, world.svc, api_id(ref), "policy",
        {"value": "<policies><inbound><base /></inbound></policies>", "format": "xml"}, if_match="*")


def test_a_cold_run_renders_once_when_apims_word_confirms_the_principal(
        world: World, aoai: AccountRef, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = world.reconciler()
    assert rec.reconcile(aoai).outcome == "applied"
    _drift_policy(world, aoai)
    renders = _count_renders(monkeypatch)
    run = rec.reconcile(aoai)
    assert run.outcome == "applied" and [c.kind for c in run.applied] == ["policy"]
    assert renders == [1]  # the APIM service was read (a change) and said what the guess said


def test_a_cold_run_with_a_change_after_a_new_apim_identity_renders_again_and_assigns_it(
        world: World, aoai: AccountRef, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.mgmt.apimanagement import models

    rec = world.reconciler()
    assert rec.reconcile(aoai).outcome == "applied"
    client = world.apim_client()
    for kind in ("None", "SystemAssigned"):
        client.api_management_service.begin_update(world.rg, world.svc,
            models.ApiManagementServiceUpdateParameters(
                identity=models.ApiManagementServiceIdentity(type=kind))).result()
    _drift_policy(world, aoai)
    renders = _count_renders(monkeypatch)
    run = rec.reconcile(aoai)
    assert run.outcome == "applied", run.error
    assert sorted((c.action, c.kind) for c in run.applied) == [("create", "role_assignment"),
                                                               ("update", "policy")]
    assert renders == [2]  # guessed from our assignment, then decided on APIM's own word


def test_a_new_apim_identity_is_found_by_a_run_with_changes_or_the_fleet_pass(
        world: World, aoai: AccountRef) -> None:
    """The documented trade-off: a cold no-op run trusts the principal on our own assignment; any
    run with a change, and every fleet pass, read the APIM service and assign the new identity."""
    from azure.mgmt.apimanagement import models

    from importer.fleet import enumerate_estate, run_pass

    rec = world.reconciler()
    assert rec.reconcile(aoai).outcome == "applied"
    client = world.apim_client()
    old = client.api_management_service.get(world.rg, world.svc).identity.principal_id
    for kind in ("None", "SystemAssigned"):
        client.api_management_service.begin_update(world.rg, world.svc,
            models.ApiManagementServiceUpdateParameters(
                identity=models.ApiManagementServiceIdentity(type=kind))).result()
    new = client.api_management_service.get(world.rg, world.svc).identity.principal_id
    assert new and new != old
    assert rec.reconcile(aoai).outcome == "noop"  # the blind spot, bounded by the timer
    results = {r.account: r for r in run_pass(rec, enumerate_estate(rec))}
    fixed = results[aoai.id]
    assert fixed.outcome == "applied", fixed.error
    assert [(c.action, c.kind) for c in fixed.applied] == [("create", "role_assignment")]
    auth = world.clients.authorization(world.sim_sub)
    assert list(auth.role_assignments.list_for_scope(aoai.id, filter=f"principalId eq '{new}'"))
