"""The compiled policies decide the request table as expected, none of their expressions throws, and
the stand-in's gateway (armsim/gateway.py, which re-implements the allow-list in Python) decides
exactly as the compiled policy on every row; on the unified pool APIs it also routes each request to
the pool the compiled backend-id expression chose (armsim/pools.py re-implements that expression)."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.mgmt.apimanagement import models

from devhost import seed
from importer import policyxml, pools
from importer.fleet import enumerate_estate, run_pass
from importer.identity import api_id
from importer.model import AccountRef, Mode
from importer.render import INVALID_JSON_BODY, NOT_FOUND_MESSAGE
from tests.expressions import csharp, policies, table
from tests.expressions.conftest import Build, Family
from tests.fixtures.world import SUB, World

DECISION = {None: "pass", 404: "deny", 400: "invalid-json"}
BACKEND_ID = "inbound/set-backend-service/@backend-id"  # the runner's value of the pool choice
BACKEND_URL = "x-armsim-backend-url"  # the stand-in's header: the backend (pool member) that answered


def _run_table(build: Build, classes: list[str]) -> list[dict[str, Any]]:
    """The compiled ``classes`` on every row of every mode's table: one mono run."""
    assert build.compiled.ok, build.compiled.output
    requests = [row.request(mode) for mode in Mode for row in table.rows(mode)]
    return csharp.run(build.mono, build.compiled.exe, classes, requests, build.workdir)


def _decide_the_table(family: Family, lines: list[dict[str, Any]]) -> list[tuple[Mode, dict[str, Any]]]:
    """Each line of a ``family`` class on a row of a mode it was rendered for: no expression threw and
    it decided as the table says; every such row is there. Returns them, with their modes."""
    expected = {row.request(mode)["id"]: row.expected for mode in Mode for row in table.rows(mode)}
    checked = []
    for line in lines:
        mode = Mode(line["request"].split(":", 1)[0])
        if mode not in family.modes(line["policy"]):
            continue
        assert line["error"] is None, line
        assert DECISION[line["status"]] == expected[line["request"]], line
        checked.append((mode, line))
    assert len(checked) == sum(len(table.rows(m)) * sum(m in family.modes(c) for c in family.classes)
                               for m in Mode)
    return checked


@pytest.fixture(scope="module")
def results(build: Build) -> list[dict[str, Any]]:
    """Every compiled policy (and the canary) on every row of every mode's table: one mono run."""
    return _run_table(build, [*build.account.classes, "Canary"])


def test_the_compiled_policies_decide_the_table_and_never_throw(build: Build,
                                                               results: list[dict[str, Any]]) -> None:
    _decide_the_table(build.account, [line for line in results if line["policy"] != "Canary"])


@pytest.fixture(scope="module")
def pool_results(build: Build) -> list[dict[str, Any]]:
    """Every compiled unified pool policy on every row of every mode's table: one mono run."""
    return _run_table(build, list(build.pool.classes))


def test_the_unified_pool_policies_decide_the_table_and_pick_the_requested_deployments_pool(
        build: Build, pool_results: list[dict[str, Any]]) -> None:
    """The same allow-list decisions as the account policies, no expression throws, and a request
    that passes goes to the pool of the deployment it names (the first pool when it names none)."""
    first = min(d.lower() for d in table.DEPLOYMENTS)
    routed = 0
    for mode, line in _decide_the_table(build.pool, pool_results):
        if line["status"] is None:
            requested = line["variables"]["ai-requested-deployment"] or first
            chosen = line["values"][BACKEND_ID]
            assert chosen == pools.pool_id(mode, requested), line
            routed += 1
    assert routed > 0


def test_an_expression_that_throws_is_reported(results: list[dict[str, Any]]) -> None:
    """The test of the test: the canary reads the body without a null check and as a JObject."""
    canary = {line["request"]: line["error"] for line in results if line["policy"] == "Canary"}
    assert canary["azure-ai:get-info"].startswith("System.NullReferenceException")
    assert canary["azure-ai:body-malformed"].startswith("Newtonsoft.Json.JsonReaderException")
    assert canary["azure-ai:body-json-array"].startswith("Newtonsoft.Json.JsonReaderException")
    assert canary["azure-ai:body-known"] is None


def _send(base: str, method: str, path: str, headers: dict[str, str],
          body: str | None) -> tuple[int, dict[str, str], Any]:
    """(status, headers with lower-cased names, body: parsed JSON or text)."""
    url = urlsplit(base + path)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.request(method, url.path + (f"?{url.query}" if url.query else ""),
                     body=None if body is None else body.encode("utf-8"), headers=headers)
        answer = conn.getresponse()
        raw = answer.read().decode()
    finally:
        conn.close()
    got = {k.lower(): v for k, v in answer.getheaders()}
    try:
        return answer.status, got, json.loads(raw)
    except ValueError:
        return answer.status, got, raw


def _decision(status: int, body: Any) -> str:
    error = (body.get("error") if isinstance(body, dict) else None) or {}
    before, after = NOT_FOUND_MESSAGE.split("{}")  # the allow-list's own 404, not the model's
    message = str(error.get("message", ""))
    if status == 404 and error.get("code") == "DeploymentNotFound" and message.startswith(before) \
            and message.endswith(after):
        return "deny"
    if status == 400 and body == json.loads(INVALID_JSON_BODY):
        return "invalid-json"
    return "pass"


def test_the_stand_ins_gateway_decides_as_the_compiled_policy(build: Build, results: list[dict[str, Any]],
                                                             gateway_world: World) -> None:
    clients, rg, svc = gateway_world.clients, seed.APIM_GROUP, seed.APIM_NAME
    seed.create_account(clients, name=table.ACCOUNT, kind="AIServices")
    for name in table.DEPLOYMENTS:
        seed.create_deployment(clients, policies.ACCOUNT_ID, name)
    ref = AccountRef.parse(policies.ACCOUNT_ID)
    apim = gateway_world.apim_client()
    gateway = apim.api_management_service.get(rg, svc).gateway_url
    compiled = {(line["policy"], line["request"]): line["status"] for line in results}
    compared = 0
    for mode in Mode:
        gateway_world.reconciler(IMPORTER_MODE=mode.value, IMPORTER_PROBE="off").reconcile(ref)
        stored = apim.api_policy.get(rg, svc, api_id(ref, mode), "policy").value
        # The stand-in holds the very policy that was compiled for this mode with default options.
        assert policyxml.equal(stored, policies.defaults(mode))
        name = build.account.class_of[policies.defaults(mode)]
        apim.subscription.create_or_update(rg, svc, f"k-{mode.value}", models.SubscriptionCreateParameters(
            scope=f"/apis/{api_id(ref, mode)}", display_name=mode.value, state="active"))
        key = str(apim.subscription.list_secrets(rg, svc, f"k-{mode.value}").primary_key)
        for row in table.rows(mode):
            status, _, body = _send(f"{gateway}/{table.ACCOUNT}/{table.API_PATH[mode]}", row.method, row.path,
                                    {**row.headers, "api-key": key}, row.body)
            assert status != 500 and body != {"statusCode": 404, "message": "Resource not found"}, (
                mode, row.id, status, body)
            truth = DECISION[compiled[(name, row.request(mode)["id"])]]
            assert _decision(status, body) == truth == row.expected, (mode, row.id, status, body)
            compared += 1
    assert compared == sum(len(table.rows(m)) for m in Mode)


def _pool_estate(world: World) -> dict[str, str]:
    """The table's deployments, each on an account of its own (route-0, route-1, ...; the seeded
    accounts left out), imported in every mode with the unified APIs under policies.POOL_PATH. Returns
    {member backend URL: id of the one pool it is in}, read from the stand-in's backends: every pool
    has one member of its own, so the member that answered a request names the pool it was routed to."""
    clients = world.clients
    for name in ("contoso-aoai", "contoso-foundry"):
        clients.cognitive(SUB).accounts.begin_update(seed.AI_GROUP, name,
                                                     {"tags": {"apim-importer": "disabled"}}).result()
    for i, deployment in enumerate(table.DEPLOYMENTS):
        seed.create_account(clients, name=f"route-{i}", kind="AIServices")
        seed.create_deployment(clients, seed.account_id(SUB, seed.AI_GROUP, f"route-{i}"), deployment)
    rec = world.reconciler(IMPORTER_POOL_PATH=policies.POOL_PATH, IMPORTER_PROBE="off",
                           IMPORTER_MODE=",".join(m.value for m in Mode))
    results = run_pass(rec, enumerate_estate(rec))
    assert all(r.ok for r in results), [r.error for r in results if r.error]
    backends = list(world.apim_client().backend.list_by_service(seed.APIM_GROUP, seed.APIM_NAME))
    url_of = {b.name: b.url for b in backends}
    pool_of: dict[str, str] = {}
    for backend in backends:
        if backend.pool is not None:
            [member] = backend.pool.services
            url = url_of[member.id.rsplit("/", 1)[-1]]
            assert url not in pool_of, (url, pool_of[url], backend.name)
            pool_of[url] = backend.name
    assert len(pool_of) == len(table.DEPLOYMENTS) * len(Mode)
    return pool_of


def test_the_stand_ins_gateway_routes_to_the_pool_the_compiled_policy_chooses(
        build: Build, pool_results: list[dict[str, Any]], gateway_world: World) -> None:
    """Every row of each mode's table sent to the unified API on the stand-in's gateway: it decides as
    the compiled pool policy, and a request that passes is served by the member of the very pool whose
    id the compiled backend-id expression returned (a request naming no deployment: the first pool)."""
    pool_of = _pool_estate(gateway_world)
    rg, svc = seed.APIM_GROUP, seed.APIM_NAME
    apim = gateway_world.apim_client()
    gateway = apim.api_management_service.get(rg, svc).gateway_url
    apim.subscription.create_or_update(rg, svc, "k-pools", models.SubscriptionCreateParameters(
        scope="/apis", display_name="pools", state="active"))
    key = str(apim.subscription.list_secrets(rg, svc, "k-pools").primary_key)
    compiled = {(line["policy"], line["request"]): line for line in pool_results}
    compared, chosen_pools = 0, set()
    for mode in Mode:
        api = pools.unified_api_id(mode)
        stored = apim.api_policy.get(rg, svc, api, "policy").value
        # The stand-in holds the very unified policy that was compiled for this mode (default options).
        assert policyxml.equal(stored, policies.render_pool(mode, {}))
        name = build.pool.class_of[policies.render_pool(mode, {})]
        base = f"{gateway}/{apim.api.get(rg, svc, api).path}"
        for row in table.rows(mode):
            line = compiled[(name, row.request(mode)["id"])]
            status, headers, body = _send(base, row.method, row.path, {**row.headers, "api-key": key},
                                          row.body)
            assert status != 500 and body != {"statusCode": 404, "message": "Resource not found"}, (
                mode, row.id, status, body)
            assert _decision(status, body) == DECISION[line["status"]], (mode, row.id, status, body)
            if line["status"] is None:
                chosen = line["values"][BACKEND_ID]
                served_by = headers.get(BACKEND_URL, "")
                assert pool_of.get(served_by) == chosen, (mode, row.id, served_by, pool_of.get(served_by),
                                                          chosen)
                chosen_pools.add(chosen)
            else:  # refused by the allow-list: never routed
                assert BACKEND_URL not in headers, (mode, row.id, headers)
            compared += 1
    assert compared == sum(len(table.rows(m)) for m in Mode)
    # Not one pool for everything: the named deployments' pools and each mode's first pool were taken.
    assert len(chosen_pools) > 3 * len(Mode), chosen_pools
