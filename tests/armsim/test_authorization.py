"""Conformance: azure-mgmt-authorization (2022-04-01 role assignments) against the stand-in.

ARM's uniqueness rules are the point: same name and content is idempotent, the same triple under
another name is 409 RoleAssignmentExists, a reused name for another principal is 400.
"""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

from devhost import seed
from tests.armsim.wire import call

SUB = seed.SUBSCRIPTION
OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
COGNITIVE_USER = "a97b65f3-24c7-4388-baec-2e87135dc908"


def role(guid: str) -> str:
    return f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def params(principal: str, role_guid: str = OPENAI_USER, **extra) -> RoleAssignmentCreateParameters:
    return RoleAssignmentCreateParameters(role_definition_id=role(role_guid), principal_id=principal,
                                          principal_type="ServicePrincipal", **extra)


@pytest.fixture
def scope(clients):
    return seed.create_account(clients, name="contoso-aoai").id


@pytest.fixture
def auth(clients):
    return clients.authorization(SUB)


def test_create_get_list_delete(auth, scope, armsim):
    principal = str(uuid.uuid4())
    name = str(uuid.uuid4())
    created = auth.role_assignments.create(scope, name, params(principal, description="apim → aoai"))
    assert (created.name, created.scope, created.principal_id) == (name, scope, principal)
    assert created.role_definition_id == role(OPENAI_USER)  # returned as given
    assert created.principal_type == "ServicePrincipal" and created.description == "apim → aoai"
    assert created.created_on is not None
    got = auth.role_assignments.get(scope, name)
    assert got.id == f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"

    other = str(uuid.uuid4())
    auth.role_assignments.create(scope, str(uuid.uuid4()), params(other))
    mine = list(auth.role_assignments.list_for_scope(scope, filter=f"principalId eq '{principal}'"))
    assert [a.name for a in mine] == [name]
    assert len(list(auth.role_assignments.list_for_scope(scope, filter="atScope()"))) == 2

    deleted = auth.role_assignments.delete(scope, name)
    assert deleted.name == name
    with pytest.raises(ResourceNotFoundError):
        auth.role_assignments.get(scope, name)
    assert auth.role_assignments.delete(scope, name) is None  # 204: already gone


def test_same_name_and_content_is_idempotent(auth, scope):
    principal, name = str(uuid.uuid4()), str(uuid.uuid4())
    first = auth.role_assignments.create(scope, name, params(principal))
    again = auth.role_assignments.create(scope, name, params(principal))
    assert again.id == first.id and again.created_on == first.created_on


def test_same_triple_under_another_name_is_409(auth, scope):
    principal = str(uuid.uuid4())
    auth.role_assignments.create(scope, str(uuid.uuid4()), params(principal))
    with pytest.raises(ResourceExistsError) as err:
        auth.role_assignments.create(scope, str(uuid.uuid4()), params(principal))
    assert err.value.status_code == 409 and err.value.error.code == "RoleAssignmentExists"
    # Another role for the same principal at the same scope is a different assignment.
    auth.role_assignments.create(scope, str(uuid.uuid4()), params(principal, COGNITIVE_USER))


def test_same_name_with_another_principal_or_scope_is_400(auth, scope, clients):
    name = str(uuid.uuid4())
    auth.role_assignments.create(scope, name, params(str(uuid.uuid4())))
    with pytest.raises(HttpResponseError) as err:
        auth.role_assignments.create(scope, name, params(str(uuid.uuid4())))
    assert err.value.status_code == 400 and err.value.error.code == "RoleAssignmentUpdateNotPermitted"
    elsewhere = seed.create_account(clients, name="other-aoai").id
    with pytest.raises(HttpResponseError) as err:
        auth.role_assignments.create(elsewhere, name, params(str(uuid.uuid4())))
    assert err.value.error.code == "RoleAssignmentUpdateNotPermitted"


def test_list_for_scope_sees_inherited_assignments_and_filters(auth, scope):
    principal = str(uuid.uuid4())
    group_scope = f"/subscriptions/{SUB}/resourceGroups/{seed.AI_GROUP}"
    auth.role_assignments.create(group_scope, str(uuid.uuid4()), params(principal, COGNITIVE_USER))
    auth.role_assignments.create(scope, str(uuid.uuid4()), params(principal))
    at_account = {a.scope for a in auth.role_assignments.list_for_scope(scope, filter="atScope()")}
    assert at_account == {group_scope, scope}
    at_group = {a.scope for a in auth.role_assignments.list_for_scope(group_scope, filter="atScope()")}
    assert at_group == {group_scope}
    below_too = {a.scope for a in auth.role_assignments.list_for_scope(group_scope)}
    assert below_too == {group_scope, scope}


def test_invalid_requests_are_refused(auth, scope):
    with pytest.raises(HttpResponseError, match="InvalidRoleAssignmentId"):
        auth.role_assignments.create(scope, "not-a-guid", params(str(uuid.uuid4())))
    with pytest.raises(HttpResponseError, match="RoleDefinitionDoesNotExist"):
        auth.role_assignments.create(scope, str(uuid.uuid4()), params(str(uuid.uuid4()), str(uuid.uuid4())))
    ghost = seed.account_id(SUB, seed.AI_GROUP, "ghost")
    with pytest.raises(ResourceNotFoundError):
        auth.role_assignments.create(ghost, str(uuid.uuid4()), params(str(uuid.uuid4())))


def test_deleting_the_account_removes_its_assignments(auth, scope, clients):
    name = str(uuid.uuid4())
    auth.role_assignments.create(scope, name, params(str(uuid.uuid4())))
    clients.cognitive(SUB).accounts.begin_delete(seed.AI_GROUP, "contoso-aoai").result()
    subscription_scope = f"/subscriptions/{SUB}"
    assert list(auth.role_assignments.list_for_scope(subscription_scope)) == []


def test_principal_type_left_out_is_inferred_from_known_identities(scope, clients, armsim):
    apim = seed.create_apim(clients)  # the SDK model defaults principalType to User, so go raw
    body = {"properties": {"roleDefinitionId": role(OPENAI_USER), "principalId": apim.identity.principal_id}}
    path = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
    made = call(armsim.url, "PUT", path, body, api_version="2022-04-01")
    assert made.status == 201 and made.body["properties"]["principalType"] == "ServicePrincipal"


def test_role_definitions_get(auth):
    found = auth.role_definitions.get(f"/subscriptions/{SUB}", OPENAI_USER)
    assert found.role_name == "Cognitive Services OpenAI User"
    with pytest.raises(ResourceNotFoundError):
        auth.role_definitions.get(f"/subscriptions/{SUB}", str(uuid.uuid4()))
