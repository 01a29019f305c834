"""The rendered policy: statements in order for every option combination, the allow-list, and that
no data can become markup or a live expression."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from lxml import etree

from importer import identity, policyxml, render
from importer.model import (
    ContentSafety,
    Deployment,
    InvalidInput,
    Mode,
    Options,
    SemanticCache,
    TokenLimit,
    TokenMetrics,
)
from tests.core.factory import REF, SAFETY, account, desired

FIXED_EXPRESSIONS = {*render.REQUESTED_EXPRESSION.values(), render.INVALID_JSON_CONDITION,
                     render.DENY_CONDITION, render.NOT_FOUND_BODY, render.COUNTER_KEY, render.VARY_BY,
                     render.VARY_BY_DEPLOYMENT}
FEATURES = ("safety", "limit", "metrics", "cache", "fragment")


def _options(mode: Mode, on: set[str]) -> Options:
    return Options(
        modes=(mode,),
        content_safety=ContentSafety(SAFETY) if "safety" in on else None,
        token_limit=TokenLimit(tokens_per_minute=500, quota=10_000, quota_period="Monthly")
        if "limit" in on else None,
        token_metrics=TokenMetrics() if "metrics" in on else None,
        semantic_cache=SemanticCache("text-embedding-3-small") if "cache" in on else None,
        policy_fragment="org-ai-policy" if "fragment" in on else None,
    )


def _expected(mode: Mode, on: set[str]) -> list[tuple[str, str]]:
    fam = "azure-openai" if mode is Mode.AZURE_OPENAI else "llm"
    inbound = ["base", "set-variable", "set-variable", "choose", "authentication-managed-identity",
               "set-backend-service"]
    inbound += ["llm-content-safety"] if "safety" in on else []
    # The cache lookup comes before the token limit: a hit must not spend the caller's budget.
    inbound += [f"{fam}-semantic-cache-lookup"] if "cache" in on else []
    inbound += [f"{fam}-token-limit"] if "limit" in on else []
    inbound += [f"{fam}-emit-token-metric"] if "metrics" in on else []
    inbound += ["include-fragment"] if "fragment" in on else []
    outbound = ["base"] + ([f"{fam}-semantic-cache-store"] if "cache" in on else [])
    return ([("inbound", s) for s in inbound] + [("backend", "base")]
            + [("outbound", s) for s in outbound] + [("on-error", "base")])


COMBINATIONS = [(mode, set(combo)) for mode in Mode for n in range(len(FEATURES) + 1)
                for combo in itertools.combinations(FEATURES, n)]


def _expressions(xml: str) -> list[str]:
    """Every attribute value or text that APIM would evaluate (starts with '@')."""
    root = policyxml.parse(xml)
    found = []
    for el in root.iter():
        found += [v for v in el.attrib.values() if v.startswith("@")]
        if el.text and el.text.strip().startswith("@"):
            found.append(el.text.strip())
    return found


def _find(xml: str, tag: str, **attrs: str) -> Any:
    for el in policyxml.parse(xml).iter(tag):
        if all(el.get(k) == v for k, v in attrs.items()):
            return el
    raise AssertionError(f"no <{tag} {attrs}> in policy")


@pytest.mark.parametrize(("mode", "on"), COMBINATIONS,
                         ids=[f"{m.value}:{'+'.join(sorted(on)) or 'plain'}" for m, on in COMBINATIONS])
def test_statements_in_order_for_every_combination(mode: Mode, on: set[str]) -> None:
    xml = desired(_options(mode, on)).policy.xml
    assert policyxml.statements(xml) == _expected(mode, on)
    assert set(_expressions(xml)) <= FIXED_EXPRESSIONS
    assert "{{" not in xml


@pytest.mark.parametrize("mode", list(Mode))
def test_every_statement_attribute(mode: Mode) -> None:
    d = desired(_options(mode, set(FEATURES)))
    xml, fam = d.policy.xml, render.policy_family(mode)
    main, emb, safety = (identity.backend_id(REF, r, mode) for r in ("main", "embeddings", "safety"))
    assert _find(xml, "set-backend-service").attrib == {"backend-id": main}
    assert _find(xml, "authentication-managed-identity").attrib == {
        "resource": "https://cognitiveservices.azure.com"}
    assert _find(xml, "set-variable", name="ai-requested-deployment").get("value") == \
        render.REQUESTED_EXPRESSION[mode]
    assert dict(_find(xml, f"{fam}-token-limit").attrib) == {
        "counter-key": "@(context.Subscription.Id)", "tokens-per-minute": "500", "token-quota": "10000",
        "token-quota-period": "Monthly", "estimate-prompt-tokens": "true",
        "remaining-tokens-header-name": "x-ratelimit-remaining-tokens",
        "tokens-consumed-header-name": "x-tokens-consumed"}
    metric = _find(xml, f"{fam}-emit-token-metric")
    assert metric.attrib == {"namespace": "ai-gateway"}
    assert [d.get("name") for d in metric] == ["API ID", "Subscription ID", "Operation ID"]
    lookup = _find(xml, f"{fam}-semantic-cache-lookup")
    assert dict(lookup.attrib) == {"score-threshold": "0.05", "embeddings-backend-id": emb,
                                   "embeddings-backend-auth": "system-assigned"}
    # Varied by the caller and by the deployment the request names (one API fronts every deployment).
    assert [(c.tag, c.text) for c in lookup] == [
        ("vary-by", "@(context.Subscription.Id)"),
        ("vary-by", '@(context.Variables.GetValueOrDefault<string>("ai-requested-deployment", ""))')]
    assert _find(xml, f"{fam}-semantic-cache-store").attrib == {"duration": "60"}
    cs = _find(xml, "llm-content-safety")
    assert dict(cs.attrib) == {"backend-id": safety, "shield-prompt": "true"}
    assert [(c.get("name"), c.get("threshold")) for c in cs.find("categories")] == [
        ("Hate", "4"), ("Sexual", "4"), ("SelfHarm", "4"), ("Violence", "4")]
    assert cs.find("categories").get("output-type") == "FourSeverityLevels"
    assert _find(xml, "include-fragment").attrib == {"fragment-id": "org-ai-policy"}


def test_requested_deployment_expressions_per_mode() -> None:
    exprs = render.REQUESTED_EXPRESSION
    assert 'MatchedParameters["deployment-id"]' in exprs[Mode.AZURE_OPENAI]
    assert 'MatchedParameters' not in exprs[Mode.AZURE_AI] + exprs[Mode.AZURE_OPENAI_V1]
    assert all('As<string>(preserveContent: true)' in e and '?["model"]' in e for e in exprs.values())
    assert all(".ToLowerInvariant().Contains(\"json\")" in e for e in exprs.values())
    assert all("/fine_tuning/" in e for e in exprs.values())


def test_the_400_is_fixed_json_and_the_404_a_fixed_expression() -> None:
    xml = desired().policy.xml
    whens = policyxml.parse(xml).find("inbound/choose").findall("when")
    assert [w.get("condition") for w in whens] == [render.INVALID_JSON_CONDITION, render.DENY_CONDITION]
    for when, code, reason in ((whens[0], "400", "Invalid JSON"), (whens[1], "404", "Deployment Not Found")):
        ret = when.find("return-response")
        assert [c.tag for c in ret] == ["set-status", "set-header", "set-body"]
        assert ret.find("set-status").attrib == {"code": code, "reason": reason}
        assert ret.find("set-header/value").text == "application/json"
    assert json.loads(whens[0].find("return-response/set-body").text)["error"]["code"] == "InvalidJson"
    body = whens[1].find("return-response/set-body").text
    assert body == render.NOT_FOUND_BODY  # a fixed expression: the name only comes from the variable
    assert body.count(render.REQUESTED_VARIABLE) == 1
    assert "Newtonsoft.Json.JsonConvert.SerializeObject(" in body  # JSON-escapes whatever was asked for


@pytest.mark.parametrize("requested", ["nope", 'a"b', "c\\d", "e\nf", "<g>&", "grüße", "", "x|y"])
def test_the_404_body_evaluates_to_json_with_the_name_escaped(requested: str) -> None:
    from armsim.expressions import evaluate

    text = evaluate(render.NOT_FOUND_BODY, {render.REQUESTED_VARIABLE: requested})
    error = json.loads(text)["error"]
    assert error["code"] == "DeploymentNotFound"
    assert error["message"].startswith(f"The deployment '{requested}' is not served by this API")


# ---------------------------------------------------------------------------------------------
# The allow-list


def _allowed(xml: str) -> str:
    value = _find(xml, "set-variable", name=render.ALLOWED_VARIABLE).get("value")
    assert isinstance(value, str)
    return value


def test_allow_list_holds_exactly_the_routable_deployments() -> None:
    assert _allowed(desired().policy.xml) == "|gpt-4o|text-embedding-3-small|"


@pytest.mark.parametrize(("deployments", "expected"), [
    ((), "|"),
    ((Deployment("B"), Deployment("a"), Deployment("b")), "|a|b|"),
    ((Deployment("x", provisioning_state="Deleting"), Deployment("y")), "|y|"),
    ((Deployment("a.b_c-1"),), "|a.b_c-1|"),
])
def test_allow_list_values(deployments: tuple[Deployment, ...], expected: str) -> None:
    assert _allowed(desired(account=account(deployments=deployments)).policy.xml) == expected


INJECTED_NAMES = ['a"/><evil/>', "b<x>", "c&amp;", "d]]>", "@(context.Request)", "grüße", "{{secret}}",
                  "e|f", "g\nh", "-leading", "x" * 65]


@pytest.mark.parametrize("name", INJECTED_NAMES)
def test_hostile_deployment_names_never_reach_the_policy(name: str) -> None:
    deployments = (Deployment("gpt-4o"), Deployment(name))
    xml = desired(account=account(deployments=deployments)).policy.xml
    assert _allowed(xml) == "|gpt-4o|"
    assert policyxml.statements(xml) == _expected(Mode.AZURE_OPENAI, set())
    assert set(_expressions(xml)) <= FIXED_EXPRESSIONS


@pytest.mark.parametrize("name", INJECTED_NAMES)
def test_render_policy_refuses_hostile_names_given_directly(name: str) -> None:
    with pytest.raises(InvalidInput):
        render.render_policy(Mode.AZURE_AI, Options(), backend="b", deployments=["ok", name])


@pytest.mark.parametrize("backend", ['b"/><x/>', "@(x)", "a b", "x" * 81])
def test_render_policy_refuses_hostile_backend_ids(backend: str) -> None:
    with pytest.raises(InvalidInput):
        render.render_policy(Mode.AZURE_AI, Options(), backend=backend, deployments=[])


@pytest.mark.parametrize("display", ['x"/><evil/>', "<policies/>", "a & b", "]]>", "@(context)",
                                     "grüße 漢字", "{{secret}}"])
def test_display_names_never_reach_the_policy(display: str) -> None:
    plain = desired().policy.xml
    d = desired(Options(display_name=display))
    assert d.api.display_name == display
    assert d.policy.xml == plain


@pytest.mark.parametrize("options", [
    Options(token_limit=TokenLimit(tokens_per_minute=5, counter_key="@(context.Request.IpAddress)")),
    Options(token_limit=TokenLimit()),
    Options(token_limit=TokenLimit(quota=5)),
    Options(token_limit=TokenLimit(tokens_per_minute=0)),
    Options(token_limit=TokenLimit(tokens_per_minute=5, remaining_tokens_header='x"><evil/>')),
    Options(token_metrics=TokenMetrics(dimensions=("API ID", "Client IP"))),
    Options(token_metrics=TokenMetrics(dimensions=("API ID", "Backend ID"))),  # outbound only
    Options(token_metrics=TokenMetrics(dimensions=("API ID",) * 2)),
    Options(token_metrics=TokenMetrics(dimensions=("API ID", "Operation ID", "Product ID", "User ID",
                                                   "Subscription ID", "Location"))),
    Options(token_metrics=TokenMetrics(namespace="@(x)")),
    Options(semantic_cache=SemanticCache("text-embedding-3-small", score_threshold=1.5)),
    Options(semantic_cache=SemanticCache("text-embedding-3-small", score_threshold=float("nan"))),
    Options(semantic_cache=SemanticCache("text-embedding-3-small", duration_seconds=0)),
])
def test_unsafe_or_invalid_policy_options_are_refused(options: Options) -> None:
    with pytest.raises(InvalidInput):
        desired(options)


def test_policy_is_well_formed_xml_format() -> None:
    xml = desired(_options(Mode.AZURE_OPENAI, set(FEATURES))).policy.xml
    etree.fromstring(xml.encode())  # well-formed: expressions are escaped, not raw
    assert "&amp;&amp;" in xml and "&lt;string&gt;" in xml
