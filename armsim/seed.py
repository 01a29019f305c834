"""Seeding helpers: populate the stand-in the way Azure is populated, through the real SDK clients.

Client side (this module may import azure.*; the server modules never do). Each helper takes an
``importer.azure.clients.Clients`` built for the stand-in and returns the SDK model it created.
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
