"""plan.diff and plan.offboard: create-all, no-op, one change per drift, conflicts, adopt, offboard."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest
from lxml import etree

from importer import identity, plan, policyxml, render
from importer.model import (
    KIND_ORDER,
    Action,
    Actual,
    ActualApi,
    ActualBackend,
    ActualPolicy,
    ActualSubscription,
    ApiSpec,
    BackendSpec,
    Change,
    ContentSafety,
    Deployment,
    Desired,
    DiagnosticSpec,
    Mode,
    Options,
    Plan,
    PolicySpec,
    ProductLinkSpec,
    RoleAssignmentSpec,
    SemanticCache,
    TokenLimit,
    TokenMetrics,
)
from tests.core.factory import (
    APIM_REF,
    DEPLOYMENTS,
    PRINCIPAL,
    REF,
    SAFETY,
    SUB,
    account,
    actual_from,
    desired,
)

FULL = Options(products=("gold", "silver"), token_limit=TokenLimit(tokens_per_minute=1000),
               token_metrics=TokenMetrics(), semantic_cache=SemanticCache("text-embedding-3-small"),
               content_safety=ContentSafety(SAFETY), policy_fragment="org-ai")


def _off(a: Actual) -> Plan:
    return plan.offboard(REF, a, APIM_REF)


def _summary(p: Plan) -> list[tuple[str, str, str]]:
    return [(c.action.value, c.kind, c.id) for c in p.changes]


def apim_reserialised(xml: str) -> str:
    """What APIM hands back for our policy: CRLF, tabs, its own attribute order, `<x />`."""
    root = policyxml.parse(xml)
    for el in root.iter():
        items = list(el.attrib.items())
        el.attrib.clear()
        for k, v in reversed(items):
            el.set(k, v)
    etree.indent(root, space="\t")
    text = str(etree.tostring(root, encoding="unicode"))
    return text.replace("/>", " />").replace("\n", "\r\n")


# ---------------------------------------------------------------------------------------------
# Create and no-op


@pytest.mark.parametrize("mode", list(Mode))
def test_create_everything_from_nothing(mode: Mode) -> None:
    d = desired(replace(FULL, modes=(mode,)))
    p = plan.diff(d, Actual())
    api = identity.api_id(REF, mode)
    prefix = identity.api_id(REF)
    role, grant = d.role_assignments[0].name, d.role_assignments[1].name
    assert d.role_assignments[1].scope == SAFETY  # Content Safety: APIM's grant on that resource
    assert _summary(p) == sorted([
        ("create", "role_assignment", role),
        ("create", "role_assignment", grant),
    ]) + [
        *sorted([("create", "backend", api), ("create", "backend", f"{prefix}-embeddings"),
                 ("create", "backend", f"{prefix}-safety")]),
        ("create", "api", api),
        ("create", "policy", api),
        ("create", "product_link", "gold"),
        ("create", "product_link", "silver"),
    ]
    assert all(c.after is not None and c.before is None and c.reason for c in p.changes)
    assert {c.kind: c.after for c in p.changes}["api"] == d.api
    assert {c.kind: c.spec(ApiSpec) for c in p.changes if c.kind == "api"}["api"] == d.api
    assert not p.conflicts and not p.empty


@pytest.mark.parametrize("mode", list(Mode))
def test_nothing_to_do_when_actual_matches(mode: Mode) -> None:
    d = desired(replace(FULL, modes=(mode,)))
    assert plan.diff(d, actual_from(d)).changes == ()
    assert plan.diff(d, actual_from(d)).empty


@pytest.mark.parametrize("mode", list(Mode))
def test_nothing_to_do_when_apim_reserialised_the_policy(mode: Mode) -> None:
    d = desired(replace(FULL, modes=(mode,)))
    variant = apim_reserialised(d.policy.xml)
    assert variant != d.policy.xml and "\r\n" in variant and "&quot;" in variant
    assert plan.diff(d, actual_from(d, policy_xml=variant)).changes == ()


def test_nothing_to_do_when_apim_normalised_what_it_returns() -> None:
    d = desired(FULL)
    a = actual_from(d)
    have = a.apis[0]
    api = replace(have.spec, description=have.spec.description.replace("\n", "\r\n"),
                  protocols=("HTTPS",), operations=tuple(reversed(have.spec.operations)))
    role = d.role_assignments[0]
    other_name = replace(
        role, name="00000000-1111-2222-3333-444444444444", principal_id=PRINCIPAL.upper(),
        role_definition_guid=f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
                             f"{role.role_definition_guid.upper()}", description="made by hand")
    links = (*d.product_links, ProductLinkSpec("someone-elses-product", d.api.api_id))
    a = replace(a, apis=(replace(have, spec=api),), role_assignments=(other_name, d.role_assignments[1]),
                product_links=links)
    assert plan.diff(d, a).changes == ()


# ---------------------------------------------------------------------------------------------
# One drift, one change

Mutation = Callable[[Desired, Actual], tuple[Desired, Actual]]


def _api(a: Actual, **changes: object) -> Actual:
    have = a.apis[0]
    return replace(a, apis=(replace(have, spec=replace(have.spec, **changes)),))  # type: ignore[arg-type]


def _policy(spec: PolicySpec) -> tuple[ActualPolicy, ...]:
    return (ActualPolicy(spec, etag='"policy-1"'),)


def _backend(a: Actual, index: int, **changes: object) -> Actual:
    bs = list(a.backends)
    bs[index] = replace(bs[index], spec=replace(bs[index].spec, **changes))  # type: ignore[arg-type]
    return replace(a, backends=tuple(bs))


def _with_deployments(deployments: tuple[Deployment, ...]) -> Mutation:
    def mutate(d: Desired, a: Actual) -> tuple[Desired, Actual]:
        return desired(FULL, account=account(deployments=deployments)), a
    return mutate


API = identity.api_id(REF)
DRIFTS: dict[str, tuple[Mutation, tuple[str, str, str], str]] = {
    "policy edited": (lambda d, a: (d, replace(a, policies=_policy(PolicySpec(API, d.policy.xml.replace(
        'tokens-per-minute="1000"', 'tokens-per-minute="9"'))))), ("update", "policy", API),
        'tokens-per-minute="1000"'),
    "policy missing": (lambda d, a: (d, replace(a, policies=())),
                       ("create", "policy", API), "<policies>"),
    "backend missing": (lambda d, a: (d, replace(a, backends=a.backends[1:])),
                        ("create", "backend", API), "url: https://"),
    "backend url changed": (lambda d, a: (d, _backend(a, 0, url="https://elsewhere.example.com/openai")),
                            ("update", "backend", API),
                            "url: https://elsewhere.example.com/openai → "
                            "https://contoso-ai.cognitiveservices.azure.com/openai"),
    "backend circuit breaker changed": (lambda d, a: (d, _backend(a, 2, circuit_breaker=True)),
                                        ("update", "backend", f"{API}-safety"),
                                        "circuit_breaker: True → False"),
    "api path changed": (lambda d, a: (d, _api(a, path="old/openai")), ("update", "api", API),
                         "path: old/openai → contoso-ai/openai"),
    "api display name changed": (lambda d, a: (d, _api(a, display_name="Renamed")), ("update", "api", API),
                                 "display_name: Renamed → Contoso-AI (azure-openai)"),
    "api subscription off": (lambda d, a: (d, _api(a, subscription_required=False)), ("update", "api", API),
                             "subscription_required: False → True"),
    "operation missing": (lambda d, a: (d, _api(a, operations=d.api.operations[1:])),
                          ("update", "api", API), "operation: + DELETE"),
    "extra operation": (lambda d, a: (d, _api(a, operations=(*d.api.operations, ("GET", "/extra")))),
                        ("update", "api", API), "operation: - GET /extra"),
    "product link missing": (lambda d, a: (d, replace(a, product_links=a.product_links[:1])),
                             ("create", "product_link", "silver"), "product: silver"),
    "role assignment missing": (lambda d, a: (d, replace(a, role_assignments=a.role_assignments[1:])),
                                ("create", "role_assignment", "@role"), "principal: " + PRINCIPAL),
    "deployment added": (_with_deployments((*DEPLOYMENTS, Deployment("o3-mini"))), ("update", "policy", API),
                         '+    <set-variable name="ai-allowed-deployments" '
                         'value="|gpt-4o|o3-mini|text-embedding-3-small|"/>'),
    "deployment finished provisioning": (
        _with_deployments(tuple(replace(x, provisioning_state="Succeeded") for x in DEPLOYMENTS)),
        ("update", "policy", API), "|broken|gpt-4o|still-creating|text-embedding-3-small|"),
    "deployment removed": (_with_deployments(DEPLOYMENTS[1:]), ("update", "policy", API),
                           '-    <set-variable name="ai-allowed-deployments" '
                           'value="|gpt-4o|text-embedding-3-small|"/>'),
}


@pytest.mark.parametrize("name", list(DRIFTS))
def test_each_drift_yields_exactly_one_change(name: str) -> None:
    mutate, (action, kind, ident), diff_text = DRIFTS[name]
    base = desired(FULL)
    d, a = mutate(base, actual_from(base))
    p = plan.diff(d, a)
    expected_id = d.role_assignments[0].name if ident == "@role" else ident
    assert _summary(p) == [(action, kind, expected_id)]
    change = p.changes[0]
    assert any(diff_text in line for line in change.diff), change.diff
    if action == "update":
        assert change.etag is not None  # If-Match on every update


def test_update_carries_the_spec_to_write_and_the_etag() -> None:
    d = desired(FULL)
    p = plan.diff(d, _api(actual_from(d), path="x/openai"))
    assert p.changes[0].after == d.api and p.changes[0].etag == '"api-1"'
    assert p.changes[0].before.path == "x/openai"  # what APIM held, as Terraform's plan shows it
    p = plan.diff(d, replace(actual_from(d), policies=_policy(PolicySpec(API, "<policies/>"))))
    assert p.changes[0].after == d.policy and p.changes[0].etag == '"policy-1"'
    assert p.changes[0].before == PolicySpec(API, "<policies/>")
    with pytest.raises(TypeError, match="update policy .* holds PolicySpec, not ApiSpec"):
        p.changes[0].spec(ApiSpec)


def test_unparsable_actual_policy_is_replaced() -> None:
    d = desired()
    raw = '<policies><inbound><base /><set-variable name="x" value="@(a && b)" /></inbound></policies>'
    p = plan.diff(d, replace(actual_from(d), policies=_policy(PolicySpec(API, raw))))
    assert _summary(p) == [("update", "policy", API)]


def test_feature_turned_off_deletes_its_owned_backend_after_the_policy_update() -> None:
    before = desired(FULL)
    after = desired(replace(FULL, content_safety=None))
    p = plan.diff(after, actual_from(before))
    assert _summary(p) == [("update", "policy", API), ("delete", "backend", f"{API}-safety")]
    assert p.changes[1].etag == f'"{API}-safety-1"'


def test_mode_change_swaps_the_role_and_keeps_a_hand_made_one() -> None:
    before = desired(Options(modes=(Mode.AZURE_OPENAI,)))
    after = desired(Options(modes=(Mode.AZURE_AI,)))
    hand_made = RoleAssignmentSpec("hand", REF.id, render.ROLE_OPENAI_USER.upper(), PRINCIPAL, description="")
    a = replace(actual_from(before), role_assignments=(*before.role_assignments, hand_made))
    p = plan.diff(after, a)
    kinds = [(c.action.value, c.kind) for c in p.changes]
    assert ("create", "role_assignment") in kinds
    deleted = [c for c in p.changes if c.action is Action.DELETE]
    # ours only, never "hand": the mode's API and main backend, and the role it needed
    assert sorted((c.kind, c.id) for c in deleted) == sorted([
        ("api", before.api.api_id), ("backend", before.api.api_id),
        ("role_assignment", before.role_assignments[0].name)])


# ---------------------------------------------------------------------------------------------
# Conflicts and adoption


def _foreign_api(d: Desired) -> Actual:
    a = actual_from(d)
    spec = replace(a.apis[0].spec, description="Someone's API", display_name="theirs")
    return replace(a, apis=(ActualApi(spec, etag='"theirs"', owned=False),))


def test_foreign_api_by_id_is_one_conflict_and_no_writes() -> None:
    d = desired(FULL)
    p = plan.diff(d, _foreign_api(d))
    assert _summary(p) == [("conflict", "api", API)]
    assert p.empty and p.writes == () and len(p.conflicts) == 1
    assert "adopt" in p.changes[0].reason


def test_foreign_api_by_path_is_one_conflict_and_no_writes() -> None:
    d = desired(FULL)
    p = plan.diff(d, Actual(path_clashes=((API, "legacy-openai"),)))
    assert _summary(p) == [("conflict", "api", API)]
    assert "legacy-openai" in p.changes[0].reason and p.empty
    # adopt cannot take over an API with another id: still a conflict
    adopted = plan.diff(d, Actual(path_clashes=((API, "legacy-openai"),)), adopt=True)
    assert _summary(adopted) == [("conflict", "api", API)]


def test_path_clash_naming_our_own_api_is_not_a_conflict() -> None:
    d = desired()
    assert plan.diff(d, replace(actual_from(d), path_clashes=((API, API.upper()),))).changes == ()


def test_foreign_backend_with_our_id_is_a_conflict() -> None:
    d = desired(FULL)
    a = actual_from(d)
    theirs = replace(a.backends[0], owned=False)
    p = plan.diff(d, replace(a, backends=(theirs, *a.backends[1:])))
    assert _summary(p) == [("conflict", "backend", API)] and p.empty


def test_adopt_updates_foreign_objects() -> None:
    d = desired(FULL)
    a = _foreign_api(d)
    a = replace(a, backends=(replace(a.backends[0], owned=False), *a.backends[1:]))
    p = plan.diff(d, a, adopt=True)
    assert _summary(p) == [("update", "backend", API), ("update", "api", API)]
    assert all("adopt" in c.reason for c in p.changes)
    assert p.changes[1].etag == '"theirs"'
    assert any(line.startswith("description:") for line in p.changes[1].diff)


# ---------------------------------------------------------------------------------------------
# Offboarding


def test_offboard_deletes_only_owned_objects_in_reverse_order() -> None:
    d = desired(FULL)
    a = actual_from(d)
    foreign_backend = ActualBackend(BackendSpec("someone-else", "https://x", "theirs"), owned=False)
    foreign_role = RoleAssignmentSpec("hand", REF.id, render.ROLE_OPENAI_USER, PRINCIPAL, description="")
    a = replace(a, backends=(*a.backends, foreign_backend),
                role_assignments=(*a.role_assignments, foreign_role))
    p = _off(a)
    assert _summary(p) == [
        ("delete", "api", API),
        ("delete", "backend", API),
        ("delete", "backend", f"{API}-embeddings"),
        ("delete", "backend", f"{API}-safety"),
        ("delete", "role_assignment", d.role_assignments[0].name),
    ]
    assert p.changes[0].etag == '"api-1"' and p.changes[0].before == a.apis[0].spec
    assert p.changes[-1].before == d.role_assignments[0] and p.changes[-1].after is None
    assert p.changes[-1].spec(RoleAssignmentSpec) == d.role_assignments[0]


def test_offboard_leaves_a_foreign_api_alone() -> None:
    d = desired()
    assert _summary(_off(replace(_foreign_api(d), backends=(), role_assignments=()))) == []


def test_offboard_ignores_marks_of_other_accounts() -> None:
    other = replace(REF, name="other-account")
    d = desired()
    role = replace(d.role_assignments[0], description=identity.owner_description(other, APIM_REF, "x"))
    assert _off(Actual(role_assignments=(role,))).changes == ()


def test_offboard_deletes_our_probe_subscription_first_and_never_a_foreign_one() -> None:
    d = desired()
    ours = ActualSubscription(identity.probe_subscription(REF), etag='"sub-1"', owned=True)
    p = _off(replace(actual_from(d), subscription=ours))
    assert _summary(p)[:2] == [("delete", "subscription", identity.probe_subscription_id(REF)),
                               ("delete", "api", API)]
    assert p.changes[0].etag == '"sub-1"'
    foreign = replace(ours, owned=False)
    assert "subscription" not in {c.kind for c in _off(Actual(subscription=foreign)).changes}


def test_offboard_nothing() -> None:
    assert _off(Actual()) == Plan(REF, ())


# ---------------------------------------------------------------------------------------------
# Order, stability, JSON


def test_output_is_sorted_and_stable() -> None:
    d = desired(FULL)
    a = actual_from(d)
    drifted = replace(a, backends=tuple(reversed([replace(b, spec=replace(b.spec, url=b.spec.url + "x"))
                                                  for b in a.backends])),
                      product_links=(), role_assignments=(), policies=())
    p1 = plan.diff(d, drifted)
    p2 = plan.diff(d, replace(drifted, backends=tuple(reversed(drifted.backends))))
    assert p1 == p2
    assert list(p1.changes) == sorted(p1.changes, key=Change.order)
    ranks = [KIND_ORDER.index(c.kind) for c in p1.changes]
    assert ranks == sorted(ranks)


def test_plan_json_round_trips() -> None:
    d = desired(FULL)
    for p in (plan.diff(d, Actual()), plan.diff(d, _foreign_api(d)), _off(actual_from(d)),
              plan.diff(d, _api(actual_from(d), path="a/openai"))):
        data = p.to_json()
        assert json.loads(json.dumps(data)) == data
        assert data["account"] == REF.id
        assert [(c["action"], c["kind"], c["id"]) for c in data["changes"]] == _summary(p)


def test_describe_is_human_text() -> None:
    d = desired()
    assert plan.describe(plan.diff(d, actual_from(d))).endswith("no changes")
    text = plan.describe(plan.diff(d, _api(actual_from(d), path="a/openai")))
    assert "update   api" in text and "path: a/openai → contoso-ai/openai" in text


def test_api_diff_ignores_the_import_document() -> None:
    d = desired()
    a = actual_from(d)
    assert a.apis[0].spec.import_value == ""
    assert plan.api_diff(a.apis[0].spec, d.api) == ()
    bare = ApiSpec("x", "n", "d", "p")
    assert plan.api_diff(bare, replace(bare, import_value="{}")) == ()



def test_link_mode_compares_operations_by_method_and_path_only() -> None:
    from importer.model import LinkedDocument, OpenApi

    link = "https://x.example.com/specs/AIFoundryOpenAI.json"
    ops = (("GET", "/models?api-version={api-version}"), ("POST", "/chat/completions?api-version={v}"))
    d = desired(Options(openapi=OpenApi.OFFICIAL, openapi_base_url="https://x.example.com/specs/"),
                linked=LinkedDocument(link, ops))
    a = actual_from(d)
    # APIM templated the required query parameters otherwise (or not at all): not drift in link mode.
    other = (("GET", "/models"), ("POST", "/chat/completions?api-version={api-version}&x={x}"))
    assert plan.diff(d, _api(a, operations=other)).empty
    # A missing or extra operation still is; the diff line has no query part.
    p = plan.diff(d, _api(a, operations=(("GET", "/models"), ("DELETE", "/x"))))
    assert [c.diff for c in p.changes] == [("operation: + POST /chat/completions", "operation: - DELETE /x")]
    # The bundled document compares whole templates.
    b = desired()
    ab = actual_from(b)
    first, *rest = b.api.operations
    changed = ((first[0], first[1].split("?")[0] + "?x={x}"), *rest)
    assert not plan.diff(b, _api(ab, operations=changed)).empty


def test_link_mode_create_names_the_document() -> None:
    from importer.model import LinkedDocument, OpenApi

    link = render.openapi_link(Options(openapi=OpenApi.OFFICIAL))
    assert link is not None
    d = desired(Options(openapi=OpenApi.OFFICIAL), linked=LinkedDocument(link, (("GET", "/a"),)))
    api = next(c for c in plan.diff(d, Actual()).changes if c.kind == "api")
    assert api.diff == (f"path: {d.api.path}", "operations: 1", f"document: {link}")


def test_each_apis_diagnostic_is_compared_with_its_own() -> None:
    """Two modes: two APIs, each with an azuremonitor diagnostic. LLM logging turned off by hand on
    the first API is drift of that API's diagnostic alone (the second's must not hide it)."""
    d = desired(Options(modes=(Mode.AZURE_OPENAI, Mode.AZURE_OPENAI_V1), llm_logging=True))
    first, second = (a.api_id for a in d.apis)
    monitor = [x for x in d.diagnostics if x.name == "azuremonitor"]
    assert [x.api_id for x in monitor] == [first, second]
    held = actual_from(d)
    assert plan.diff(d, held).empty
    off = replace(held, diagnostics=tuple(replace(x, llm_logging=False) if x.api_id == first else x
                                         for x in held.diagnostics))
    p = plan.diff(d, off)
    assert [(c.action.value, c.kind, c.id) for c in p.changes] == [
        ("update", "diagnostic", f"{first}/azuremonitor")]
    assert p.changes[0].spec(DiagnosticSpec).api_id == first
