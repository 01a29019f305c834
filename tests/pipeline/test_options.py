"""Idempotence for every option the importer supports: apply, then plan is empty and a second apply
makes 0 ARM writes. Options are given as settings, as tags and as per-run overrides."""

from __future__ import annotations

from typing import Any

import pytest

from devhost import seed
from importer import policyxml
from importer.identity import api_id
from importer.model import AccountRef, Mode
from tests.fixtures.world import AOAI, FOUNDRY, SUB, World

SAFETY = seed.account_id(SUB, seed.AI_GROUP, "contoso-safety")
LOGGER = "appi-logger"


def _safety(world: World) -> None:
    seed.create_account(world.clients, name="contoso-safety", kind="ContentSafety")


def _logger(world: World) -> None:
    from azure.mgmt.apimanagement import models

    key = {"instrumentationKey": "00000000-0000-0000-0000-00000000000a"}
    world.apim_client().logger.create_or_update(world.rg, world.svc, LOGGER, models.LoggerContract(
        logger_type="applicationInsights", credentials=key))


def _cache(world: World) -> None:
    from azure.mgmt.apimanagement import models

    world.apim_client().cache.create_or_update(world.rg, world.svc, "default", models.CacheContract(
        connection_string="redis.example:10000,password=x,ssl=True", use_from_location="default",
        description="external redis with RediSearch"))


def _fragment(world: World) -> None:
    from azure.mgmt.apimanagement import models

    world.apim_client().policy_fragment.begin_create_or_update(
        world.rg, world.svc, "org-ai-policy", models.PolicyFragmentContract(
            value="<fragment><set-header name=\"x-org\" exists-action=\"override\"><value>1</value>"
                  "</set-header></fragment>", format="xml")).result()


COMBOS: list[tuple[str, dict[str, str], list[str]]] = [
    ("token-limit", {"IMPORTER_TOKENS_PER_MINUTE": "5000"}, ["token-limit"]),
    ("quota", {"IMPORTER_TOKEN_QUOTA": "100000/Monthly"}, ["token-limit"]),
    ("tpm+quota", {"IMPORTER_TOKENS_PER_MINUTE": "5000", "IMPORTER_TOKEN_QUOTA": "1000/Daily"},
     ["token-limit"]),
    ("metrics", {"IMPORTER_TOKEN_METRICS": "true", "IMPORTER_METRICS_NAMESPACE": "team-ai",
                 "IMPORTER_APIM_LOGGER": LOGGER}, ["emit-token-metric"]),
    ("metrics-no-logger", {"IMPORTER_TOKEN_METRICS": "true"}, ["emit-token-metric"]),
    ("llm-logging", {"IMPORTER_LLM_LOGGING": "true"}, []),
    ("cache", {"IMPORTER_SEMANTIC_CACHE_DEPLOYMENT": "text-embedding-3-small"},
     ["semantic-cache-lookup", "semantic-cache-store"]),
    ("safety", {"IMPORTER_CONTENT_SAFETY_ID": SAFETY}, ["llm-content-safety"]),
    ("circuit-breaker", {"IMPORTER_CIRCUIT_BREAKER": "true"}, []),
    ("fragment", {"IMPORTER_POLICY_FRAGMENT": "org-ai-policy"}, ["include-fragment"]),
    ("base-path+products", {"IMPORTER_BASE_PATH": "ai/{account}", "IMPORTER_PRODUCTS": "ai-consumers"}, []),
    ("everything", {"IMPORTER_TOKENS_PER_MINUTE": "5000", "IMPORTER_TOKEN_QUOTA": "1000/Daily",
                    "IMPORTER_TOKEN_METRICS": "true", "IMPORTER_APIM_LOGGER": LOGGER,
                    "IMPORTER_LLM_LOGGING": "true",
                    "IMPORTER_SEMANTIC_CACHE_DEPLOYMENT": "text-embedding-3-small",
                    "IMPORTER_CONTENT_SAFETY_ID": SAFETY, "IMPORTER_CIRCUIT_BREAKER": "true",
                    "IMPORTER_POLICY_FRAGMENT": "org-ai-policy", "IMPORTER_PRODUCTS": "ai-consumers"},
     ["token-limit", "emit-token-metric", "semantic-cache-lookup", "llm-content-safety",
      "include-fragment"]),
]


@pytest.mark.parametrize("mode", ["azure-openai", "azure-openai-v1", "azure-openai,azure-openai-v1"])
@pytest.mark.parametrize(("label", "env", "statements"), COMBOS, ids=[c[0] for c in COMBOS])
def test_every_option_is_idempotent(world: World, mode: str, label: str, env: dict[str, str],
                                    statements: list[str]) -> None:
    _cache(world)
    _fragment(world)
    _safety(world)
    _logger(world)
    world.sim.log.clear()
    ref = AccountRef.parse(AOAI)
    rec = world.reconciler(IMPORTER_MODE=mode, **env)
    run = rec.reconcile(ref)
    assert run.error is None and run.outcome == "applied", run.error
    modes = [Mode(m) for m in mode.split(",")]
    for m in modes:
        policy = world.apim_client().api_policy.get(world.rg, world.svc, api_id(ref, m), "policy").value
        tags = [t for _, t in policyxml.statements(policy)]
        for wanted in statements:
            assert any(t.endswith(wanted) for t in tags), (wanted, tags)
    world.sim.log.clear()
    assert rec.reconcile(ref, dry_run=True).plan.empty
    world.sim.log.clear()
    again = rec.reconcile(ref)
    assert again.outcome == "noop" and world.writes() == 0
    # The budget of 8, whatever the options; each further mode's API adds its operations,
    # policy and product links; plus what an option must look at each run: the Content Safety
    # resource (its endpoint and APIM's grant on it) and the API's diagnostics.
    extra = 2 * ("IMPORTER_CONTENT_SAFETY_ID" in env) + len(modes) * ("IMPORTER_APIM_LOGGER" in env
                                                                     or "IMPORTER_LLM_LOGGING" in env)
    assert world.reads() <= 8 + 3 * (len(modes) - 1) + extra, world.sim.log.as_dicts()


def test_azure_ai_mode_with_options_on_an_aiservices_account(world: World) -> None:
    _cache(world)
    ref = AccountRef.parse(FOUNDRY)
    rec = world.reconciler(IMPORTER_MODE="azure-ai", IMPORTER_TOKENS_PER_MINUTE="1000",
                           IMPORTER_TOKEN_METRICS="true")
    assert rec.reconcile(ref).outcome == "applied"
    world.sim.log.clear()
    assert rec.reconcile(ref).outcome == "noop" and world.writes() == 0


def test_options_as_tags_then_turned_off_remove_their_backends(world: World) -> None:
    from azure.mgmt.cognitiveservices import models

    _cache(world)
    ref = AccountRef.parse(AOAI)
    cs = world.clients.cognitive(SUB)
    cs.accounts.begin_update("rg-ai", ref.name, models.Account(tags={
        "apim-importer-cache": "text-embedding-3-small", "apim-importer-tpm": "100"})).result()
    _safety(world)
    rec = world.reconciler(IMPORTER_CONTENT_SAFETY_ID=SAFETY)
    assert rec.reconcile(ref).outcome == "applied"
    backends = {b.rsplit("/", 1)[-1] for b in world.sim.ids("Microsoft.ApiManagement/service/backends")}
    assert len(backends) == 3  # main, embeddings, safety
    cs.accounts.begin_update("rg-ai", ref.name, models.Account(tags={
        "apim-importer-cache": "off", "apim-importer-safety": "off"})).result()
    run = rec.reconcile(ref)
    assert run.outcome == "applied", run.error
    kinds: list[Any] = sorted((c.action.value, c.kind) for c in run.plan.changes)
    assert kinds == [("delete", "backend"), ("delete", "backend"), ("update", "policy")]
    assert len(world.sim.ids("Microsoft.ApiManagement/service/backends")) == 1
    assert rec.reconcile(ref, dry_run=True).plan.empty


def test_semantic_cache_without_an_external_cache_explains_what_is_missing(world: World) -> None:
    run = world.reconciler(IMPORTER_SEMANTIC_CACHE_DEPLOYMENT="text-embedding-3-small").reconcile(
        AccountRef.parse(AOAI))
    assert run.outcome == "failed" and "cache" in run.error.lower()
    assert world.writes() == 0
