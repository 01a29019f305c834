"""Change events for every write the stand-in serves, stamped with the caller's object id: the
bearer token's ``oid`` claim when it is a JWT, ``UNKNOWN_CALLER`` otherwise."""

from __future__ import annotations

import json
import urllib.request

from azure.mgmt.apimanagement import models

from armsim.changes import OID_CLAIM, UNKNOWN_CALLER
from devhost import seed
from importer.azure.clients import LOCAL_PRINCIPAL_ID, Clients, StaticCredential

SUB, RG, SVC = seed.SUBSCRIPTION, seed.APIM_GROUP, seed.APIM_NAME


def callers(events):
    return [(e["data"]["operationName"], e["data"]["claims"][OID_CLAIM],
             e["data"]["authorization"]["evidence"]["principalId"]) for e in events]


def test_apim_writes_and_deletes_carry_the_token_oid(clients, armsim, arm_settings):
    seed.create_apim(clients)
    importer = Clients(arm_settings)  # the importer's own local credential
    armsim.clear_events()
    apim = importer.apim(SUB)
    apim.backend.create_or_update(RG, SVC, "b1", models.BackendContract(url="https://x.example",
                                                                        protocol="http"))
    clients.apim(SUB).backend.delete(RG, SVC, "b1", if_match="*")  # a person (the fixture's clients)
    clients.apim(SUB).backend.delete(RG, SVC, "b1", if_match="*")  # already gone: 204, no event
    importer.close()
    assert callers(armsim.events()) == [
        ("Microsoft.ApiManagement/service/backends/write", LOCAL_PRINCIPAL_ID, LOCAL_PRINCIPAL_ID),
        ("Microsoft.ApiManagement/service/backends/delete", seed.OPERATOR_ID, seed.OPERATOR_ID),
    ]
    assert LOCAL_PRINCIPAL_ID != UNKNOWN_CALLER != seed.OPERATOR_ID


def test_policy_role_assignment_and_product_link_events(clients, armsim, arm_settings):
    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

    seed.create_apim(clients)
    seed.create_product(clients, seed.apim_id(), "p1")
    account = seed.create_account(clients, name="contoso-aoai").id
    armsim.clear_events()
    apim = clients.apim(SUB)
    apim.api.begin_create_or_update(RG, SVC, "a1", models.ApiCreateOrUpdateParameter(
        display_name="A", path="a", protocols=["https"])).result()
    apim.api_policy.create_or_update(RG, SVC, "a1", "policy", models.PolicyContract(
        value="<policies><inbound><base /></inbound></policies>", format="xml"))
    apim.product_api.create_or_update(RG, SVC, "p1", "a1")
    role = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/" \
           "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
    clients.authorization(SUB).role_assignments.create(account, "6f1d2c3b-0000-4000-8000-000000000001",
                                                       RoleAssignmentCreateParameters(
                                                           role_definition_id=role,
                                                           principal_id="11111111-1111-1111-1111-111111111111"))
    ops = [(e["data"]["operationName"], e["subject"].rsplit("/", 2)[-2]) for e in armsim.events()]
    assert ops == [("Microsoft.ApiManagement/service/apis/write", "apis"),
                   ("Microsoft.ApiManagement/service/apis/policies/write", "policies"),
                   ("Microsoft.ApiManagement/service/products/apis/write", "apis"),
                   ("Microsoft.Authorization/roleAssignments/write", "roleAssignments")]
    assert armsim.events()[-1]["subject"].lower().startswith(account.lower() + "/providers/")


def test_a_request_without_a_jwt_is_the_unknown_caller(clients, armsim):
    seed.create_apim(clients)
    armsim.clear_events()
    url = f"{armsim.url}{seed.apim_id()}/backends/b2?api-version=2024-05-01"
    body = json.dumps({"properties": {"url": "https://y.example", "protocol": "http"}}).encode()
    for auth in ({}, {"Authorization": "Bearer not-a-jwt"}):
        request = urllib.request.Request(url, data=body, method="PUT",
                                         headers={"Content-Type": "application/json", **auth})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status in (200, 201)
    other = Clients(clients.settings, credential=StaticCredential("22222222-2222-2222-2222-222222222222"))
    other.apim(SUB).backend.delete(RG, SVC, "b2", if_match="*")
    other.close()
    assert [c[1] for c in callers(armsim.events())] == [UNKNOWN_CALLER, UNKNOWN_CALLER,
                                                       "22222222-2222-2222-2222-222222222222"]
