"""The stand-in's optional gateway (armsim/gateway.py): key check, routing, the allow-list read from
the stored policy, token-limit headers, the fake model and fault injection, all from the same store
the ARM surface writes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.apimanagement import models

from armsim.server import Sim
from devhost import seed
from importer.identity import api_id
from importer.model import AccountRef, Mode
from importer.render import INVALID_JSON_BODY, not_found_body
from tests.fixtures.world import AOAI, FOUNDRY, World

ROOT = Path(__file__).resolve().parents[2]
RG, SVC = seed.APIM_GROUP, seed.APIM_NAME
CHAT = "/deployments/{}/chat/completions?api-version=2024-10-21"


def _call(url: str, body: Any = None, headers: dict[str, str] | None = None,
          method: str = "POST") -> tuple[int, dict[str, str], Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as r:
            status, raw, got = r.status, r.read(), r.headers
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), exc.headers
    text = raw.decode()
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = text
    return status, {k.lower(): v for k, v in got.items()}, parsed


def _subscription(world: World, sid: str, scope: str, state: str = "active") -> str:
    apim = world.apim_client()
    apim.subscription.create_or_update(RG, SVC, sid, models.SubscriptionCreateParameters(
        scope=scope, display_name=sid, state=state))
    return str(apim.subscription.list_secrets(RG, SVC, sid).primary_key)


@pytest.fixture
def imported(gateway_world: World) -> dict[str, Any]:
    """contoso-aoai (azure-openai, token limit) and contoso-foundry (azure-ai) imported; a key for each."""
    gateway_world.reconciler(IMPORTER_TOKENS_PER_MINUTE="100", IMPORTER_PROBE="off").reconcile(
        seed_ref(AOAI))
    gateway_world.reconciler(IMPORTER_MODE="azure-ai", IMPORTER_PROBE="off").reconcile(seed_ref(FOUNDRY))
    svc = gateway_world.apim_client().api_management_service.get(RG, SVC)
    return {"world": gateway_world, "gateway": svc.gateway_url,
            "aoai": f"{svc.gateway_url}/contoso-aoai/openai",
            "foundry": f"{svc.gateway_url}/contoso-foundry/models",
            "aoai_key": _subscription(gateway_world, "k-aoai", f"/apis/{api_id(seed_ref(AOAI))}"),
            "foundry_key": _subscription(gateway_world, "k-foundry",
                                        f"/apis/{api_id(seed_ref(FOUNDRY), Mode.AZURE_AI)}")}


def seed_ref(account_id: str) -> AccountRef:
    return AccountRef.parse(account_id)


def test_gateway_url_points_at_the_local_gateway_only_when_on(gateway_world: World, world: World) -> None:
    sim: Sim = gateway_world.sim
    assert sim.gateway is not None
    svc = gateway_world.apim_client().api_management_service.get(RG, SVC)
    assert svc.gateway_url == f"{sim.gateway.url}/{SVC}" and svc.gateway_url.startswith("http://127.0.0.1:")
    assert world.sim.gateway is None
    assert world.apim_client().api_management_service.get(RG, SVC).gateway_url == f"https://{SVC}.azure-api.net"


def test_a_chat_call_reaches_the_fake_model_with_usage_and_token_headers(imported: dict[str, Any]) -> None:
    status, headers, body = _call(imported["aoai"] + CHAT.format("gpt-4o"),
                                  {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1},
                                  {"api-key": imported["aoai_key"]})
    assert status == 200 and body["object"] == "chat.completion" and body["model"] == "gpt-4o"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert headers["x-tokens-consumed"] == str(usage["total_tokens"])
    assert headers["x-ratelimit-remaining-tokens"] == str(100 - usage["total_tokens"])
    assert headers["x-armsim-backend-url"] == "https://contoso-aoai.openai.azure.com/openai"


def test_embeddings_in_the_body_mode_and_no_token_headers_without_a_limit(imported: dict[str, Any]) -> None:
    world: World = imported["world"]
    seed.create_deployment(world.clients, FOUNDRY, "embed", model="text-embedding-3-small", version="1")
    world.reconciler(IMPORTER_MODE="azure-ai", IMPORTER_PROBE="off").reconcile(seed_ref(FOUNDRY))
    status, headers, body = _call(imported["foundry"] + "/embeddings?api-version=2024-05-01-preview",
                                  {"model": "embed", "input": "ping"}, {"api-key": imported["foundry_key"]})
    assert status == 200 and body["object"] == "list" and body["usage"]["total_tokens"] >= 1
    assert len(body["data"][0]["embedding"]) == 8
    assert "x-tokens-consumed" not in headers
    # A chat model asked for embeddings: the model says no, not the gateway.
    status, _, body = _call(imported["foundry"] + "/embeddings?api-version=2024-05-01-preview",
                            {"model": "Phi-4", "input": "ping"}, {"api-key": imported["foundry_key"]})
    assert status == 400 and body["error"]["code"] == "OperationNotSupported"


@pytest.mark.parametrize("how", ["header", "query", "bearer"])
def test_key_accepted_where_the_api_declares_it(imported: dict[str, Any], how: str) -> None:
    key = imported["aoai_key"]
    url = imported["aoai"] + CHAT.format("gpt-4o")
    headers = {"header": {"api-key": key}, "bearer": {"Authorization": f"Bearer {key}"}, "query": {}}[how]
    if how == "query":
        url += f"&api-key={key}"
    status, _, _ = _call(url, {"messages": []}, headers)
    assert status == 200
    assert key not in json.dumps(imported["world"].sim.gateway.log.as_dicts())


def test_key_names_the_api_does_not_declare_are_not_read(imported: dict[str, Any]) -> None:
    """The API renamed its key to api-key: APIM's default names no longer open it, and the azure-ai
    mode's API (no bearer in its key names) refuses Authorization: Bearer."""
    key = imported["aoai_key"]
    url = imported["aoai"] + CHAT.format("gpt-4o")
    for headers, suffix in (({"Ocp-Apim-Subscription-Key": key}, ""), ({}, f"&subscription-key={key}")):
        status, _, body = _call(url + suffix, {"messages": []}, headers)
        assert status == 401 and "missing subscription key" in body["message"]
    status, _, body = _call(imported["foundry"] + "/chat/completions?api-version=2024-05-01-preview",
                            {"model": "Phi-4", "messages": []},
                            {"Authorization": f"Bearer {imported['foundry_key']}"})
    assert status == 401 and "missing subscription key" in body["message"]
    status, _, _ = _call(imported["foundry"] + "/chat/completions?api-version=2024-05-01-preview",
                         {"model": "Phi-4", "messages": []}, {"api-key": imported["foundry_key"]})
    assert status == 200


def test_missing_and_invalid_keys_get_apims_401(imported: dict[str, Any]) -> None:
    url = imported["aoai"] + CHAT.format("gpt-4o")
    status, _, body = _call(url, {"messages": []})
    assert status == 401 and body["statusCode"] == 401 and "missing subscription key" in body["message"]
    status, _, body = _call(url, {"messages": []}, {"api-key": "wrong"})
    assert status == 401 and "invalid subscription key" in body["message"]
    # A key scoped to another API does not open this one.
    status, _, _ = _call(url, {"messages": []}, {"api-key": imported["foundry_key"]})
    assert status == 401


def test_product_all_api_and_suspended_subscriptions(imported: dict[str, Any]) -> None:
    world: World = imported["world"]
    url = imported["aoai"] + CHAT.format("gpt-4o")
    product_key = _subscription(world, "k-product", "/products/ai-consumers")
    assert _call(url, {"messages": []}, {"api-key": product_key})[0] == 401  # API not in the product yet
    world.apim_client().product_api.create_or_update(RG, SVC, "ai-consumers", api_id(seed_ref(AOAI)))
    assert _call(url, {"messages": []}, {"api-key": product_key})[0] == 200
    assert _call(url, {"messages": []}, {"api-key": _subscription(world, "k-all", "/apis")})[0] == 200
    suspended = _subscription(world, "k-off", "/apis", state="suspended")
    assert _call(url, {"messages": []}, {"api-key": suspended})[0] == 401


def test_routing_404s_for_unknown_api_operation_and_service(imported: dict[str, Any]) -> None:
    key = {"api-key": imported["aoai_key"]}
    for url in (imported["gateway"] + "/nope/openai" + CHAT.format("gpt-4o"),
                imported["aoai"] + "/deployments/gpt-4o/no-such-route?api-version=1",
                imported["aoai"] + "/deployments/gpt-4o/chat/completions",  # required api-version missing
                imported["gateway"].rsplit("/", 1)[0] + "/other-apim/contoso-aoai/openai/x"):
        status, _, body = _call(url, {"messages": []}, key)
        assert (status, body) == (404, {"statusCode": 404, "message": "Resource not found"}), url


def test_the_allow_list_is_read_from_the_stored_policy(imported: dict[str, Any]) -> None:
    key = {"api-key": imported["aoai_key"]}
    status, headers, body = _call(imported["aoai"] + CHAT.format("nope"), {"messages": []}, key)
    assert status == 404 and body == json.loads(not_found_body("nope"))
    assert headers["content-type"] == "application/json"
    # Names compare case-insensitively.
    assert _call(imported["aoai"] + CHAT.format("GPT-4o"), {"messages": []}, key)[0] == 200
    # Body mode: the model field is checked; a JSON body that does not parse gets the policy's 400.
    fkey = {"api-key": imported["foundry_key"]}
    chat = imported["foundry"] + "/chat/completions?api-version=2024-05-01-preview"
    assert _call(chat, {"model": "gpt-4o", "messages": []}, fkey)[0] == 404
    assert _call(chat, {"model": "a|phi-4", "messages": []}, fkey)[0] == 404
    assert _call(chat, {"model": "Phi-4", "messages": []}, fkey)[0] == 200
    status, headers, body = _call(chat, b"{not json", fkey)
    assert (status, body) == (400, json.loads(INVALID_JSON_BODY))
    assert headers["content-type"] == "application/json" and "not valid JSON" in body["error"]["message"]
    # The Content-Type is matched in any case.
    assert _call(chat, {"model": "gpt-4o"}, {**fkey, "Content-Type": "APPLICATION/JSON"})[0] == 404


def test_a_deployment_gone_from_the_account_but_still_allowed_gets_the_models_404(
        imported: dict[str, Any]) -> None:
    world: World = imported["world"]
    world.clients.cognitive(seed.SUBSCRIPTION).deployments.begin_delete(
        seed.AI_GROUP, "contoso-aoai", "gpt-4o").result()
    status, _, body = _call(imported["aoai"] + CHAT.format("gpt-4o"), {"messages": []},
                            {"api-key": imported["aoai_key"]})
    assert status == 404 and body["error"]["code"] == "DeploymentNotFound"
    assert body != json.loads(not_found_body("gpt-4o"))  # the model's words, not the allow-list's


def test_the_token_limit_answers_429_when_spent(imported: dict[str, Any]) -> None:
    url, key = imported["aoai"] + CHAT.format("gpt-4o"), {"api-key": imported["aoai_key"]}
    long = {"messages": [{"role": "user", "content": "x" * 400}]}  # ~108 tokens > 100 per minute
    assert _call(url, long, key)[0] == 200
    status, headers, body = _call(url, long, key)
    assert status == 429 and body["statusCode"] == 429 and "Token limit" in body["message"]
    assert int(headers["retry-after"]) >= 1


def test_gateway_requests_take_the_stand_ins_fault_rules(imported: dict[str, Any]) -> None:
    sim: Sim = imported["world"].sim
    sim.faults.error(500, times=1, path=r"^/contoso-apim/contoso-aoai/")
    url, key = imported["aoai"] + CHAT.format("gpt-4o"), {"api-key": imported["aoai_key"]}
    status, _, body = _call(url, {"messages": []}, key)
    assert status == 500 and body["statusCode"] == 500
    assert _call(url, {"messages": []}, key)[0] == 200
    assert sim.gateway is not None
    assert [e.fault for e in sim.gateway.log.entries][-2:] == ["scripted", None]
    assert sim.log.count(path="contoso-aoai/openai/deployments") == 0  # not in the ARM log


def test_the_gateway_keeps_keys_in_query_strings_out_of_its_logs(imported: dict[str, Any],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = imported["aoai_key"]
    _call(imported["aoai"] + CHAT.format("gpt-4o") + f"&api-key={key}", {"messages": []})
    assert "gateway" in caplog.text and key not in caplog.text


def test_python_dash_m_armsim_gateway_prints_both_urls() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "armsim", "--port", "0", "--gateway"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first, second = proc.stdout.readline().strip(), proc.stdout.readline().strip()
        assert first.startswith("armsim listening on http://127.0.0.1:")
        assert second.startswith("armsim gateway on http://127.0.0.1:")
        status, _, body = _call(first.rsplit(" ", 1)[-1] + "/_armsim/health", method="GET")
        assert status == 200 and body["gateway"].startswith("http://127.0.0.1:")
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("include_usage", [True, False])
def test_a_streamed_chat_is_server_sent_events_ending_in_done(imported: dict[str, Any],
                                                             include_usage: bool) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "ping"}], "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    status, headers, text = _call(imported["aoai"] + CHAT.format("gpt-4o"), body,
                                  {"api-key": imported["aoai_key"]})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in text.split("\n\n") if b]
    assert all(b.startswith("data: ") for b in blocks) and blocks[-1] == "data: [DONE]"
    chunks = [json.loads(b[6:]) for b in blocks[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "pong"
    usage = [c["usage"] for c in chunks if c.get("usage")]
    if include_usage:
        assert len(usage) == 1 and chunks[-1]["usage"] == usage[0] and chunks[-1]["choices"] == []
        assert headers["x-tokens-consumed"] == str(usage[0]["total_tokens"])
    else:
        assert usage == [] and int(headers["x-tokens-consumed"]) >= 2  # estimated, still counted


def test_a_streamed_response_names_each_event(imported: dict[str, Any]) -> None:
    status, headers, text = _call(imported["aoai"] + "/responses?api-version=2025-04-01-preview",
                                  {"model": "gpt-4o", "input": "ping", "stream": True},
                                  {"api-key": imported["aoai_key"]})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in text.split("\n\n") if b]
    assert blocks[-1] == "data: [DONE]"
    names = [b.split("\n")[0].removeprefix("event: ") for b in blocks[:-1]]
    data = [json.loads(b.split("\n")[1].removeprefix("data: ")) for b in blocks[:-1]]
    assert names == [d["type"] for d in data] and names[0] == "response.created"
    assert names[-1] == "response.completed"
    assert [d["sequence_number"] for d in data] == list(range(len(data)))
    assert headers["x-tokens-consumed"] == str(data[-1]["response"]["usage"]["total_tokens"])


def test_the_allow_lists_404_names_the_deployment_escaped(imported: dict[str, Any]) -> None:
    chat = imported["foundry"] + "/chat/completions?api-version=2024-05-01-preview"
    for name in ['x"}<y>', "back\\slash", "NÉW"]:
        status, _, body = _call(chat, {"model": name, "messages": []}, {"api-key": imported["foundry_key"]})
        assert status == 404 and body == json.loads(not_found_body(name))
        assert f"'|{name}'" in body["error"]["message"]  # outside the name characters: as sent, marked
