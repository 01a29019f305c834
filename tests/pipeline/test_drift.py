"""Drift: each hand edit shows as exactly its change in the plan, apply repairs it, plan is empty.

Edits are made through the SDK, as a person or another tool would make them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devhost import seed
from importer.identity import api_id, backend_id
from importer.model import AccountRef
from tests.fixtures.world import AOAI, SUB, World


def _edit_policy(w: World, ref: AccountRef) -> None:
    from azure.mgmt.apimanagement import models

    w.apim_client().api_policy.create_or_update(
        w.rg, w.svc, api_id(ref), "policy",
        models.PolicyContract(value="<policies><inbound><base /></inbound><backend><base /></backend>"
                                    "<outbound><base /></outbound><on-error><base /></on-error></policies>",
                              format="xml"), if_match="*")


def _delete_backend(w: World, ref: AccountRef) -> None:
    w.apim_client().backend.delete(w.rg, w.svc, backend_id(ref), if_match="*")


def _change_backend_url(w: World, ref: AccountRef) -> None:
    from azure.mgmt.apimanagement import models

    client = w.apim_client()
    current = client.backend.get(w.rg, w.svc, backend_id(ref))
    client.backend.create_or_update(w.rg, w.svc, backend_id(ref), models.BackendContract(
        url="https://evil.example.com/openai", protocol="http", description=current.description,
        title=current.title), if_match="*")


def _change_api_path(w: World, ref: AccountRef) -> None:
    from azure.mgmt.apimanagement import models

    client = w.apim_client()
    current = client.api.get(w.rg, w.svc, api_id(ref))
    client.api.begin_create_or_update(w.rg, w.svc, api_id(ref), models.ApiCreateOrUpdateParameter(
        path="somewhere/else", display_name=current.display_name, description=current.description,
        protocols=current.protocols, service_url=current.service_url,
        subscription_key_parameter_names=current.subscription_key_parameter_names,
        subscription_required=current.subscription_required), if_match="*").result()


def _delete_operation(w: World, ref: AccountRef) -> None:
    client = w.apim_client()
    op = next(iter(client.api_operation.list_by_api(w.rg, w.svc, api_id(ref))))
    client.api_operation.delete(w.rg, w.svc, api_id(ref), op.name, if_match="*")


def _remove_product_link(w: World, ref: AccountRef) -> None:
    w.apim_client().product_api.delete(w.rg, w.svc, "ai-consumers", api_id(ref))


def _delete_role_assignment(w: World, ref: AccountRef) -> None:
    auth = w.clients.authorization(SUB)
    principal = w.apim_client().api_management_service.get(w.rg, w.svc).identity.principal_id
    for a in auth.role_assignments.list_for_scope(ref.id, filter=f"principalId eq '{principal}'"):
        auth.role_assignments.delete(ref.id, a.name)


def _tag_account(w: World, ref: AccountRef) -> None:
    from azure.mgmt.cognitiveservices import models

    w.clients.cognitive(SUB).accounts.begin_update(
        "rg-ai", ref.name, models.Account(tags={"apim-importer-tpm": "5000"})).result()


def _add_deployment(w: World, ref: AccountRef) -> None:
    seed.create_deployment(w.clients, ref.id, "o3-mini", model="o3-mini", version="2025-01-31")


def _delete_deployment(w: World, ref: AccountRef) -> None:
    w.clients.cognitive(SUB).deployments.begin_delete("rg-ai", ref.name, "gpt-4o").result()


DRIFTS: list[tuple[str, Callable[[World, AccountRef], None], set[tuple[str, str]]]] = [
    ("policy edited by hand", _edit_policy, {("update", "policy")}),
    ("backend deleted", _delete_backend, {("create", "backend")}),
    ("backend url changed", _change_backend_url, {("update", "backend")}),
    ("api path changed", _change_api_path, {("update", "api")}),
    ("an operation deleted", _delete_operation, {("update", "api")}),
    ("product link removed", _remove_product_link, {("create", "product_link")}),
    ("role assignment deleted", _delete_role_assignment, {("create", "role_assignment")}),
    ("account tag changed", _tag_account, {("update", "policy")}),
    ("deployment added", _add_deployment, {("update", "policy")}),
    ("deployment deleted", _delete_deployment, {("update", "policy")}),
]


@pytest.mark.parametrize(("label", "edit", "expected"), DRIFTS, ids=[d[0] for d in DRIFTS])
def test_drift_is_planned_exactly_and_repaired(world: World, label: str,
                                               edit: Callable[[World, AccountRef], None],
                                               expected: set[tuple[str, str]]) -> None:
    ref = AccountRef.parse(AOAI)
    rec = world.reconciler(IMPORTER_PRODUCTS="ai-consumers")
    assert rec.reconcile(ref).outcome == "applied"
    edit(world, ref)

    planned = rec.reconcile(ref, dry_run=True)
    assert planned.error is None, planned.error
    got = {(c.action.value, c.kind) for c in planned.plan.changes}
    assert got == expected, [c.to_json() for c in planned.plan.changes]

    world.sim.log.clear()
    repaired = rec.reconcile(ref)
    assert repaired.outcome == "applied" and repaired.error is None
    assert repaired.writes == len(expected) == world.writes()

    final = rec.reconcile(ref, dry_run=True)
    assert final.plan.empty, [c.to_json() for c in final.plan.changes]


def test_allow_list_follows_deployments(world: World) -> None:
    ref = AccountRef.parse(AOAI)
    rec = world.reconciler()
    rec.reconcile(ref)
    policy = lambda: world.apim_client().api_policy.get(  # noqa: E731
        world.rg, world.svc, api_id(ref), "policy", format="xml").value
    assert "|gpt-4o|" in policy()
    _delete_deployment(world, ref)
    rec.reconcile(ref)
    assert "gpt-4o|" not in policy().replace("|text-embedding-3-small|", "")

