"""Every policy the importer renders: each mode × each combination of the options that reach the
policy, through the importer's own option parser (config.resolve_options) and render; and the unified
pool APIs' policies (IMPORTER_POOL_PATH, importer/pools.py) for each mode × each combination of the
options they keep."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from importer import config, openapi, pools, render
from importer.model import Account, AccountRef, Deployment, LinkedDocument, Mode, OpenApi
from tests.core.factory import SAFETY, SAFETY_ENDPOINT, apim, settings
from tests.expressions.table import ACCOUNT, DEPLOYMENTS

SUB = "00000000-0000-0000-0000-000000000001"
ACCOUNT_ID = (f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices"
              f"/accounts/{ACCOUNT}")
REF = AccountRef.parse(ACCOUNT_ID)
EMBEDDINGS = "text-embedding-3-small"

# The override keys (options.KEYS) that change the policy, each with its values: off, on.
POLICY_OPTIONS: dict[str, tuple[Any, ...]] = {
    "tokensPerMinute": ("off", "1000"),
    "tokenQuota": ("off", "100000/Monthly"),
    "tokenMetrics": (False, True),
    "semanticCacheDeployment": ("off", EMBEDDINGS),
    "contentSafetyId": ("off", SAFETY),
    "policyFragment": ("off", "org-ai-policy"),
}
# The other keys, each with a value other than its default: none of them may change the policy.
OTHER_OPTIONS: dict[str, Any] = {
    "basePath": "ai/{account}", "products": "ai-consumers", "circuitBreaker": True, "adopt": True,
    "enableApimIdentity": True, "displayName": "Contoso limits", "openapi": "official", "llmLogging": True,
}


def account() -> Account:
    return Account(ref=REF, kind="AIServices", endpoint="https://contoso-limits.cognitiveservices.azure.com/",
                   location="westeurope", deployments=tuple(Deployment(n) for n in DEPLOYMENTS))


@dataclass(frozen=True)
class Rendered:
    mode: Mode
    overrides: tuple[tuple[str, Any], ...]
    xml: str


def render_one(mode: Mode, overrides: dict[str, Any]) -> str:
    options = config.resolve_options(settings(), {}, {"mode": mode.value, **overrides})
    linked = None
    if OpenApi(options.openapi) is OpenApi.OFFICIAL:
        link = render.openapi_link(options)
        assert link is not None
        linked = LinkedDocument(link, openapi.operations(openapi.document(mode)))
    endpoint = SAFETY_ENDPOINT if options.content_safety is not None else None
    return render.render(account(), apim(), options, linked, safety_endpoint=endpoint).policy.xml


def _every(options: dict[str, tuple[Any, ...]],
           render_fn: Callable[[Mode, dict[str, Any]], str]) -> list[Rendered]:
    """Each mode × each combination of the ``options``' values, rendered by ``render_fn``."""
    out = []
    for mode in Mode:
        for values in itertools.product(*options.values()):
            overrides = tuple(zip(options, values, strict=True))
            out.append(Rendered(mode, overrides, render_fn(mode, dict(overrides))))
    return out


def every_policy() -> list[Rendered]:
    """3 modes × 2^6 combinations of the policy's options."""
    return _every(POLICY_OPTIONS, render_one)


def defaults(mode: Mode) -> str:
    """The policy with every option at its default: what the stand-in imports in the run test."""
    return render_one(mode, {})


# The unified pool APIs leave out semantic caching and content safety (their backends belong to one
# account: pools._pool_options); every other policy option reaches their policy.
POOL_POLICY_OPTIONS: dict[str, tuple[Any, ...]] = {
    k: v for k, v in POLICY_OPTIONS.items() if k not in ("semanticCacheDeployment", "contentSafetyId")}
POOL_PATH = "ai/pool"


def render_pool(mode: Mode, overrides: dict[str, Any]) -> str:
    """The unified API's policy of ``mode``: the account above as the one source, every deployment
    of the table pooled (pools.render_pools, as poolsync renders it)."""
    options = config.resolve_options(settings(), {}, {"mode": mode.value, **overrides})
    desired = pools.render_pools(POOL_PATH, [pools.Source(account(), options)], options)
    [policy] = desired.policies
    return policy.xml


def every_pool_policy() -> list[Rendered]:
    """3 modes × 2^4 combinations of the options the unified policy keeps."""
    return _every(POOL_POLICY_OPTIONS, render_pool)
