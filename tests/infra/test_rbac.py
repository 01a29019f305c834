"""Least-privilege RBAC: each file names exactly the roles it should, the ABAC condition on Role Based
Access Control Administrator lets the importer assign and delete only the two Cognitive Services roles
for service principals, and every role assignment is named guid(scope, principal, role)."""

from __future__ import annotations

import re

import pytest

from tests.infra.bicep import Expr, bicep_files, load

COGNITIVE_SERVICES_OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
COGNITIVE_SERVICES_USER = "a97b65f3-24c7-4388-baec-2e87135dc908"
API_MANAGEMENT_SERVICE_CONTRIBUTOR = "312a565d-c81f-4fd8-895a-4e21e48d571c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
EVENTGRID_DATA_SENDER = "d5a91429-5739-47e2-a06b-3470a27159e7"

COGNITIVE_ROLES = {COGNITIVE_SERVICES_OPENAI_USER, COGNITIVE_SERVICES_USER}

# Every GUID written in each file, and nothing else (so no Owner, Contributor, User Access Administrator).
EXPECTED_GUIDS = {
    "main.bicep": COGNITIVE_ROLES,  # only inside the ABAC condition
    "modules/rbac-apim.bicep": {API_MANAGEMENT_SERVICE_CONTRIBUTOR},
    "modules/rbac-watch-sub.bicep": {READER, RBAC_ADMINISTRATOR},
    "modules/rbac-watch-rg.bicep": {READER, RBAC_ADMINISTRATOR},
    # The Content Safety resource: read its endpoint, grant APIM's identity Cognitive Services User.
    "modules/rbac-content-safety.bicep": {READER, RBAC_ADMINISTRATOR},
    "modules/rbac-app.bicep": {
        STORAGE_BLOB_DATA_OWNER,
        STORAGE_QUEUE_DATA_CONTRIBUTOR,
        STORAGE_TABLE_DATA_CONTRIBUTOR,
        MONITORING_METRICS_PUBLISHER,
    },
    "modules/rbac-deadletter.bicep": {STORAGE_BLOB_DATA_CONTRIBUTOR},
    "modules/rbac-outcome-topic.bicep": {EVENTGRID_DATA_SENDER},
}


def _rel(path) -> str:
    return path.relative_to(path.parents[1] if path.parent.name == "modules" else path.parent).as_posix()


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_each_file_names_exactly_its_roles(path) -> None:
    rel = _rel(path)
    assert load(rel).guids() == EXPECTED_GUIDS.get(rel, set())


def _condition() -> str:
    condition = load("main.bicep").var("rbacAdminCondition").body
    assert isinstance(condition, str), "rbacAdminCondition must be a literal (no interpolation)"
    return condition


def _branches(condition: str) -> dict[str, str]:
    """Split the condition into its write and delete clauses (each guarded by ActionMatches)."""
    flat = " ".join(condition.split())
    parts = re.split(r"\)\s*AND\s*\(\s*\(\s*!\(ActionMatches", flat)
    assert len(parts) == 2, "expected exactly two clauses joined by AND (write, delete)"
    write, delete = parts[0], "!(ActionMatches" + parts[1]
    return {"write": write, "delete": delete}


def test_condition_allows_only_the_two_cognitive_services_roles_for_service_principals() -> None:
    clauses = _branches(_condition())
    for action, source in (("write", "Request"), ("delete", "Resource")):
        clause = clauses[action]
        assert f"!(ActionMatches{{'Microsoft.Authorization/roleAssignments/{action}'}})" in clause
        roles = re.findall(
            rf"@{source}\[Microsoft\.Authorization/roleAssignments:RoleDefinitionId\]\s+"
            r"ForAnyOfAnyValues:GuidEquals\s+\{([^}]*)\}",
            clause,
        )
        assert len(roles) == 1, f"{action}: one RoleDefinitionId test on @{source}"
        assert {r.strip().lower() for r in roles[0].split(",")} == COGNITIVE_ROLES
        types = re.findall(
            rf"@{source}\[Microsoft\.Authorization/roleAssignments:PrincipalType\]\s+"
            r"ForAnyOfAnyValues:StringEqualsIgnoreCase\s+\{([^}]*)\}",
            clause,
        )
        assert types == ["'ServicePrincipal'"], f"{action}: principal type must be ServicePrincipal only"
        # both tests must hold (AND), not either
        assert re.search(r"GuidEquals\s+\{[^}]*\}\s+AND\s+@" + source, clause)
        other = "Resource" if source == "Request" else "Request"
        assert f"@{other}[" not in clause, f"{action} must test @{source} attributes only"
    assert set(re.findall(r"[0-9a-f]{8}-[0-9a-f-]{27}", _condition().lower())) == COGNITIVE_ROLES


@pytest.mark.parametrize("module", ["modules/rbac-watch-sub.bicep", "modules/rbac-watch-rg.bicep"])
def test_watch_modules_constrain_rbac_administrator(module: str) -> None:
    bicep = load(module)
    admin = bicep.resource("rbacAdministrator").body["properties"]
    assert admin["conditionVersion"] == "2.0"
    assert isinstance(admin["condition"], Expr) and admin["condition"].text == "rbacAdminCondition"
    assert "rbacAdministratorRoleId" in admin["roleDefinitionId"].text
    assert bicep.var("rbacAdministratorRoleId").body == RBAC_ADMINISTRATOR
    reader = bicep.resource("reader").body["properties"]
    assert "condition" not in reader
    assert bicep.var("readerRoleId").body == READER


def test_main_passes_the_condition_to_every_watched_scope() -> None:
    main = load("main.bicep")
    for name, scope_call in (
        ("watchSubscriptionRoles", "subscription("),
        ("watchResourceGroupRoles", "resourceGroup("),
    ):
        module = main.module(name)
        assert module.loop
        assert module.body["params"]["rbacAdminCondition"].text == "rbacAdminCondition"
        assert module.body["scope"].text.startswith(scope_call)
    assert main.module("watchSubscriptionRoles").type == "modules/rbac-watch-sub.bicep"
    assert main.module("watchResourceGroupRoles").type == "modules/rbac-watch-rg.bicep"


def test_apim_role_is_on_the_instance_only() -> None:
    bicep = load("modules/rbac-apim.bicep")
    assignment = bicep.resource("apimContributor").body
    assert assignment["scope"].text == "apim"
    assert bicep.resource("apim").existing
    assert bicep.var("apiManagementServiceContributorRoleId").body == API_MANAGEMENT_SERVICE_CONTRIBUTOR
    scope = load("main.bicep").module("apimRoles").body["scope"].text
    assert scope == "resourceGroup(apimSubscriptionId, apimResourceGroupName)"


def test_storage_roles_are_on_the_importers_own_account() -> None:
    bicep = load("modules/rbac-app.bicep")
    assert bicep.resource("storageRoles").body["scope"].text == "storage"
    assert bicep.resource("storage").existing
    assert bicep.resource("functionMetricsPublisher").body["scope"].text == "appInsights"
    deadletter = load("modules/rbac-deadletter.bicep")
    assert deadletter.resource("deadLetterWriter").body["scope"].text == "container"


ROLE_ASSIGNMENTS = [
    (rel, decl.name)
    for rel in EXPECTED_GUIDS
    for decl in load(rel).resources_of_type("Microsoft.Authorization/roleAssignments")
]


def test_role_assignments_found() -> None:
    assert len(ROLE_ASSIGNMENTS) == 12


def test_content_safety_roles_are_on_that_resource_only_and_constrained() -> None:
    bicep = load("modules/rbac-content-safety.bicep")
    assert bicep.resource("contentSafety").existing
    for name in ("reader", "rbacAdministrator"):
        assert bicep.resource(name).body["scope"].text == "contentSafety"
    admin = bicep.resource("rbacAdministrator").body["properties"]
    assert admin["condition"].text == "rbacAdminCondition" and admin["conditionVersion"] == "2.0"
    main = load("main.bicep")
    assert main.module("contentSafetyRoles").type == "modules/rbac-content-safety.bicep"
    assert main.module("contentSafetyRoles").body["params"]["rbacAdminCondition"].text == "rbacAdminCondition"


@pytest.mark.parametrize(("rel", "name"), ROLE_ASSIGNMENTS, ids=[f"{r}:{n}" for r, n in ROLE_ASSIGNMENTS])
def test_role_assignment_shape(rel: str, name: str) -> None:
    body = load(rel).resource(name).body
    assignment_name = body["name"]
    assert isinstance(assignment_name, Expr) and assignment_name.type == "call_expression"
    args = assignment_name.field("arguments")
    assert assignment_name.text.startswith("guid(") and args is not None
    arg_texts = [(a.text or b"").decode() for a in args.named_children]
    assert len(arg_texts) == 3, f"guid(scope, principal, role): {assignment_name.text}"
    scope_arg, principal_arg, role_arg = arg_texts
    assert scope_arg.endswith(".id") or scope_arg in ("subscription().id", "resourceGroup().id")
    assert "rincipalId" in principal_arg
    assert "RoleId" in role_arg or role_arg == "roleId"
    props = body["properties"]
    assert props["principalType"] == "ServicePrincipal"
    assert props["roleDefinitionId"].text.startswith(
        "subscriptionResourceId('Microsoft.Authorization/roleDefinitions'"
    )
