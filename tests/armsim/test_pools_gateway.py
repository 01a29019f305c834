"""The stand-in gateway routes the importer's pools like APIM: provisioned first, spill-over to the
standard members by weight when it is throttled (no 429 reaches the client while a member has
capacity), breakers honouring Retry-After, backend-targeted faults posted to /_armsim/faults."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from typing import Any

import pytest

from devhost import seed
from importer.fleet import enumerate_estate, run_pass
from tests.armsim.test_gateway import CHAT, _call, _subscription
from tests.fixtures.world import SUB, World


def _post_fault(world: World, spec: dict[str, Any]) -> Any:
    request = urllib.request.Request(f"{world.sim.url}/_armsim/faults", data=json.dumps(spec).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as response:
        return json.loads(response.read().decode())


@pytest.fixture
def pooled(gateway_world: World) -> dict[str, Any]:
    """acct-ptu (ProvisionedManaged 100), acct-a and acct-b (Standard 30 and 10) serving gpt-4o, pooled
    under ai/pool; the seeded accounts left out; a key for every API."""
    world = gateway_world
    for name in ("contoso-aoai", "contoso-foundry"):
        world.clients.cognitive(SUB).accounts.begin_update(
            seed.AI_GROUP, name, {"tags": {"apim-importer": "disabled"}}).result()
    for name, sku, capacity in (("acct-ptu", "ProvisionedManaged", 100), ("acct-a", "Standard", 30),
                                ("acct-b", "Standard", 10)):
        seed.create_account(world.clients, name=name, kind="OpenAI")
        seed.create_deployment(world.clients, seed.account_id(SUB, seed.AI_GROUP, name), "gpt-4o", sku=sku,
                               capacity=capacity)
    rec = world.reconciler(IMPORTER_POOL_PATH="ai/pool", IMPORTER_PROBE="off")
    results = run_pass(rec, enumerate_estate(rec))
    assert all(r.ok for r in results), [r.error for r in results if r.error]
    gateway = world.apim_client().api_management_service.get(seed.APIM_GROUP, seed.APIM_NAME).gateway_url
    return {"world": world, "url": f"{gateway}/ai/pool/openai" + CHAT.format("gpt-4o"),
            "key": {"api-key": _subscription(world, "k-all", "/apis")}}


def _account_of(headers: dict[str, str]) -> str:
    url = headers.get("x-armsim-backend-url", "")
    return next(n for n in ("acct-ptu", "acct-a", "acct-b") if n in url)


def _calls(pooled: dict[str, Any], n: int) -> tuple[Counter[int], Counter[str]]:
    statuses: Counter[int] = Counter()
    served: Counter[str] = Counter()
    for _ in range(n):
        status, headers, _body = _call(pooled["url"], {"messages": [{"role": "user", "content": "hi"}]},
                                       pooled["key"])
        statuses[status] += 1
        if status == 200:
            served[_account_of(headers)] += 1
    return statuses, served


def test_the_provisioned_member_takes_everything_while_it_has_capacity(pooled: dict[str, Any]) -> None:
    statuses, served = _calls(pooled, 10)
    assert statuses == Counter({200: 10}) and served == Counter({"acct-ptu": 10})


def test_spill_over_when_the_provisioned_member_is_throttled_no_429_reaches_the_client(
        pooled: dict[str, Any]) -> None:
    specs = _post_fault(pooled["world"], {"kind": "throttle", "times": 100, "retry_after": 30,
                                          "path": "acct-ptu\\.", "on": "backend"})
    assert specs[-1]["on"] == "backend"
    statuses, served = _calls(pooled, 80)
    assert statuses == Counter({200: 80})
    assert served["acct-ptu"] == 0
    assert served["acct-a"] > 2 * served["acct-b"] > 0  # weights 3:1
    # The breaker tripped on the first 429 and stays open for Retry-After: one throttled call only.
    sim = pooled["world"].sim
    remaining = [s for s in sim.faults.specs() if s.get("on") == "backend"]
    assert len(remaining[0]["actions"]) == 99


def test_when_every_member_is_throttled_the_client_is_told(pooled: dict[str, Any]) -> None:
    for name in ("acct-ptu", "acct-a", "acct-b"):
        _post_fault(pooled["world"], {"kind": "throttle", "times": 5, "retry_after": 30,
                                      "path": f"{name}\\.", "on": "backend"})
    status, headers, _ = _call(pooled["url"], {"messages": []}, pooled["key"])
    assert status == 429 and headers.get("retry-after") == "30"
    status, _, body = _call(pooled["url"], {"messages": []}, pooled["key"])
    assert status == 503 and "temporarily unavailable" in body["message"]  # every breaker open


def test_a_tripped_member_comes_back_after_its_retry_after(pooled: dict[str, Any]) -> None:
    sim = pooled["world"].sim
    now = [1000.0]
    sim.gateway.pools.breakers._clock = lambda: now[0]
    sim.faults.throttle(times=1, retry_after=5, path="acct-ptu\\.", on="backend")
    status, headers, _ = _call(pooled["url"], {"messages": []}, pooled["key"])
    assert status == 200 and _account_of(headers) != "acct-ptu"  # retried on a standard member
    now[0] += 4
    assert _account_of(_call(pooled["url"], {"messages": []}, pooled["key"])[1]) != "acct-ptu"
    now[0] += 2  # past Retry-After: the breaker closes, priority 1 again
    assert _account_of(_call(pooled["url"], {"messages": []}, pooled["key"])[1]) == "acct-ptu"


def test_each_member_call_carries_apims_token_checked_against_that_members_account(
        pooled: dict[str, Any]) -> None:
    """Data-plane auth as for a single-backend API: the provisioned member's account no longer grants
    APIM's identity an inference role, so its own endpoint refuses the token (401 is not retried)."""
    world: World = pooled["world"]
    auth = world.clients.authorization(SUB)
    principal = str(world.apim_client().api_management_service.get(
        seed.APIM_GROUP, seed.APIM_NAME).identity.principal_id)
    ptu = seed.account_id(SUB, seed.AI_GROUP, "acct-ptu")
    ours = [r for r in auth.role_assignments.list_for_scope(ptu, filter="atScope()")
            if (r.scope or "").lower() == ptu.lower() and r.principal_id == principal]
    assert ours
    for role in ours:
        auth.role_assignments.delete(ptu, role.name)
    status, headers, body = _call(pooled["url"], {"messages": []}, pooled["key"])
    assert status == 401 and body["error"]["code"] == "PermissionDenied", body
    assert principal in body["error"]["message"] and _account_of(headers) == "acct-ptu"
    world.sim.faults.throttle(times=1, retry_after=30, path="acct-ptu\\.", on="backend")
    status, headers, body = _call(pooled["url"], {"messages": []}, pooled["key"])
    assert status == 200 and _account_of(headers) in ("acct-a", "acct-b"), body  # their roles hold


def test_a_backend_fault_on_a_single_backend_api_answers_for_that_backend(pooled: dict[str, Any]) -> None:
    world = pooled["world"]
    gateway = world.apim_client().api_management_service.get(seed.APIM_GROUP, seed.APIM_NAME).gateway_url
    url = f"{gateway}/acct-b/openai" + CHAT.format("gpt-4o")
    world.sim.faults.error(503, times=1, path="acct-b\\.", on="backend")
    status, headers, body = _call(url, {"messages": []}, pooled["key"])
    assert status == 503 and body["error"]["code"] == "ServiceUnavailable"
    assert "acct-b" in headers["x-armsim-backend-url"]
    assert _call(url, {"messages": []}, pooled["key"])[0] == 200


def test_a_rate_fault_gives_a_backend_a_capacity(pooled: dict[str, Any]) -> None:
    world = pooled["world"]
    gateway = world.apim_client().api_management_service.get(seed.APIM_GROUP, seed.APIM_NAME).gateway_url
    url = f"{gateway}/acct-a/openai" + CHAT.format("gpt-4o")
    specs = _post_fault(world, {"kind": "rate", "per_second": 1, "path": "acct-a\\.", "on": "backend"})
    assert specs[-1] == {"kind": "rate", "method": None, "path": "acct-a\\.", "per_second": 1.0,
                         "on": "backend"}
    statuses = [_call(url, {"messages": []}, pooled["key"]) for _ in range(2)]  # well within a second
    assert [s[0] for s in statuses] == [200, 429]
    assert statuses[1][1]["retry-after"] == "1"


def test_the_models_mode_pool_is_picked_from_the_body_model(gateway_world: World) -> None:
    world = gateway_world
    for name in ("contoso-aoai", "contoso-foundry"):
        world.clients.cognitive(SUB).accounts.begin_update(
            seed.AI_GROUP, name, {"tags": {"apim-importer": "disabled"}}).result()
    for name in ("found-a", "found-b"):
        seed.create_account(world.clients, name=name, kind="AIServices")
        aid = seed.account_id(SUB, seed.AI_GROUP, name)
        seed.create_deployment(world.clients, aid, "phi-4", model="Phi-4", model_format="Microsoft")
    seed.create_deployment(world.clients, seed.account_id(SUB, seed.AI_GROUP, "found-b"), "mistral",
                           model="Mistral-large", model_format="Mistral AI")
    rec = world.reconciler(IMPORTER_POOL_PATH="ai/pool", IMPORTER_PROBE="off", IMPORTER_MODE="azure-ai")
    assert all(r.ok for r in run_pass(rec, enumerate_estate(rec)))
    gateway = world.apim_client().api_management_service.get(seed.APIM_GROUP, seed.APIM_NAME).gateway_url
    url = f"{gateway}/ai/pool/models/chat/completions?api-version=2024-05-01-preview"
    key = {"api-key": _subscription(world, "k", "/apis")}
    served: Counter[str] = Counter()
    for _ in range(20):
        status, headers, body = _call(url, {"model": "phi-4", "messages": []}, key)
        assert status == 200, body
        served[_account(headers)] += 1
    assert set(served) == {"found-a", "found-b"}  # equal weights: both take a share
    status, headers, _ = _call(url, {"model": "mistral", "messages": []}, key)
    assert status == 200 and _account(headers) == "found-b"
    assert _call(url, {"model": "gpt-4o", "messages": []}, key)[0] == 404  # the allow-list


def _account(headers: dict[str, str]) -> str:
    url = headers.get("x-armsim-backend-url", "")
    return next(n for n in ("found-a", "found-b") if n in url)
