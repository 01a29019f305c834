"""The stand-in's surfaces doctor reads: the caller's permissions, resource-group existence, Event Grid
system topics and subscriptions, and the gateway's health endpoint and down switch."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from azure.core.exceptions import HttpResponseError

from armsim.server import Sim
from armsim.state import CALLER_PRINCIPAL_ID
from devhost import seed
from importer.azure.clients import Clients
from importer.model import Scope

SUB = seed.SUBSCRIPTION
RG_AI = f"/subscriptions/{SUB}/resourceGroups/{seed.AI_GROUP}"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"


def test_permissions_are_the_callers_roles_at_and_above_the_scope(armsim: Sim, clients: Clients) -> None:
    seed.create_account(clients)
    auth = clients.authorization(SUB)
    assert list(auth.permissions.list_for_resource_group(seed.AI_GROUP)) == []
    seed.assign_role(clients, f"/subscriptions/{SUB}", CONTRIBUTOR, CALLER_PRINCIPAL_ID)
    account = seed.account_id(SUB, seed.AI_GROUP, "contoso-aoai")
    seed.assign_role(clients, account, OPENAI_USER, CALLER_PRINCIPAL_ID)
    seed.assign_role(clients, account, CONTRIBUTOR, "11111111-1111-1111-1111-111111111111")  # not the caller
    at_group = list(auth.permissions.list_for_resource_group(seed.AI_GROUP))
    assert [(p.actions, p.not_actions) for p in at_group] == [
        (["*"], ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
                 "Microsoft.Authorization/elevateAccess/Action"])]
    at_account = list(auth.permissions.list_for_resource(seed.AI_GROUP, "Microsoft.CognitiveServices", "",
                                                         "accounts", "contoso-aoai"))
    assert len(at_account) == 2 and any("Microsoft.CognitiveServices/*/read" in p.actions for p in at_account)
    armsim.set_options(caller_principal_id="11111111-1111-1111-1111-111111111111")
    assert len(list(auth.permissions.list_for_resource(seed.AI_GROUP, "Microsoft.CognitiveServices", "",
                                                       "accounts", "contoso-aoai"))) == 1


def test_role_definitions_carry_their_permissions(armsim: Sim, clients: Clients) -> None:
    role = clients.authorization(SUB).role_definitions.get(f"/subscriptions/{SUB}", CONTRIBUTOR)
    assert role.permissions[0].actions == ["*"]
    assert "Microsoft.Authorization/*/Write" in role.permissions[0].not_actions


def test_a_resource_group_that_never_held_anything_does_not_exist(armsim: Sim, clients: Clients) -> None:
    from importer.azure.arm import AzureArm
    from importer.model import NotFound

    arm = AzureArm(clients)
    with pytest.raises(NotFound):
        arm.list_accounts(Scope.parse(f"/subscriptions/{SUB}/resourceGroups/rg-none"))
    seed.create_account(clients)
    clients.cognitive(SUB).accounts.begin_delete(seed.AI_GROUP, "contoso-aoai").result()
    assert arm.list_accounts(Scope.parse(RG_AI)) == []  # emptied, still there
    assert arm.list_accounts(Scope.parse(f"/subscriptions/{SUB}")) == []


def test_event_grid_topics_and_subscriptions(armsim: Sim, clients: Clients) -> None:
    topic = seed.create_system_topic(clients)
    assert topic["properties"]["provisioningState"] == "Succeeded"
    made = seed.create_event_subscription(clients, topic["id"], "apim-ai-importer-x", f"{RG_AI}/")
    assert made["properties"]["topic"] == topic["id"]
    listed = json.loads(_get(f"{armsim.url}/subscriptions/{SUB}/providers/Microsoft.EventGrid/systemTopics"))
    assert [t["id"] for t in listed["value"]] == [topic["id"]]
    subs = json.loads(_get(f"{armsim.url}{topic['id']}/eventSubscriptions"))
    assert [s["properties"]["filter"]["subjectBeginsWith"] for s in subs["value"]] == [f"{RG_AI}/"]
    with pytest.raises(HttpResponseError) as caught:
        seed.create_event_subscription(clients, topic["id"] + "-gone", "x")
    assert caught.value.status_code == 404


def test_gateway_health_endpoint_and_down_switch(armsim_gateway: Sim, clients: Clients) -> None:
    from importer.azure.gateway import send

    service = Clients(clients.settings.__class__.from_env({"IMPORTER_ARM_ENDPOINT": armsim_gateway.url}))
    seed.create_apim(service)
    gateway_url = service.apim(SUB).api_management_service.get(seed.APIM_GROUP, seed.APIM_NAME).gateway_url
    assert send(f"{gateway_url}/status-0123456789abcdef", "GET", None, key=None).status == 200
    request = urllib.request.Request(f"{armsim_gateway.url}/_armsim/gateway", data=b'{"down": true}',
                                     method="PUT", headers={"Content-Type": "application/json"})
    assert json.loads(urllib.request.urlopen(request).read())["down"] is True
    answer = send(f"{gateway_url}/status-0123456789abcdef", "GET", None, key=None, timeout=5)
    assert answer.status is None and answer.error
    armsim_gateway.reset()
    assert armsim_gateway.gateway is not None and armsim_gateway.gateway.down is False
    service.close()


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url + "?api-version=2025-02-15") as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:  # pragma: no cover - a failure shows the body
        raise AssertionError(exc.read().decode()) from exc
