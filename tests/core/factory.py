"""Builders shared by the core tests: one account, one APIM service, settings from a dict."""

from __future__ import annotations

from dataclasses import replace

from importer import render
from importer.model import (
    Account,
    AccountRef,
    Actual,
    ActualApi,
    ActualBackend,
    ActualPolicy,
    ApimRef,
    ApimService,
    Deployment,
    Desired,
    Options,
)
from importer.settings import Settings

SUB = "00000000-0000-0000-0000-000000000001"
ACCOUNT_ID = (f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices"
              "/accounts/Contoso-AI")
APIM_ID = (f"/subscriptions/{SUB}/resourceGroups/rg-apim/providers/Microsoft.ApiManagement"
           "/service/contoso-apim")
PRINCIPAL = "11111111-2222-3333-4444-555555555555"
ENDPOINT = "https://contoso-ai.cognitiveservices.azure.com/"
SAFETY = (f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices"
          "/accounts/contoso-safety")
SAFETY_ENDPOINT = "https://contoso-safety.cognitiveservices.azure.com/"

REF = AccountRef.parse(ACCOUNT_ID)
APIM_REF = ApimRef.parse(APIM_ID)

DEPLOYMENTS = (
    Deployment("gpt-4o", model_name="gpt-4o", model_format="OpenAI"),
    Deployment("text-embedding-3-small", model_name="text-embedding-3-small", model_format="OpenAI"),
    Deployment("still-creating", provisioning_state="Creating"),
    Deployment("broken", provisioning_state="Failed"),
)


def account(kind: str = "AIServices", deployments: tuple[Deployment, ...] = DEPLOYMENTS,
            ref: AccountRef = REF, endpoint: str = ENDPOINT) -> Account:
    return Account(ref=ref, kind=kind, endpoint=endpoint, location="westeurope", deployments=deployments)


def apim(principal: str | None = PRINCIPAL, cache: bool = True) -> ApimService:
    return ApimService(APIM_REF, principal, gateway_url="https://contoso-apim.azure-api.net",
                       has_external_cache=cache)


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def desired(options: Options | None = None, **kw: object) -> Desired:
    acc = kw.pop("account", None) or account()
    svc = kw.pop("apim", None) or apim()
    linked = kw.pop("linked", None)
    opts = options or Options()
    endpoint = SAFETY_ENDPOINT if opts.content_safety is not None else None
    return render.render(acc, svc, opts, linked, safety_endpoint=endpoint)  # type: ignore[arg-type]


def actual_from(d: Desired, *, policy_xml: str | None = None) -> Actual:
    """What APIM would hold right after applying ``d`` (policy optionally in another form)."""
    return Actual(
        # APIM does not return the document
        apis=tuple(ActualApi(replace(a, import_value=""), etag=f'"api-{i + 1}"', owned=True)
                   for i, a in enumerate(d.apis)),
        backends=tuple(ActualBackend(b, etag=f'"{b.backend_id}-1"', owned=True) for b in d.backends),
        policies=tuple(ActualPolicy(replace(p, xml=policy_xml if policy_xml is not None else p.xml),
                                    etag=f'"policy-{i + 1}"') for i, p in enumerate(d.policies)),
        product_links=d.product_links,
        role_assignments=d.role_assignments,
        # An LLM-logging 'off' asks for no diagnostic: APIM holds the others.
        diagnostics=tuple(x for x in d.diagnostics if x.llm_logging is not False),
    )
