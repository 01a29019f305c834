"""render: ids, ownership mark, the desired objects per mode, refusals."""

from __future__ import annotations

from dataclasses import replace

import pytest

from importer import identity, openapi, render
from importer.model import (
    OFFICIAL_OPENAPI_BASE_URL,
    OWNER_MARK,
    ApiSpec,
    BackendSpec,
    ContentSafety,
    Deployment,
    DiagnosticSpec,
    InvalidInput,
    LinkedDocument,
    Mode,
    OpenApi,
    Options,
    ProductLinkSpec,
    RoleAssignmentSpec,
    SemanticCache,
    TokenMetrics,
)
from tests.core.factory import (
    APIM_REF,
    ENDPOINT,
    PRINCIPAL,
    REF,
    SAFETY,
    SAFETY_ENDPOINT,
    account,
    apim,
    desired,
)

MARK = f"[{OWNER_MARK} account={REF.id} apim={APIM_REF.id}]"


# ---------------------------------------------------------------------------------------------
# The desired objects per mode

MODE_CASES = [
    (Mode.AZURE_OPENAI, "contoso-ai/openai", ENDPOINT + "openai", render.ROLE_OPENAI_USER),
    (Mode.AZURE_AI, "contoso-ai/models", ENDPOINT + "models", render.ROLE_COGNITIVE_SERVICES_USER),
    (Mode.AZURE_OPENAI_V1, "contoso-ai/openai/v1", ENDPOINT + "openai/v1", render.ROLE_OPENAI_USER),
]


@pytest.mark.parametrize(("mode", "path", "url", "role"), MODE_CASES)
def test_desired_objects_per_mode(mode: Mode, path: str, url: str, role: str) -> None:
    d = desired(Options(modes=(mode,), products=("gold", "bronze")))
    api_id = identity.api_id(REF, mode)
    assert d.account == REF
    assert d.api == ApiSpec(
        api_id=api_id,
        display_name=f"Contoso-AI ({mode.value})",
        description=f"Azure AI Foundry API for account Contoso-AI ({mode.value} mode), imported by "
                    f"apim-ai-importer.\n{MARK}",
        path=path,
        service_url=url,
        protocols=("https",),
        subscription_required=True,
        key_header="api-key",
        key_query="api-key",
        key_bearer=mode is not Mode.AZURE_AI,  # OpenAI-style modes: Authorization: Bearer <key> too
        import_format="openapi+json",
        import_value=render.bundled_document(mode, f"Contoso-AI ({mode.value})", d.api.description),
        operations=openapi.operations(openapi.document(mode)),
    )
    assert d.backends == (BackendSpec(
        backend_id=api_id, url=url, description=f"Azure AI account Contoso-AI, {mode.value} route.\n{MARK}",
        title=f"Contoso-AI ({mode.value})", protocol="http", circuit_breaker=False),)
    assert d.product_links == (ProductLinkSpec("bronze", api_id), ProductLinkSpec("gold", api_id))
    assert d.role_assignments == (RoleAssignmentSpec(
        name=identity.role_assignment_name(REF.id, role, PRINCIPAL), scope=REF.id, role_definition_guid=role,
        principal_id=PRINCIPAL,
        description=f"API Management contoso-apim calls account Contoso-AI.\n{MARK}"),)
    assert d.policy.api_id == api_id
    assert identity.owned_account(d.api.description) == REF.id


def test_display_name_and_base_path_options() -> None:
    d = desired(Options(display_name="Prod <AI> & \"friends\"", base_path="teams/{account}/x"))
    assert d.api.display_name == "Prod <AI> & \"friends\""
    assert d.api.path == "teams/contoso-ai/x/openai"


def test_endpoint_without_trailing_slash() -> None:
    d = desired(account=account(endpoint=ENDPOINT.rstrip("/")))
    assert d.backends[0].url == ENDPOINT + "openai"


def test_cache_and_safety_backends() -> None:
    options = Options(semantic_cache=SemanticCache("Text-Embedding-3-Small"),
                      content_safety=ContentSafety(SAFETY), circuit_breaker=True)
    d = desired(options)
    by_id = {b.backend_id: b for b in d.backends}
    assert [b.backend_id for b in d.backends] == sorted(by_id)
    emb = by_id[identity.backend_id(REF, "embeddings")]
    assert emb.url == ENDPOINT + "openai/deployments/text-embedding-3-small/embeddings"
    assert emb.circuit_breaker and identity.owned_account(emb.description) == REF.id
    safety = by_id[identity.backend_id(REF, "safety")]
    assert safety.url == SAFETY_ENDPOINT and safety.circuit_breaker
    assert safety.identity_resource == "https://cognitiveservices.azure.com"
    assert identity.owned_account(safety.description) == REF.id
    assert render.safety_resource_of(safety.description) == SAFETY
    # APIM's identity gets Cognitive Services User on the Content Safety resource, marked for this
    # APIM instance (the grant is shared by every account that uses the resource).
    grant = next(r for r in d.role_assignments if r.scope == SAFETY)
    assert grant.role_definition_guid == render.ROLE_COGNITIVE_SERVICES_USER
    assert grant.principal_id == PRINCIPAL
    assert grant.name == identity.role_assignment_name(SAFETY, render.ROLE_COGNITIVE_SERVICES_USER, PRINCIPAL)
    assert render.owns_safety_grant(grant.description, APIM_REF)
    assert identity.owned_account(grant.description) is None


def test_safety_needs_its_endpoint_read_before_render() -> None:
    with pytest.raises(ValueError, match="was not read"):
        render.render(account(), apim(), Options(content_safety=ContentSafety(SAFETY)))


def test_diagnostics_follow_metrics_logger_and_llm_logging() -> None:
    api = identity.api_id(REF)
    off = desired(Options()).diagnostics
    assert off == (DiagnosticSpec(api, "azuremonitor", "azuremonitor", llm_logging=False),)
    # Metrics without a logger: no diagnostic is managed (a service-level one may carry them).
    assert desired(Options(token_metrics=TokenMetrics())).diagnostics == off
    both = desired(Options(token_metrics=TokenMetrics(), apim_logger="appi", llm_logging=True)).diagnostics
    assert both == (DiagnosticSpec(api, "applicationinsights", "appi", metrics=True),
                    DiagnosticSpec(api, "azuremonitor", "azuremonitor", llm_logging=True))


# ---------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(("kind", "mode", "ok"), [
    ("OpenAI", Mode.AZURE_OPENAI, True),
    ("OpenAI", Mode.AZURE_OPENAI_V1, True),
    ("OpenAI", Mode.AZURE_AI, False),
    ("AIServices", Mode.AZURE_AI, True),
    ("aiservices", Mode.AZURE_OPENAI, True),
    ("TextAnalytics", Mode.AZURE_OPENAI, False),
])
def test_mode_by_kind(kind: str, mode: Mode, ok: bool) -> None:
    if ok:
        assert desired(Options(modes=(mode,)), account=account(kind=kind)).api.path.endswith(mode.suffix)
    else:
        with pytest.raises(InvalidInput) as err:
            desired(Options(modes=(mode,)), account=account(kind=kind))
        if kind == "OpenAI":
            assert "supports azure-openai, azure-openai-v1" in str(err.value)


def test_no_identity_says_how_to_fix() -> None:
    with pytest.raises(InvalidInput) as err:
        desired(apim=apim(principal=None))
    assert "identity.type=SystemAssigned" in str(err.value)
    assert "IMPORTER_ENABLE_APIM_IDENTITY=true" in str(err.value)


def test_cache_without_external_cache_says_what_to_register() -> None:
    with pytest.raises(InvalidInput, match="RediSearch.*/caches"):
        desired(Options(semantic_cache=SemanticCache("text-embedding-3-small")), apim=apim(cache=False))


@pytest.mark.parametrize("name", ["missing-deployment", "still-creating", "broken"])
def test_cache_needs_a_routable_embeddings_deployment(name: str) -> None:
    with pytest.raises(InvalidInput, match="provisioning state Succeeded"):
        desired(Options(semantic_cache=SemanticCache(name)))


@pytest.mark.parametrize("options", [
    Options(base_path="/bad"),
    Options(products=("ok", "bad product")),
    Options(policy_fragment="x\"/><evil/>"),
    Options(semantic_cache=SemanticCache("a\"b")),
    Options(content_safety=ContentSafety("https://x.example.com/\"><evil/>")),
    Options(content_safety=ContentSafety(SAFETY, categories=(("Hate", 3),))),
    Options(content_safety=ContentSafety(SAFETY, categories=(("Evil<", 2),))),
    Options(display_name="bell\x07"),
])
def test_options_not_built_by_config_are_still_checked(options: Options) -> None:
    with pytest.raises(InvalidInput):
        desired(options)


def test_bad_account_endpoint_is_refused() -> None:
    with pytest.raises(InvalidInput, match="endpoint of account"):
        desired(account=account(endpoint="http://contoso-ai.cognitiveservices.azure.com/"))


def test_unroutable_deployments_are_left_out() -> None:
    deployments = (Deployment("ok"), Deployment("a\"b"), Deployment("x\n"),
                   Deployment("late", provisioning_state="Accepted"))
    assert [d.name for d in render.routable_deployments(account(deployments=deployments))] == ["ok"]


# ---------------------------------------------------------------------------------------------
# The official OpenAPI document, by link

LINK_OPS = (("GET", "/models?api-version={api-version}"), ("POST", "/chat/completions"))
FILES = {Mode.AZURE_OPENAI: "AIFoundryOpenAI.json", Mode.AZURE_AI: "AIFoundryAzureAI.json",
         Mode.AZURE_OPENAI_V1: "AIFoundryOpenAIV1.json"}


@pytest.mark.parametrize("mode", list(Mode))
def test_official_document_is_imported_by_link(mode: Mode) -> None:
    options = Options(modes=(mode,), openapi=OpenApi.OFFICIAL)
    link = OFFICIAL_OPENAPI_BASE_URL + FILES[mode]
    assert render.openapi_link(options) == link
    d = desired(options, linked=LinkedDocument(link, LINK_OPS))
    bundled = desired(Options(modes=(mode,)))
    assert d.api == replace(
        bundled.api, import_format="openapi+json-link", import_value=link, operations=LINK_OPS,
        description=bundled.api.description.replace(f"\n{MARK}", f"\nOpenAPI document: {link}\n{MARK}"))
    assert identity.owned_account(d.api.description) == REF.id
    assert (d.backends, d.policy, d.role_assignments) == (bundled.backends, bundled.policy,
                                                          bundled.role_assignments)


def test_link_follows_the_base_url_and_a_custom_description() -> None:
    options = Options(openapi=OpenApi.OFFICIAL, openapi_base_url="http://127.0.0.1:8780/_armsim/files/",
                      description="Team gateway.")
    link = "http://127.0.0.1:8780/_armsim/files/AIFoundryOpenAI.json"
    d = desired(options, linked=LinkedDocument(link, LINK_OPS))
    assert d.api.description == f"Team gateway.\nOpenAPI document: {link}\n{MARK}"


def test_bundled_document_needs_no_link() -> None:
    assert render.openapi_link(Options()) is None
    assert desired(Options(), linked=LinkedDocument("https://x.example.com/a.json", LINK_OPS)).api == \
        desired().api


@pytest.mark.parametrize("linked", [None, LinkedDocument("https://elsewhere.example.com/x.json", LINK_OPS)])
def test_official_document_must_have_been_fetched_for_its_link(linked: LinkedDocument | None) -> None:
    with pytest.raises(ValueError, match="not fetched"):
        desired(Options(openapi=OpenApi.OFFICIAL), linked=linked)


def test_a_bad_base_url_built_some_other_way_is_refused() -> None:
    with pytest.raises(InvalidInput, match="openapi_base_url"):
        desired(Options(openapi=OpenApi.OFFICIAL, openapi_base_url="https://x.example.com/a\"b/"))


@pytest.mark.parametrize("named", [
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a/../../x",
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a?api-version=1",
    "https://evil.example/", "/subscriptions/s", "",
])
def test_a_safety_backend_description_names_a_resource_only_if_it_is_an_account_id(named: str) -> None:
    """The description is anyone's to edit in APIM; what it names reaches ARM URLs (the sweep of
    unused grants) only when it parses as a Content Safety account id."""
    assert render.safety_resource_of(f"x\n{render.SAFETY_RESOURCE_LINE}{named}\nmark") is None
    assert render.safety_resource_of(f"x\n{render.SAFETY_RESOURCE_LINE}{SAFETY}/\nmark") == SAFETY
