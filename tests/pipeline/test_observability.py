"""Token metrics that emit, LLM message logging, and a semantic cache that does not mix models
(issue 13 §6), on the stand-in.

llm-emit-token-metric sends nothing unless an ``applicationinsights`` diagnostic with metrics on, on
an Application Insights logger, covers the API: the importer keeps the API's one on
IMPORTER_APIM_LOGGER, and the stand-in's gateway records a metric only under that condition.
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.mgmt.apimanagement import models

from importer import policyxml
from importer.azure.rest import PREVIEW_API_VERSION, ArmJson
from importer.identity import api_id
from importer.model import AccountRef
from tests.armsim.test_gateway import CHAT, _call, _subscription
from tests.fixtures.world import AOAI, World

LOGGER = "appi-logger"


def _logger(world: World, name: str = LOGGER, kind: str = "applicationInsights") -> None:
    credentials = ({"instrumentationKey": "00000000-0000-0000-0000-00000000000a"}
                   if kind == "applicationInsights" else {"connectionString": "Endpoint=sb://x/;"})
    world.apim_client().logger.create_or_update(world.rg, world.svc, name, models.LoggerContract(
        logger_type=kind, credentials=credentials))


def _diagnostic(world: World, name: str) -> dict[str, Any] | None:
    from azure.core.exceptions import ResourceNotFoundError

    ref = AccountRef.parse(AOAI)
    try:
        body, _ = ArmJson(world.apim_client()).get(f"{world.apim}/apis/{api_id(ref)}/diagnostics/{name}")
    except ResourceNotFoundError:
        return None
    return dict(body["properties"])


def _chat(world: World) -> int:
    ref = AccountRef.parse(AOAI)
    svc = world.apim_client().api_management_service.get(world.rg, world.svc)
    key = _subscription(world, "k-obs", f"/apis/{api_id(ref)}")
    status, _, _ = _call(f"{svc.gateway_url}/contoso-aoai/openai" + CHAT.format("gpt-4o"),
                         {"messages": [{"role": "user", "content": "ping"}]}, {"api-key": key})
    return status


METRICS = {"IMPORTER_TOKEN_METRICS": "true", "IMPORTER_PROBE": "off"}


def test_metrics_get_an_app_insights_diagnostic_and_reach_it(gateway_world: World) -> None:
    _logger(gateway_world)
    rec = gateway_world.reconciler(IMPORTER_APIM_LOGGER=LOGGER, **METRICS)
    ref = AccountRef.parse(AOAI)
    assert rec.reconcile(ref).outcome == "applied"
    diag = _diagnostic(gateway_world, "applicationinsights")
    assert diag is not None and diag["metrics"] is True and diag["loggerId"].endswith(f"/loggers/{LOGGER}")
    writes = [e for e in gateway_world.sim.log.entries if e.kind == "write" and "/diagnostics/" in e.path]
    assert writes and all(f"api-version={PREVIEW_API_VERSION}" in e.query for e in writes)
    assert _chat(gateway_world) == 200
    sent = gateway_world.sim.gateway.metrics
    assert len(sent) == 1 and sent[0]["logger"] == LOGGER and sent[0]["namespace"] == "ai-gateway"
    assert "Backend ID" not in sent[0]["dimensions"] and sent[0]["total"] > 0
    gateway_world.sim.log.clear()
    assert rec.reconcile(ref).outcome == "noop" and gateway_world.writes() == 0


def test_without_a_diagnostic_the_metric_goes_nowhere(gateway_world: World) -> None:
    rec = gateway_world.reconciler(**METRICS)
    run = rec.reconcile(AccountRef.parse(AOAI))
    assert run.outcome == "applied" and any("IMPORTER_APIM_LOGGER" in n for n in run.notes)
    assert _diagnostic(gateway_world, "applicationinsights") is None
    assert _chat(gateway_world) == 200 and gateway_world.sim.gateway.metrics == []
    # A service-level diagnostic with metrics on (infra: apimAppInsightsLogger) carries them.
    _logger(gateway_world)
    gateway_world.apim_client().diagnostic.create_or_update(
        gateway_world.rg, gateway_world.svc, "applicationinsights", models.DiagnosticContract(
            logger_id=f"/loggers/{LOGGER}", metrics=True))
    assert _chat(gateway_world) == 200 and len(gateway_world.sim.gateway.metrics) == 1


@pytest.mark.parametrize(("make", "expected"), [
    (None, "does not exist"),
    ("azureEventHub", "not applicationInsights"),
])
def test_a_logger_that_is_missing_or_of_another_kind_is_an_error_before_any_write(
        gateway_world: World, make: str | None, expected: str) -> None:
    if make is not None:
        _logger(gateway_world, kind=make)
    gateway_world.sim.log.clear()
    run = gateway_world.reconciler(IMPORTER_APIM_LOGGER=LOGGER, **METRICS).reconcile(AccountRef.parse(AOAI))
    assert run.outcome == "failed" and expected in (run.error or "") and LOGGER in (run.error or "")
    assert gateway_world.writes() == 0


def test_metrics_turned_off_on_the_diagnostic_is_repaired_keeping_the_rest(gateway_world: World) -> None:
    _logger(gateway_world)
    rec = gateway_world.reconciler(IMPORTER_APIM_LOGGER=LOGGER, **METRICS)
    ref = AccountRef.parse(AOAI)
    rec.reconcile(ref)
    client = gateway_world.apim_client()
    client.api_diagnostic.create_or_update(gateway_world.rg, gateway_world.svc, api_id(ref),
                                           "applicationinsights", models.DiagnosticContract(
                                               logger_id=f"/loggers/{LOGGER}", metrics=False,
                                               verbosity="error"))
    run = rec.reconcile(ref)
    assert [(c.action.value, c.kind, c.id) for c in run.plan.changes] == [
        ("update", "diagnostic", f"{api_id(ref)}/applicationinsights")]
    diag = _diagnostic(gateway_world, "applicationinsights")
    assert diag is not None and diag["metrics"] is True and diag["verbosity"] == "error"


def test_llm_logging_on_then_off(gateway_world: World) -> None:
    ref = AccountRef.parse(AOAI)
    on = gateway_world.reconciler(IMPORTER_LLM_LOGGING="true", IMPORTER_PROBE="off")
    assert on.reconcile(ref).outcome == "applied"
    diag = _diagnostic(gateway_world, "azuremonitor")
    assert diag is not None and diag["loggerId"].endswith("/loggers/azuremonitor")
    llm = diag["largeLanguageModel"]
    assert llm["logs"] == "enabled" and llm["requests"]["messages"] == "all"
    assert llm["responses"]["maxSizeInBytes"] > 0
    gateway_world.sim.log.clear()
    assert on.reconcile(ref).outcome == "noop" and gateway_world.writes() == 0
    off = gateway_world.reconciler(IMPORTER_PROBE="off")
    run = off.reconcile(ref)
    assert sorted((c.action.value, c.kind) for c in run.plan.changes) == [
        ("update", "backend"), ("update", "diagnostic")]
    diag = _diagnostic(gateway_world, "azuremonitor")
    assert diag is not None and diag["largeLanguageModel"]["logs"] == "disabled"
    gateway_world.sim.log.clear()
    assert off.reconcile(ref).outcome == "noop" and gateway_world.writes() == 0
    assert gateway_world.reads() <= 8  # off costs no diagnostics read once it is off


def test_llm_logging_as_tag_and_json_key(gateway_world: World) -> None:
    from azure.mgmt.cognitiveservices import models as cs_models

    ref = AccountRef.parse(AOAI)
    gateway_world.clients.cognitive(ref.subscription).accounts.begin_update(
        ref.resource_group, ref.name, cs_models.Account(tags={"apim-importer-llm-logging": "on"})).result()
    rec = gateway_world.reconciler(IMPORTER_PROBE="off")
    assert rec.reconcile(ref).outcome == "applied"
    assert (_diagnostic(gateway_world, "azuremonitor") or {})["largeLanguageModel"]["logs"] == "enabled"
    run = rec.reconcile(ref, overrides={"llmLogging": False})
    assert any(c.kind == "diagnostic" for c in run.plan.changes)
    assert (_diagnostic(gateway_world, "azuremonitor") or {})["largeLanguageModel"]["logs"] == "disabled"


def test_the_cache_lookup_precedes_the_token_limit_and_varies_by_deployment(world: World) -> None:
    world.apim_client().cache.create_or_update(world.rg, world.svc, "default", models.CacheContract(
        connection_string="redis.example:10000,password=x,ssl=True", use_from_location="default"))
    ref = AccountRef.parse(AOAI)
    rec = world.reconciler(IMPORTER_SEMANTIC_CACHE_DEPLOYMENT="text-embedding-3-small",
                           IMPORTER_TOKENS_PER_MINUTE="1000")
    assert rec.reconcile(ref).outcome == "applied"
    stored = world.apim_client().api_policy.get(world.rg, world.svc, api_id(ref), "policy").value
    tags = [t for _, t in policyxml.statements(stored)]
    assert tags.index("azure-openai-semantic-cache-lookup") < tags.index("azure-openai-token-limit")
    lookup = next(policyxml.parse(stored).iter("azure-openai-semantic-cache-lookup"))
    assert [v.text for v in lookup.iter("vary-by")] == [
        "@(context.Subscription.Id)",
        '@(context.Variables.GetValueOrDefault<string>("ai-requested-deployment", ""))']


def _cached_world(world: World) -> dict[str, Any]:
    from devhost import seed

    world.apim_client().cache.create_or_update(world.rg, world.svc, "default", models.CacheContract(
        connection_string="redis.example:10000,password=x,ssl=True", use_from_location="default"))
    seed.create_deployment(world.clients, AOAI, "gpt-4o-mini", model="gpt-4o-mini", version="2024-07-18")
    ref = AccountRef.parse(AOAI)
    rec = world.reconciler(IMPORTER_SEMANTIC_CACHE_DEPLOYMENT="text-embedding-3-small",
                           IMPORTER_TOKEN_QUOTA="20/Monthly", IMPORTER_PROBE="off")
    assert rec.reconcile(ref).outcome == "applied"
    svc = world.apim_client().api_management_service.get(world.rg, world.svc)
    key = _subscription(world, "k-cache", f"/apis/{api_id(ref)}")
    base = f"{svc.gateway_url}/contoso-aoai/openai"

    def chat(deployment: str, text: str) -> tuple[int, dict[str, str], Any]:
        return _call(base + CHAT.format(deployment), {"messages": [{"role": "user", "content": text}]},
                     {"api-key": key})
    return {"ref": ref, "chat": chat}


def test_the_gateways_cache_never_serves_one_deployments_answer_for_another(gateway_world: World) -> None:
    chat = _cached_world(gateway_world)["chat"]
    status, headers, body = chat("gpt-4o", "hello")
    assert status == 200 and body["model"] == "gpt-4o" and "x-armsim-cache" not in headers
    status, headers, body = chat("gpt-4o-mini", "hello")
    assert status == 200 and body["model"] == "gpt-4o-mini" and "x-armsim-cache" not in headers
    status, headers, body = chat("gpt-4o", "hello")
    assert status == 200 and body["model"] == "gpt-4o" and headers["x-armsim-cache"] == "hit"


def test_a_cache_hit_does_not_spend_the_token_budget(gateway_world: World) -> None:
    chat = _cached_world(gateway_world)["chat"]
    assert chat("gpt-4o", "hello")[0] == 200  # 11 tokens of the quota of 20
    assert chat("gpt-4o", "another prompt")[0] == 200  # over the quota now
    assert chat("gpt-4o", "a third prompt")[0] == 403  # the quota refuses a miss
    status, headers, _ = chat("gpt-4o", "hello")  # ... but not a hit: the lookup comes first
    assert status == 200 and headers["x-armsim-cache"] == "hit"


def test_the_stand_in_shows_what_the_old_policy_got_wrong(gateway_world: World) -> None:
    """The policy before issue 13: lookup after the limit, varied by subscription only. The stand-in
    serves gpt-4o's answer for gpt-4o-mini and refuses a hit once the budget is spent."""
    from lxml import etree

    cached = _cached_world(gateway_world)
    aid = api_id(cached["ref"])
    client = gateway_world.apim_client()
    root = policyxml.parse(client.api_policy.get(gateway_world.rg, gateway_world.svc, aid, "policy").value)
    inbound = root.find("inbound")
    lookup = inbound.find("azure-openai-semantic-cache-lookup")
    lookup.remove(lookup.findall("vary-by")[1])
    inbound.remove(lookup)
    inbound.insert(list(inbound).index(inbound.find("azure-openai-token-limit")) + 1, lookup)
    client.api_policy.create_or_update(gateway_world.rg, gateway_world.svc, aid, "policy",
                                       models.PolicyContract(value=etree.tostring(root, encoding="unicode"),
                                                             format="xml"))
    chat = cached["chat"]
    assert chat("gpt-4o", "hello")[0] == 200
    status, headers, body = chat("gpt-4o-mini", "hello")
    assert status == 200 and body["model"] == "gpt-4o" and headers["x-armsim-cache"] == "hit"  # mixed
    assert chat("gpt-4o", "another prompt")[0] == 200
    assert chat("gpt-4o", "hello")[0] == 403  # the limit runs first: even a hit is refused
