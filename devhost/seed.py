"""Seeding helpers: populate the stand-in the way Azure is populated, through the real SDK clients.

Client side, so it lives in devhost/ and not in armsim/ (the stand-in imports no azure.*). Each helper
takes an ``importer.azure.clients.Clients`` built for the stand-in and returns the SDK model it created.
"""

from __future__ import annotations

from typing import Any

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
APIM_GROUP = "rg-apim"
AI_GROUP = "rg-ai"
APIM_NAME = "contoso-apim"
# Who seeds the world and edits it by hand: a person, as the stand-in sees the ``oid`` of their token
# (importer.azure.clients.StaticCredential(OPERATOR_ID)); distinct from the importer's own local id.
OPERATOR_ID = "00000000-0000-0000-0000-0000000000b0"


def apim_id(sub: str = SUBSCRIPTION, rg: str = APIM_GROUP, name: str = APIM_NAME) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{name}"


def account_id(sub: str, rg: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name}"


def _parts(resource_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, name) of a resource id."""
    p = resource_id.strip("/").split("/")
    if len(p) < 8 or p[0].lower() != "subscriptions" or p[2].lower() != "resourcegroups":
        raise ValueError(f"not a resource id: {resource_id!r}")
    return p[1], p[3], p[7]


def create_apim(clients: Any, sub: str = SUBSCRIPTION, rg: str = APIM_GROUP, name: str = APIM_NAME, *,
                identity: bool = True, location: str = "westeurope", sku: str = "Developer") -> Any:
    """An API Management service, with its system-assigned identity on unless ``identity=False``."""
    from azure.mgmt.apimanagement import models

    params = models.ApiManagementServiceResource(
        location=location, sku=models.ApiManagementServiceSkuProperties(name=sku, capacity=1),
        publisher_email="apim@contoso.example", publisher_name="Contoso",
        identity=models.ApiManagementServiceIdentity(type="SystemAssigned" if identity else "None"))
    return clients.apim(sub).api_management_service.begin_create_or_update(rg, name, params).result()


def create_account(clients: Any, sub: str = SUBSCRIPTION, rg: str = AI_GROUP, name: str = "contoso-aoai", *,
                   kind: str = "OpenAI", tags: dict[str, str] | None = None, location: str = "swedencentral",
                   subdomain: str | None = None) -> Any:
    """A Cognitive Services account of ``kind`` OpenAI or AIServices with a custom subdomain."""
    from azure.mgmt.cognitiveservices import models

    account = models.Account(kind=kind, location=location, sku=models.Sku(name="S0"), tags=tags or {},
                             properties=models.AccountProperties(custom_sub_domain_name=subdomain or name))
    return clients.cognitive(sub).accounts.begin_create(rg, name, account).result()


def create_deployment(clients: Any, account: str, name: str, *, model: str = "gpt-4o",
                      version: str = "2024-11-20", sku: str = "GlobalStandard", capacity: int = 10,
                      model_format: str = "OpenAI") -> Any:
    """A model deployment on the account with resource id ``account``."""
    from azure.mgmt.cognitiveservices import models

    sub, rg, account_name = _parts(account)
    deployment = models.Deployment(
        sku=models.Sku(name=sku, capacity=capacity),
        properties=models.DeploymentProperties(model=models.DeploymentModel(format=model_format, name=model,
                                                                            version=version)))
    poller = clients.cognitive(sub).deployments.begin_create_or_update(rg, account_name, name, deployment)
    return poller.result()


def create_product(clients: Any, apim: str, product_id: str, *, display_name: str | None = None,
                   subscription_required: bool = True, state: str = "published") -> Any:
    """A product on the API Management service with resource id ``apim``."""
    from azure.mgmt.apimanagement import models

    sub, rg, service = _parts(apim)
    product = models.ProductContract(display_name=display_name or product_id,
                                     subscription_required=subscription_required, state=state)
    return clients.apim(sub).product.create_or_update(rg, service, product_id, product)


def _arm_put(clients: Any, sub: str, path: str, body: dict[str, Any], api_version: str) -> Any:
    """PUT a resource no installed SDK models (Event Grid), through the same management pipeline."""
    from azure.core.rest import HttpRequest

    request = HttpRequest("PUT", path, params={"api-version": api_version}, json=body)
    response = clients.apim(sub)._send_request(request)
    response.raise_for_status()
    return response.json()


EVENTGRID_API_VERSION = "2025-02-15"


def create_system_topic(clients: Any, sub: str = SUBSCRIPTION, rg: str = APIM_GROUP,
                        name: str = "evgt-apim-ai-importer") -> Any:
    """The subscription's Microsoft.Resources.Subscriptions system topic (one per subscription)."""
    topic = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.EventGrid/systemTopics/{name}"
    body = {"location": "global", "properties": {"source": f"/subscriptions/{sub}",
                                                 "topicType": "Microsoft.Resources.Subscriptions"}}
    return _arm_put(clients, sub, topic, body, EVENTGRID_API_VERSION)


def create_event_subscription(clients: Any, topic_id: str, name: str, subject_prefix: str = "",
                              operations: list[str] | None = None) -> Any:
    """An event subscription on a system topic, filtered the way infra/modules/event-subscriptions.bicep
    filters (the destination is a placeholder function id: the stand-in delivers nothing);
    ``operations``: the data.operationName values it lets through (None: no such filter)."""
    sub, _rg, _name = _parts(topic_id)
    flt: dict[str, Any] = {"includedEventTypes": ["Microsoft.Resources.ResourceWriteSuccess",
                                                  "Microsoft.Resources.ResourceDeleteSuccess"],
                           "subjectBeginsWith": subject_prefix, "isSubjectCaseSensitive": False}
    if operations is not None:
        flt["advancedFilters"] = [{"operatorType": "StringIn", "key": "data.operationName",
                                   "values": operations}]
    body = {"properties": {
        "destination": {"endpointType": "AzureFunction", "properties": {
            "resourceId": f"/subscriptions/{sub}/resourceGroups/rg-importer/providers/Microsoft.Web/sites/"
                          "func-importer/functions/on_resource_event"}},
        "filter": flt}}
    return _arm_put(clients, sub, f"{topic_id}/eventSubscriptions/{name}", body, EVENTGRID_API_VERSION)


def assign_role(clients: Any, scope: str, role_guid: str, principal_id: str, *,
                principal_type: str = "ServicePrincipal") -> Any:
    """A role assignment (deterministic name) of a built-in role, e.g. to the caller armsim sees."""
    import uuid

    from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

    sub = scope.strip("/").split("/")[1]
    name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope}|{role_guid}|{principal_id}".lower()))
    params = RoleAssignmentCreateParameters(
        role_definition_id=f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}",
        principal_id=principal_id, principal_type=principal_type)
    return clients.authorization(sub).role_assignments.create(scope, name, params)


def grant_importer_roles(clients: Any, apim: str | None = None, scope: str | None = None) -> None:
    """The roles the deployment gives the importer's identity (infra/main.bicep), to the caller the
    stand-in sees: API Management Service Contributor on APIM; Reader and Role Based Access Control
    Administrator on the watched scope (the subscription by default)."""
    from armsim.state import CALLER_PRINCIPAL_ID

    apim = apim or apim_id()
    scope = scope or f"/subscriptions/{SUBSCRIPTION}"
    assign_role(clients, apim, "312a565d-c81f-4fd8-895a-4e21e48d571c", CALLER_PRINCIPAL_ID)
    for role in ("acdd72a7-3385-48ef-bd42-f606fba81ae7", "f58310d9-a9f6-439a-9e8d-f62e7b41a168"):
        assign_role(clients, scope, role, CALLER_PRINCIPAL_ID)
