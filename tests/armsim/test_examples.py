"""Response shapes, field by field, against the public REST examples (tests/armsim/examples).

Raw HTTP (no SDK): each test makes the request the example documents and holds the stand-in's JSON
and headers against the example's keys and value kinds. Extra fields are allowed where the service
also returns more than the trimmed examples show; top-level key sets must match exactly.
"""

from __future__ import annotations

import json
import uuid

import pytest

from devhost import seed
from tests.armsim.wire import call, example, shape_mismatches

SUB = seed.SUBSCRIPTION
APIM = seed.apim_id()
DOC = {"openapi": "3.0.1", "info": {"title": "Swagger Petstore", "version": "1"},
       "servers": [{"url": "http://petstore.swagger.io/v1"}],
       "paths": {"/pets": {"get": {"operationId": "listPets"}, "post": {"operationId": "createPets"}},
                 "/pets/{petId}": {"get": {"operationId": "showPetById"}}}}


def assert_shape(expected: dict, actual: dict, exact_top: bool = True) -> None:
    assert shape_mismatches(expected, actual) == []
    if exact_top:
        assert set(actual) == set(expected), f"top-level keys differ: {set(actual) ^ set(expected)}"


@pytest.fixture
def svc(clients, apim_service):
    return apim_service


def import_petstore(armsim) -> object:
    url = armsim.add_file("petstore.json", json.dumps(DOC))
    return call(armsim.url, "PUT", f"{APIM}/apis/petstore",
                {"properties": {"format": "openapi-link", "value": url, "path": "petstore"}})


def test_api_import_answers_201_with_async_operation_and_location(armsim, svc):
    want = example("ApiManagementCreateApiUsingOai3Import", "201")
    got = import_petstore(armsim)
    assert got.status == 201
    assert {h.lower() for h in want["headers"]} <= set(got.headers)
    assert "/tenant/operationResults/" in got.headers["azure-asyncoperation"]
    assert "api-version=2024-05-01" in got.headers["azure-asyncoperation"]
    assert got.headers["location"].startswith(f"{armsim.url}{APIM}/apis/petstore?")
    assert "asyncId=" in got.headers["location"] and "asyncCode=201" in got.headers["location"]
    assert_shape(want["body"], got.body)
    assert got.body["properties"]["provisioningState"] == "InProgress"
    status = call(armsim.url, "GET", got.headers["azure-asyncoperation"])
    assert status.body["status"] == "Succeeded"
    api = call(armsim.url, "GET", got.headers["location"])
    expected_api = {**want["body"], "properties": {k: v for k, v in want["body"]["properties"].items()
                                                   if k != "provisioningState"}}
    assert_shape(expected_api, api.body)


def test_operations_list_shape(armsim, svc):
    import_petstore(armsim)
    got = call(armsim.url, "GET", f"{APIM}/apis/petstore/operations")
    assert_shape(example("ApiManagementListApiOperations", "200")["body"], got.body)
    assert [o["name"] for o in got.body["value"]] == ["listPets", "createPets", "showPetById"]


def test_policy_put_and_get_shapes_and_values(armsim, svc):
    import_petstore(armsim)
    for name in ("ApiManagementCreateApiPolicy", "ApiManagementCreateApiPolicyNonXmlEncoded"):
        request = example(name)["parameters"]
        want = example(name, "201")["body"]
        path = f"{APIM}/apis/petstore/policies/policy"
        call(armsim.url, "DELETE", path, headers={"If-Match": "*"})
        got = call(armsim.url, "PUT", path, request["parameters"], headers={"If-Match": request["If-Match"]})
        assert got.status == 412  # If-Match * on a missing policy: must exist
        got = call(armsim.url, "PUT", path, request["parameters"])
        assert got.status == 201
        assert_shape(want, got.body)
        assert got.body["properties"]["value"] == want["properties"]["value"]
        assert got.body["type"] == "Microsoft.ApiManagement/service/apis/policies"

    want = example("ApiManagementGetApiPolicy", "200")["body"]
    call(armsim.url, "PUT", f"{APIM}/loggers/apimService1", {"properties": {"loggerType": "azureEventHub"}})
    call(armsim.url, "PUT", f"{APIM}/apis/petstore/policies/policy",
         {"properties": {"format": "xml", "value": want["properties"]["value"]}})
    got = call(armsim.url, "GET", f"{APIM}/apis/petstore/policies/policy", query="format=xml")
    assert_shape(want, got.body)
    assert got.body["properties"]["value"] == want["properties"]["value"]


def test_product_api_link_and_head_shapes(armsim, svc):
    import_petstore(armsim)
    call(armsim.url, "PUT", f"{APIM}/products/testproduct", {"properties": {"displayName": "Test"}})
    first = call(armsim.url, "PUT", f"{APIM}/products/testproduct/apis/petstore")
    assert first.status == 201
    assert_shape(example("ApiManagementCreateProductApi", "201")["body"], first.body)
    assert first.body["id"] == f"{APIM}/apis/petstore"  # the body is the API, as in the example
    assert call(armsim.url, "PUT", f"{APIM}/products/testproduct/apis/petstore").status == 200
    head = call(armsim.url, "HEAD", f"{APIM}/products/testproduct/apis/petstore")
    assert head.status == 204 and head.body is None
    assert example("ApiManagementHeadProductApi") == {"responses": {"204": {}}}
    assert call(armsim.url, "HEAD", f"{APIM}/products/testproduct/apis/other").status == 404


def test_service_with_identity_shape(armsim):
    created = call(armsim.url, "PUT", APIM, {
        "location": "West US", "sku": {"name": "Consumption", "capacity": 0},
        "identity": {"type": "SystemAssigned"}, "tags": {"tag1": "value1"},
        "properties": {"publisherEmail": "apim@autorestsdk.com", "publisherName": "autorestsdk"}})
    assert created.status == 201
    want_headers = example("ApiManagementCreateServiceHavingMsi", "201")["headers"]
    assert {h.lower() for h in want_headers} <= set(created.headers)
    assert "/operationresults/" in created.headers["azure-asyncoperation"]
    got = call(armsim.url, "GET", APIM)
    want = example("ApiManagementCreateServiceHavingMsi", "200")["body"]
    assert_shape(want, got.body)
    assert got.body["identity"]["type"] == "SystemAssigned"
    uuid.UUID(got.body["identity"]["principalId"])
    assert got.body["properties"]["gatewayUrl"] == "https://contoso-apim.azure-api.net"


@pytest.mark.parametrize("name, path, body", [
    ("ApiManagementCreateTag", "/tags/tagId1", {"properties": {"displayName": "tag1"}}),
    ("ApiManagementCreateCache", "/caches/c1",
     {"properties": {"connectionString": "apim.redis.cache.windows.net:6380,password=xc,ssl=True",
                     "useFromLocation": "default", "description": "Redis cache instances in West India",
                     "resourceId": "https://management.azure.com/subscriptions/x/resourceGroups/rg1/providers/"
                                   "Microsoft.Cache/redis/apimservice1"}}),
])
def test_simple_entity_shapes(armsim, svc, name, path, body):
    got = call(armsim.url, "PUT", f"{APIM}{path}", body)
    assert got.status == 201
    assert_shape(example(name, "201")["body"], got.body)


def test_api_tag_backend_pool_subscription_and_fragment_shapes(armsim, svc):
    import_petstore(armsim)
    call(armsim.url, "PUT", f"{APIM}/tags/tagId1", {"properties": {"displayName": "tag1"}})
    got = call(armsim.url, "PUT", f"{APIM}/apis/petstore/tags/tagId1")
    assert got.status == 201
    assert_shape(example("ApiManagementCreateApiTag", "201")["body"], got.body)

    for i in range(1, 5):
        call(armsim.url, "PUT", f"{APIM}/backends/backend-{i}",
             {"properties": {"url": "https://b", "protocol": "http"}})
    request = example("ApiManagementCreateBackendWithPriorityBasedLoadBalancer")["parameters"]["parameters"]
    request = json.loads(json.dumps(request).replace("/subscriptions/00000000-0000-0000-0000-000000000000/"
                                                     "resourceGroups/rg1/providers/Microsoft.ApiManagement/"
                                                     "service/apimService1", APIM))
    got = call(armsim.url, "PUT", f"{APIM}/backends/priority-based-load-balancer", request)
    assert got.status == 201
    assert_shape(example("ApiManagementCreateBackendWithPriorityBasedLoadBalancer", "201")["body"], got.body)

    call(armsim.url, "PUT", f"{APIM}/products/p1", {"properties": {"displayName": "P"}})
    got = call(armsim.url, "PUT", f"{APIM}/subscriptions/testsub",
               {"properties": {"scope": f"{APIM}/products/p1", "displayName": "testsub",
                               "ownerId": f"{APIM}/users/57127d485157a511ace86ae7"}})
    assert_shape(example("ApiManagementCreateSubscription", "201")["body"], got.body)
    keys = call(armsim.url, "POST", f"{APIM}/subscriptions/testsub/listSecrets")
    assert_shape(example("ApiManagementSubscriptionListSecrets", "200")["body"], keys.body)

    fragment = example("ApiManagementCreatePolicyFragment")["parameters"]["parameters"]
    got = call(armsim.url, "PUT", f"{APIM}/policyFragments/policyFragment1", fragment)
    want = example("ApiManagementCreatePolicyFragment", "201")
    assert got.status == 201 and {h.lower() for h in want["headers"]} <= set(got.headers)
    assert_shape(want["body"], got.body)


def test_cognitive_shapes(clients, armsim):
    account = seed.create_account(clients, name="myAccount", tags={"Owner": "felixwa"})
    got = call(armsim.url, "GET", account.id, api_version="2025-09-01")
    assert_shape(example("GetAccount", "200")["body"], got.body, exact_top=False)
    listed = call(armsim.url, "GET", f"/subscriptions/{SUB}/providers/Microsoft.CognitiveServices/accounts",
                  api_version="2025-09-01")
    assert_shape(example("ListAccountsBySubscription", "200")["body"], listed.body)

    seed.create_deployment(clients, account.id, "deploymentName", sku="Standard", capacity=1)
    got = call(armsim.url, "GET", f"{account.id}/deployments/deploymentName", api_version="2025-09-01")
    assert_shape(example("GetDeployment", "200")["body"], got.body, exact_top=False)
    assert got.body["properties"]["model"] == {"format": "OpenAI", "name": "gpt-4o", "version": "2024-11-20"}
    listed = call(armsim.url, "GET", f"{account.id}/deployments", api_version="2025-09-01")
    assert_shape(example("ListDeployments", "200")["body"], listed.body)


def test_role_assignment_create_shape(clients, armsim):
    parameters = example("RoleAssignments_CreateForResourceGroup")["parameters"]
    scope = f"/subscriptions/{SUB}/resourceGroups/testrg"
    reader = "acdd72a7-3385-48ef-bd42-f606fba81ae7"  # the example's role is not one armsim knows
    body = json.loads(json.dumps(parameters["parameters"]).replace("0b5fe924-9a61-425c-96af-cfe6e287ca2d",
                                                                   reader))
    got = call(armsim.url, "PUT",
               f"{scope}/providers/Microsoft.Authorization/roleAssignments/{parameters['roleAssignmentName']}",
               body, api_version="2022-04-01")
    assert got.status == 201
    assert_shape(example("RoleAssignments_CreateForResourceGroup", "201")["body"], got.body)
    assert got.body["properties"]["scope"] == scope
