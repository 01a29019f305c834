"""Conformance: the real azure-mgmt-cognitiveservices client against the stand-in.

Accounts and deployments are created, read, listed, updated and deleted through the SDK; the checks
look at the stand-in's state, its request log and the change events it recorded.
"""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.cognitiveservices import models

from devhost import seed
from tests.armsim.wire import call

SUB, RG = seed.SUBSCRIPTION, seed.AI_GROUP


@pytest.fixture
def cs(clients):
    return clients.cognitive(SUB)


def test_openai_account_endpoints(clients, cs):
    account = seed.create_account(clients, name="contoso-aoai", kind="OpenAI", tags={"team": "a"})
    assert account.kind == "OpenAI" and account.tags == {"team": "a"}
    assert account.properties.endpoint == "https://contoso-aoai.openai.azure.com/"
    assert account.properties.endpoints["OpenAI Language Model Instance API"] == account.properties.endpoint
    assert account.properties.provisioning_state == "Succeeded"
    got = cs.accounts.get(RG, "contoso-aoai")
    assert got.id == seed.account_id(SUB, RG, "contoso-aoai") and got.etag


def test_aiservices_account_endpoints(clients):
    account = seed.create_account(clients, name="contoso-ais", kind="AIServices")
    assert account.properties.endpoint == "https://contoso-ais.cognitiveservices.azure.com/"
    endpoints = account.properties.endpoints
    assert endpoints["Azure AI Model Inference API"] == "https://contoso-ais.services.ai.azure.com/"
    assert endpoints["OpenAI Language Model Instance API"] == "https://contoso-ais.openai.azure.com/"


def test_account_list_by_subscription_and_group(clients, cs):
    seed.create_account(clients, name="a1")
    seed.create_account(clients, rg="rg-other", name="a2", kind="AIServices")
    seed.create_account(clients, sub="00000000-0000-0000-0000-000000000002", name="elsewhere")
    assert sorted(a.name for a in cs.accounts.list()) == ["a1", "a2"]
    assert [a.name for a in cs.accounts.list_by_resource_group(RG)] == ["a1"]
    assert [a.name for a in cs.accounts.list_by_resource_group("rg-other")] == ["a2"]


def test_account_update_tags_and_delete_takes_deployments(clients, cs, armsim):
    account = seed.create_account(clients, name="contoso-aoai", tags={"apim-importer": "enabled"})
    seed.create_deployment(clients, account.id, "gpt-4o")
    updated = cs.accounts.begin_update(RG, "contoso-aoai", models.Account(tags={"apim-importer": "disabled"}))
    updated = updated.result()
    assert updated.tags == {"apim-importer": "disabled"}
    assert updated.properties.endpoint == "https://contoso-aoai.openai.azure.com/"  # PATCH keeps the rest
    cs.accounts.begin_delete(RG, "contoso-aoai").result()
    with pytest.raises(ResourceNotFoundError):
        cs.accounts.get(RG, "contoso-aoai")
    assert armsim.ids() == []
    cs.accounts.begin_delete(RG, "contoso-aoai").result()  # already gone: succeeds


def test_custom_subdomain_is_unique(clients):
    seed.create_account(clients, name="one", subdomain="shared")
    with pytest.raises(ResourceExistsError, match="CustomDomainInUse"):
        seed.create_account(clients, name="two", subdomain="shared")


def test_deployment_create_is_an_lro_then_get_list_delete(clients, cs, armsim):
    account = seed.create_account(clients, name="contoso-aoai")
    armsim.log.clear()
    made = seed.create_deployment(clients, account.id, "gpt-4o", model="gpt-4o", version="2024-11-20",
                                  sku="GlobalStandard", capacity=25)
    assert made.properties.provisioning_state == "Succeeded"
    assert (made.sku.name, made.sku.capacity) == ("GlobalStandard", 25)
    assert (made.properties.model.format, made.properties.model.name, made.properties.model.version) == (
        "OpenAI", "gpt-4o", "2024-11-20")
    steps = [(e.method, e.status, e.path.split("/")[-2]) for e in armsim.log]
    assert steps == [("PUT", 201, "deployments"), ("GET", 200, "operationResults"),
                     ("GET", 200, "deployments")]

    seed.create_deployment(clients, account.id, "text-embedding-3-small", model="text-embedding-3-small",
                           version="1", sku="Standard")
    names = [d.name for d in cs.deployments.list(RG, "contoso-aoai")]
    assert names == ["gpt-4o", "text-embedding-3-small"]
    assert cs.deployments.get(RG, "contoso-aoai", "gpt-4o").sku.capacity == 25
    cs.deployments.begin_delete(RG, "contoso-aoai", "gpt-4o").result()
    with pytest.raises(ResourceNotFoundError):
        cs.deployments.get(RG, "contoso-aoai", "gpt-4o")
    assert [d.name for d in cs.deployments.list(RG, "contoso-aoai")] == ["text-embedding-3-small"]


def test_deployment_stays_creating_for_n_polls(clients, cs, armsim):
    account = seed.create_account(clients, name="contoso-aoai")
    armsim.faults.lro("PUT", r"/deployments/", polls=3)
    poller = cs.deployments.begin_create_or_update(RG, "contoso-aoai", "gpt-4o", models.Deployment(
        sku=models.Sku(name="Standard", capacity=1),
        properties=models.DeploymentProperties(model=models.DeploymentModel(format="OpenAI", name="gpt-4o",
                                                                            version="2024-11-20"))),
        polling=False)
    assert poller.result().properties.provisioning_state == "Creating"
    states = [cs.deployments.get(RG, "contoso-aoai", "gpt-4o").properties.provisioning_state
              for _ in range(4)]
    assert states == ["Creating", "Creating", "Creating", "Succeeded"]
    assert account.name == "contoso-aoai"


def test_deployment_lro_that_fails_raises_and_marks_the_deployment(clients, cs, armsim):
    account = seed.create_account(clients, name="contoso-aoai")
    armsim.faults.lro("PUT", r"/deployments/", polls=1, outcome="Failed")
    with pytest.raises(HttpResponseError):
        seed.create_deployment(clients, account.id, "gpt-4o")
    assert cs.deployments.get(RG, "contoso-aoai", "gpt-4o").properties.provisioning_state == "Failed"


def test_slow_delete_shows_deleting(clients, cs, armsim):
    account = seed.create_account(clients, name="contoso-aoai")
    seed.create_deployment(clients, account.id, "gpt-4o")
    armsim.faults.lro("DELETE", r"/deployments/", polls=5)
    poller = cs.deployments.begin_delete(RG, "contoso-aoai", "gpt-4o")
    assert cs.deployments.get(RG, "contoso-aoai", "gpt-4o").properties.provisioning_state == "Deleting"
    poller.result()
    with pytest.raises(ResourceNotFoundError):
        cs.deployments.get(RG, "contoso-aoai", "gpt-4o")


def test_deployment_on_missing_account_is_404(clients, cs):
    with pytest.raises(ResourceNotFoundError):
        seed.create_deployment(clients, seed.account_id(SUB, RG, "ghost"), "gpt-4o")
    with pytest.raises(ResourceNotFoundError):
        list(cs.deployments.list(RG, "ghost"))


def test_writes_and_deletes_are_recorded_as_event_grid_events(clients, cs, armsim):
    account = seed.create_account(clients, name="contoso-aoai")
    seed.create_deployment(clients, account.id, "gpt-4o")
    cs.deployments.begin_delete(RG, "contoso-aoai", "gpt-4o").result()
    cs.accounts.begin_delete(RG, "contoso-aoai").result()
    seen = [(e["eventType"].rsplit(".", 1)[-1], e["data"]["operationName"]) for e in armsim.events()]
    assert seen == [
        ("ResourceWriteSuccess", "Microsoft.CognitiveServices/accounts/write"),
        ("ResourceWriteSuccess", "Microsoft.CognitiveServices/accounts/deployments/write"),
        ("ResourceDeleteSuccess", "Microsoft.CognitiveServices/accounts/deployments/delete"),
        ("ResourceDeleteSuccess", "Microsoft.CognitiveServices/accounts/delete"),
    ]
    write = armsim.events()[1]
    assert write["subject"] == write["data"]["resourceUri"] == f"{account.id}/deployments/gpt-4o"
    assert write["topic"] == f"/subscriptions/{SUB}" and write["data"]["status"] == "Succeeded"
    assert write["data"]["httpRequest"]["method"] == "PUT"
    put = [e for e in armsim.log.select(method="PUT")][1]
    assert put.path == write["subject"]
    raw_put = call(armsim.url, "PUT", account.id, {"kind": "OpenAI", "location": "swedencentral"},
                   api_version="2025-09-01", headers={"x-ms-correlation-request-id": "corr-1"})
    assert raw_put.headers["x-ms-correlation-request-id"] == "corr-1"
    assert armsim.events()[-1]["data"]["correlationId"] == "corr-1"
