"""Keys the way clients send them (issue 14, item 2): the OpenAI-style modes' APIs also accept the
subscription key as ``Authorization: Bearer <key>``, which is what the plain ``openai`` client sends.

``subscriptionKeyParameterNames.bearer`` exists only at newer api-versions than the typed SDK's, so the
importer writes and reads it through the JSON seam; the stand-in's gateway accepts only the key names
an API declares.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from importer.azure.rest import ArmJson
from importer.identity import api_id
from importer.model import AccountRef, Mode
from tests.armsim.test_gateway import _subscription
from tests.fixtures.world import AOAI, FOUNDRY, World


def _import(world: World, account: str, mode: str) -> dict[str, Any]:
    ref = AccountRef.parse(account)
    rec = world.reconciler(IMPORTER_MODE=mode, IMPORTER_PROBE="off")
    assert rec.reconcile(ref).outcome == "applied"
    svc = world.apim_client().api_management_service.get(world.rg, world.svc)
    return {"ref": ref, "rec": rec, "gateway": f"{svc.gateway_url}/{ref.name}", "mode": Mode(mode),
            "key": _subscription(world, f"k-{mode}", f"/apis/{api_id(ref, Mode(mode))}")}


@pytest.mark.parametrize(("mode", "bearer"), [("azure-openai", True), ("azure-openai-v1", True),
                                              ("azure-ai", False)])
def test_key_names_per_mode_written_and_read_at_the_newer_version(gateway_world: World, mode: str,
                                                                   bearer: bool) -> None:
    imported = _import(gateway_world, FOUNDRY, mode)
    aid = api_id(imported["ref"], imported["mode"])
    raw, _ = ArmJson(gateway_world.apim_client()).get(f"{gateway_world.apim}/apis/{aid}")
    names = raw["properties"]["subscriptionKeyParameterNames"]
    assert names["header"] == names["query"] == "api-key"
    assert (names.get("bearer") == "enabled") is bearer
    gateway_world.sim.log.clear()
    assert imported["rec"].reconcile(imported["ref"]).outcome == "noop" and gateway_world.writes() == 0


def test_bearer_turned_off_by_hand_is_drift(gateway_world: World) -> None:
    imported = _import(gateway_world, AOAI, "azure-openai-v1")
    aid = api_id(imported["ref"], imported["mode"])
    rest = ArmJson(gateway_world.apim_client())
    rest.patch(f"{gateway_world.apim}/apis/{aid}", {"properties": {"subscriptionKeyParameterNames": {
        "header": "api-key", "query": "api-key", "bearer": "disabled"}}})
    run = imported["rec"].reconcile(imported["ref"])
    assert [(c.action.value, c.kind) for c in run.plan.changes] == [("update", "api")]
    assert "key_bearer: False → True" in run.plan.changes[0].diff


def test_the_openai_client_with_a_base_url_and_api_key(gateway_world: World) -> None:
    imported = _import(gateway_world, AOAI, "azure-openai-v1")
    base = imported["gateway"] + "/openai/v1"
    client = openai.OpenAI(base_url=base, api_key=imported["key"], max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "ping"}])
    assert reply.choices[0].message.content == "pong" and reply.usage.total_tokens > 0
    embedding = client.embeddings.create(model="text-embedding-3-small", input="ping")
    assert len(embedding.data[0].embedding) == 8
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base, api_key="wrong", max_retries=0).chat.completions.create(
            model="gpt-4o", messages=[])


def test_the_azure_openai_client_still_sends_api_key(gateway_world: World) -> None:
    imported = _import(gateway_world, AOAI, "azure-openai")
    client = openai.AzureOpenAI(azure_endpoint=imported["gateway"], api_key=imported["key"],
                                api_version="2024-10-21", max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "ping"}])
    assert reply.choices[0].message.content == "pong"
