"""config.resolve_options: settings < tags < overrides, opt-in/out, and refusal of every bad value."""

from __future__ import annotations

from typing import Any

import pytest

from importer import config
from importer.model import (
    AccountRef,
    ContentSafety,
    InvalidInput,
    Mode,
    OpenApi,
    Options,
    SemanticCache,
    TokenLimit,
    TokenMetrics,
)
from importer.options import check_openapi_base_url
from tests.core.factory import REF, SAFETY, settings

INJECTIONS = ['a"b', "a<b", "a&b", "a]]>b", "@(x)", "grüße", "{{secret}}", "a\nb", "a b", "a'b"]


def resolve(env: dict[str, str] | None = None, tags: dict[str, str] | None = None,
            overrides: dict[str, Any] | None = None) -> Options:
    return config.resolve_options(settings(**(env or {})), tags or {}, overrides, account=REF.name)


def test_defaults_are_the_plain_options() -> None:
    assert resolve() == Options()


# ---------------------------------------------------------------------------------------------
# Settings

SETTING_CASES: list[tuple[dict[str, str], str, object]] = [
    ({"IMPORTER_MODE": "azure-ai"}, "mode", Mode.AZURE_AI),
    ({"IMPORTER_MODE": " Azure-OpenAI-V1 "}, "mode", Mode.AZURE_OPENAI_V1),
    ({"IMPORTER_BASE_PATH": "ai/{account}"}, "base_path", "ai/{account}"),
    ({"IMPORTER_PRODUCTS": "starter, gold,starter"}, "products", ("gold", "starter")),
    ({"IMPORTER_TOKENS_PER_MINUTE": "1000"}, "token_limit", TokenLimit(tokens_per_minute=1000)),
    ({"IMPORTER_TOKENS_PER_MINUTE": "off"}, "token_limit", None),
    ({"IMPORTER_TOKEN_QUOTA": "5000/daily"}, "token_limit", TokenLimit(quota=5000, quota_period="Daily")),
    ({"IMPORTER_TOKENS_PER_MINUTE": "10", "IMPORTER_TOKEN_QUOTA": "99/Yearly"}, "token_limit",
     TokenLimit(tokens_per_minute=10, quota=99, quota_period="Yearly")),
    ({"IMPORTER_TOKEN_METRICS": "true"}, "token_metrics", TokenMetrics()),
    ({"IMPORTER_TOKEN_METRICS": "true", "IMPORTER_METRICS_NAMESPACE": "team.ai_gw-1"}, "token_metrics",
     TokenMetrics(namespace="team.ai_gw-1")),
    ({"IMPORTER_METRICS_NAMESPACE": "ns"}, "token_metrics", None),
    ({"IMPORTER_SEMANTIC_CACHE_DEPLOYMENT": "text-embedding-3-small"}, "semantic_cache",
     SemanticCache("text-embedding-3-small")),
    ({"IMPORTER_CONTENT_SAFETY_ID": SAFETY}, "content_safety", ContentSafety(SAFETY)),
    ({"IMPORTER_APIM_LOGGER": "appi-logger"}, "apim_logger", "appi-logger"),
    ({"IMPORTER_LLM_LOGGING": "true"}, "llm_logging", True),
    ({}, "llm_logging", False),
    ({"IMPORTER_CIRCUIT_BREAKER": "true"}, "circuit_breaker", True),
    ({"IMPORTER_POLICY_FRAGMENT": "org-ai_policy"}, "policy_fragment", "org-ai_policy"),
    ({"IMPORTER_ENABLE_APIM_IDENTITY": "yes"}, "enable_apim_identity", True),
    ({"IMPORTER_ADOPT": "1"}, "adopt", True),
    ({"IMPORTER_OPT_IN": "false"}, "enabled", True),
    ({"IMPORTER_OPT_IN": "true"}, "enabled", False),
    ({"IMPORTER_OPENAPI": " Official "}, "openapi", OpenApi.OFFICIAL),
    ({"IMPORTER_OPENAPI": "bundled"}, "openapi", OpenApi.BUNDLED),
    ({"IMPORTER_OPENAPI_BASE_URL": "https://mirror.example.com/ai-gateway/specs/"}, "openapi_base_url",
     "https://mirror.example.com/ai-gateway/specs/"),
    ({"IMPORTER_OPENAPI_BASE_URL": "https://mirror.example.com:8443/%7Eme/"}, "openapi_base_url",
     "https://mirror.example.com:8443/%7Eme/"),
    ({"IMPORTER_OPENAPI_BASE_URL": "http://127.0.0.1:8780/_armsim/files/"}, "openapi_base_url",
     "http://127.0.0.1:8780/_armsim/files/"),
    ({"IMPORTER_OPENAPI_BASE_URL": "http://localhost/specs/"}, "openapi_base_url", "http://localhost/specs/"),
]


@pytest.mark.parametrize(("env", "field", "expected"), SETTING_CASES)
def test_each_setting(env: dict[str, str], field: str, expected: object) -> None:
    assert getattr(resolve(env), field) == expected


BAD_SETTINGS: list[tuple[str, str]] = [
    ("IMPORTER_MODE", "openai"),
    ("IMPORTER_BASE_PATH", "/leading"),
    ("IMPORTER_BASE_PATH", "trailing/"),
    ("IMPORTER_BASE_PATH", "a//b"),
    ("IMPORTER_BASE_PATH", "a/../b"),
    ("IMPORTER_BASE_PATH", "{other}"),
    ("IMPORTER_BASE_PATH", "x" * 201),
    ("IMPORTER_PRODUCTS", "good,-bad"),
    ("IMPORTER_PRODUCTS", "p" * 81),
    ("IMPORTER_TOKENS_PER_MINUTE", "abc"),
    ("IMPORTER_TOKENS_PER_MINUTE", "0"),
    ("IMPORTER_TOKENS_PER_MINUTE", "-5"),
    ("IMPORTER_TOKENS_PER_MINUTE", "1.5"),
    ("IMPORTER_TOKEN_QUOTA", "1000"),
    ("IMPORTER_TOKEN_QUOTA", "1000/Fortnightly"),
    ("IMPORTER_TOKEN_QUOTA", "x/Daily"),
    ("IMPORTER_TOKEN_METRICS", "maybe"),
    ("IMPORTER_METRICS_NAMESPACE", "n" * 65),
    ("IMPORTER_SEMANTIC_CACHE_DEPLOYMENT", "-emb"),
    ("IMPORTER_CONTENT_SAFETY_ID", "https://safety.example.com/"),
    ("IMPORTER_CONTENT_SAFETY_ID", SAFETY + "/deployments/x"),
    ("IMPORTER_CONTENT_SAFETY_ID", SAFETY.replace("CognitiveServices", "Web")),
    ("IMPORTER_CONTENT_SAFETY_ID", SAFETY + "?a=b"),
    ("IMPORTER_CONTENT_SAFETY_ID", "not an id"),
    ("IMPORTER_APIM_LOGGER", "-logger"),
    ("IMPORTER_APIM_LOGGER", "a/b"),
    ("IMPORTER_LLM_LOGGING", "maybe"),
    ("IMPORTER_CIRCUIT_BREAKER", "2"),
    ("IMPORTER_POLICY_FRAGMENT", "_frag"),
    ("IMPORTER_ENABLE_APIM_IDENTITY", "sure"),
    ("IMPORTER_ADOPT", "y"),
    ("IMPORTER_OPT_IN", "enabled"),
    ("IMPORTER_OPENAPI", "latest"),
    ("IMPORTER_OPENAPI", ""),
    ("IMPORTER_OPENAPI_BASE_URL", "http://mirror.example.com/specs/"),
    ("IMPORTER_OPENAPI_BASE_URL", "http://127.0.0.2/specs/"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://mirror.example.com/specs"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://mirror.example.com"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://mirror.example.com/a b/"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://mirror.example.com/a\tb/"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://mirror.example.com/a'b/"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://mirror.example.com/a\"b/"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://mirror.example.com/<b>/"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://mirror.example.com/a&b/"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://mirror.example.com/?x=/"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://mirror.example.com/#x/"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://u:p@mirror.example.com/x/"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://localhost@evil.example.com/x/"),
    ("IMPORTER_OPENAPI_BASE_URL", "file:///etc/"),
    ("IMPORTER_OPENAPI_BASE_URL", "ftp://mirror.example.com/x/"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://mirror.example.com:99999/x/"),
    ("IMPORTER_OPENAPI_BASE_URL", "https://" + "a" * 500 + ".com/"),
    ("IMPORTER_OPENAPI_BASE_URL", ""),
]


@pytest.mark.parametrize(("name", "value"), BAD_SETTINGS)
def test_bad_setting_is_refused_naming_it(name: str, value: str) -> None:
    with pytest.raises(InvalidInput, match=f"setting {name}="):
        resolve({name: value})


# ---------------------------------------------------------------------------------------------
# Tags

TAG_CASES: list[tuple[dict[str, str], dict[str, str], str, object]] = [
    ({}, {"apim-importer-mode": "azure-ai"}, "mode", Mode.AZURE_AI),
    ({}, {"APIM-Importer-Mode": "AZURE-OPENAI-V1"}, "mode", Mode.AZURE_OPENAI_V1),
    ({}, {"apim-importer-base-path": "teams/x/{account}"}, "base_path", "teams/x/{account}"),
    ({}, {"apim-importer-products": "b,a"}, "products", ("a", "b")),
    ({}, {"apim-importer-tpm": "2000"}, "token_limit", TokenLimit(tokens_per_minute=2000)),
    ({"IMPORTER_TOKENS_PER_MINUTE": "10"}, {"apim-importer-tpm": "off"}, "token_limit", None),
    ({}, {"apim-importer-quota": "7/Weekly"}, "token_limit", TokenLimit(quota=7, quota_period="Weekly")),
    ({"IMPORTER_TOKEN_QUOTA": "7/Weekly"}, {"apim-importer-quota": "OFF"}, "token_limit", None),
    ({"IMPORTER_TOKEN_QUOTA": "7/Weekly"}, {"apim-importer-tpm": "5"}, "token_limit",
     TokenLimit(tokens_per_minute=5, quota=7, quota_period="Weekly")),
    ({}, {"apim-importer-metrics": "on"}, "token_metrics", TokenMetrics()),
    ({"IMPORTER_TOKEN_METRICS": "true"}, {"apim-importer-metrics": "off"}, "token_metrics", None),
    ({}, {"apim-importer-cache": "emb-1"}, "semantic_cache", SemanticCache("emb-1")),
    ({"IMPORTER_SEMANTIC_CACHE_DEPLOYMENT": "emb"}, {"apim-importer-cache": "off"}, "semantic_cache", None),
    ({"IMPORTER_CONTENT_SAFETY_ID": SAFETY}, {"apim-importer-safety": "off"}, "content_safety", None),
    ({"IMPORTER_CONTENT_SAFETY_ID": SAFETY}, {"apim-importer-safety": "on"}, "content_safety",
     ContentSafety(SAFETY)),
    ({}, {"apim-importer-circuit-breaker": "on"}, "circuit_breaker", True),
    ({"IMPORTER_CIRCUIT_BREAKER": "true"}, {"apim-importer-circuit-breaker": "off"}, "circuit_breaker",
     False),
    ({}, {"owner": "team-x", "cost-center": "<anything>"}, "mode", Mode.AZURE_OPENAI),  # not ours: ignored
    ({}, {"apim-importer-openapi": "official"}, "openapi", OpenApi.OFFICIAL),
    ({"IMPORTER_OPENAPI": "official"}, {"APIM-Importer-OpenAPI": "BUNDLED"}, "openapi", OpenApi.BUNDLED),
]


@pytest.mark.parametrize(("env", "tags", "field", "expected"), TAG_CASES)
def test_each_tag(env: dict[str, str], tags: dict[str, str], field: str, expected: object) -> None:
    assert getattr(resolve(env, tags), field) == expected


BAD_TAGS: list[tuple[str, str]] = [
    ("apim-importer", "yes"),
    ("apim-importer-mode", "openai"),
    ("apim-importer-base-path", "/x"),
    ("apim-importer-products", "ok,not ok"),
    ("apim-importer-tpm", "abc"),
    ("apim-importer-tpm", ""),
    ("apim-importer-quota", "10/Minutely"),
    ("apim-importer-metrics", "sometimes"),
    ("apim-importer-cache", "bad name"),
    ("apim-importer-safety", "maybe"),
    ("apim-importer-circuit-breaker", "2"),
    ("apim-importer-openapi", "latest"),
    ("apim-importer-openapi", "https://evil.example.com/"),
]


@pytest.mark.parametrize(("tag", "value"), BAD_TAGS)
def test_bad_tag_is_refused_naming_tag_and_account(tag: str, value: str) -> None:
    with pytest.raises(InvalidInput) as err:
        resolve({}, {tag: value})
    assert f"tag {tag}=" in str(err.value)
    assert f"on account {REF.name}" in str(err.value)


def test_error_message_reads_as_documented() -> None:
    with pytest.raises(InvalidInput) as err:
        resolve({}, {"apim-importer-tpm": "abc"})
    assert str(err.value) == ("tag apim-importer-tpm='abc' on account Contoso-AI: expected a positive "
                              "integer or 'off'")


def test_unknown_tag_of_our_prefix_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown tag 'apim-importer-tmp'.*docs/tags.md"):
        resolve({}, {"apim-importer-tmp": "100"})


def test_safety_tag_on_needs_the_resource_setting() -> None:
    with pytest.raises(InvalidInput, match="IMPORTER_CONTENT_SAFETY_ID"):
        resolve({}, {"apim-importer-safety": "on"})


def test_the_retired_endpoint_setting_stops_the_run_with_what_to_do() -> None:
    """IMPORTER_CONTENT_SAFETY_ENDPOINT is no longer read: set, it is an error naming its successor
    (silently ignoring it would turn content safety off)."""
    with pytest.raises(InvalidInput, match="IMPORTER_CONTENT_SAFETY_ENDPOINT.*IMPORTER_CONTENT_SAFETY_ID"):
        resolve({"IMPORTER_CONTENT_SAFETY_ENDPOINT": "https://contoso-safety.cognitiveservices.azure.com/"})
    assert resolve({"IMPORTER_CONTENT_SAFETY_ENDPOINT": " "}).content_safety is None


def test_content_safety_id_is_kept_in_its_canonical_form() -> None:
    lower = SAFETY.replace("resourceGroups", "resourcegroups")
    assert resolve({"IMPORTER_CONTENT_SAFETY_ID": lower}).content_safety == ContentSafety(SAFETY)


def test_same_tag_in_two_cases_with_different_values_is_refused() -> None:
    with pytest.raises(InvalidInput, match="twice"):
        resolve({}, {"apim-importer-mode": "azure-ai", "APIM-IMPORTER-MODE": "azure-openai"})


# ---------------------------------------------------------------------------------------------
# Opt-in / opt-out

OPT_CASES: list[tuple[str, dict[str, str], bool]] = [
    ("false", {}, True),
    ("false", {"apim-importer": "enabled"}, True),
    ("false", {"apim-importer": "disabled"}, False),
    ("false", {"APIM-IMPORTER": "Disabled"}, False),
    ("true", {}, False),
    ("true", {"apim-importer": "enabled"}, True),
    ("true", {"apim-importer": "disabled"}, False),
]


@pytest.mark.parametrize(("opt_in", "tags", "expected"), OPT_CASES)
def test_opt_in_and_out(opt_in: str, tags: dict[str, str], expected: bool) -> None:
    assert resolve({"IMPORTER_OPT_IN": opt_in}, tags).enabled is expected
    assert config.enabled(settings(IMPORTER_OPT_IN=opt_in), tags) is expected


@pytest.mark.parametrize("junk", [{"apim-importer-tpm": "garbage"}, {"apim-importer-typo": "1"}])
def test_disabled_account_tags_are_not_read(junk: dict[str, str]) -> None:
    options = resolve({}, {"apim-importer": "disabled", **junk})
    assert options.enabled is False


# ---------------------------------------------------------------------------------------------
# Overrides and precedence

OVERRIDE_CASES: list[tuple[dict[str, Any], str, object]] = [
    ({"mode": "azure-ai"}, "mode", Mode.AZURE_AI),
    ({"mode": Mode.AZURE_OPENAI_V1}, "mode", Mode.AZURE_OPENAI_V1),
    ({"basePath": "x/{account}/y"}, "base_path", "x/{account}/y"),
    ({"products": ["b", "a"]}, "products", ("a", "b")),
    ({"products": "b,a"}, "products", ("a", "b")),
    ({"products": None}, "products", ()),
    ({"tokensPerMinute": 5}, "token_limit", TokenLimit(tokens_per_minute=5)),
    ({"tokensPerMinute": "off"}, "token_limit", None),
    ({"tokenQuota": "10/Hourly"}, "token_limit", TokenLimit(quota=10, quota_period="Hourly")),
    ({"tokenMetrics": True}, "token_metrics", TokenMetrics()),
    ({"semanticCacheDeployment": "emb"}, "semantic_cache", SemanticCache("emb")),
    ({"semanticCacheDeployment": None}, "semantic_cache", None),
    ({"contentSafetyId": SAFETY}, "content_safety", ContentSafety(SAFETY)),
    ({"llmLogging": True}, "llm_logging", True),
    ({"circuitBreaker": True}, "circuit_breaker", True),
    ({"policyFragment": "frag"}, "policy_fragment", "frag"),
    ({"policyFragment": None}, "policy_fragment", None),
    ({"adopt": True}, "adopt", True),
    ({"enableApimIdentity": True}, "enable_apim_identity", True),
    ({"displayName": "Contoso AI — prod \"gateway\" <v1> & more"}, "display_name",
     "Contoso AI — prod \"gateway\" <v1> & more"),
    ({"openapi": "official"}, "openapi", OpenApi.OFFICIAL),
    ({"openapi": OpenApi.BUNDLED}, "openapi", OpenApi.BUNDLED),
]


@pytest.mark.parametrize(("overrides", "field", "expected"), OVERRIDE_CASES)
def test_each_override(overrides: dict[str, Any], field: str, expected: object) -> None:
    assert getattr(resolve({}, {}, overrides), field) == expected


BAD_OVERRIDES: list[tuple[str, object]] = [
    ("mode", "gpt"),
    ("mode", 3),
    ("basePath", "a b"),
    ("basePath", None),
    ("products", 5),
    ("products", ["ok", "<bad>"]),
    ("tokensPerMinute", True),
    ("tokensPerMinute", -1),
    ("tokensPerMinute", 2.5),
    ("tokenQuota", "many"),
    ("tokenMetrics", "yes"),
    ("semanticCacheDeployment", "a/b"),
    ("contentSafetyId", "ftp://x"),
    ("llmLogging", "on"),
    ("circuitBreaker", 1),
    ("policyFragment", "frag ment"),
    ("adopt", "true"),
    ("enableApimIdentity", None),
    ("displayName", ""),
    ("displayName", "tab\there"),
    ("displayName", "x" * 301),
    ("displayName", 7),
    ("openapi", "link"),
    ("openapi", True),
    ("openapi", None),
]


@pytest.mark.parametrize(("key", "value"), BAD_OVERRIDES)
def test_bad_override_is_refused_naming_it(key: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=f"option {key}="):
        resolve({}, {}, {key: value})


def test_unknown_override_key_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown option.*'tpm'"):
        resolve({}, {}, {"tpm": 5})


PRECEDENCE: list[tuple[str, str, str, str, object, str, object]] = [
    # field, setting, setting value, tag, tag value, override key, override value
    ("mode", "IMPORTER_MODE", "azure-ai", "apim-importer-mode", "azure-openai-v1", "mode", "azure-openai"),
    ("base_path", "IMPORTER_BASE_PATH", "s/{account}", "apim-importer-base-path", "t/{account}",
     "basePath", "o/{account}"),
    ("products", "IMPORTER_PRODUCTS", "s", "apim-importer-products", "t", "products", ["o"]),
    ("circuit_breaker", "IMPORTER_CIRCUIT_BREAKER", "false", "apim-importer-circuit-breaker", "on",
     "circuitBreaker", False),
    ("openapi", "IMPORTER_OPENAPI", "official", "apim-importer-openapi", "bundled", "openapi", "official"),
]
EXPECTED = {
    "mode": (Mode.AZURE_AI, Mode.AZURE_OPENAI_V1, Mode.AZURE_OPENAI),
    "base_path": ("s/{account}", "t/{account}", "o/{account}"),
    "products": (("s",), ("t",), ("o",)),
    "circuit_breaker": (False, True, False),
    "openapi": (OpenApi.OFFICIAL, OpenApi.BUNDLED, OpenApi.OFFICIAL),
}


@pytest.mark.parametrize(("field", "setting", "svalue", "tag", "tvalue", "key", "ovalue"), PRECEDENCE)
def test_precedence_setting_then_tag_then_override(field: str, setting: str, svalue: str, tag: str,
                                                   tvalue: str, key: str, ovalue: object) -> None:
    env = {setting: svalue}
    by_setting, by_tag, by_override = EXPECTED[field]
    assert getattr(resolve(env), field) == by_setting
    assert getattr(resolve(env, {tag: tvalue}), field) == by_tag
    assert getattr(resolve(env, {tag: tvalue}, {key: ovalue}), field) == by_override


def test_token_limit_parts_layer_independently() -> None:
    options = resolve({"IMPORTER_TOKENS_PER_MINUTE": "100", "IMPORTER_TOKEN_QUOTA": "1000/Daily"},
                      {"apim-importer-tpm": "200"}, {"tokenQuota": "off"})
    assert options.token_limit == TokenLimit(tokens_per_minute=200)


# ---------------------------------------------------------------------------------------------
# Injection: nothing with markup or expression characters gets through any source


@pytest.mark.parametrize("bad", INJECTIONS)
@pytest.mark.parametrize("tag", ["apim-importer-base-path", "apim-importer-products", "apim-importer-cache",
                                 "apim-importer-tpm", "apim-importer-quota", "apim-importer-mode"])
def test_injection_in_tags_is_refused(tag: str, bad: str) -> None:
    with pytest.raises(InvalidInput, match=f"tag {tag}="):
        resolve({}, {tag: bad})


@pytest.mark.parametrize("bad", INJECTIONS)
@pytest.mark.parametrize("key", ["basePath", "products", "semanticCacheDeployment", "policyFragment",
                                 "contentSafetyId", "tokenQuota"])
def test_injection_in_overrides_is_refused(key: str, bad: str) -> None:
    with pytest.raises(InvalidInput, match=f"option {key}="):
        resolve({}, {}, {key: bad})


@pytest.mark.parametrize("bad", INJECTIONS)
@pytest.mark.parametrize("name", ["IMPORTER_METRICS_NAMESPACE", "IMPORTER_POLICY_FRAGMENT",
                                  "IMPORTER_CONTENT_SAFETY_ID", "IMPORTER_PRODUCTS", "IMPORTER_APIM_LOGGER"])
def test_injection_in_settings_is_refused(name: str, bad: str) -> None:
    with pytest.raises(InvalidInput, match=f"setting {name}="):
        resolve({name: SAFETY[:-1] + bad if "SAFETY" in name else bad})


# ---------------------------------------------------------------------------------------------
# Base path


@pytest.mark.parametrize(("base", "expected"), [
    ("{account}", "contoso-ai"),
    ("ai/{account}", "ai/contoso-ai"),
    ("{account}-gw/v1", "contoso-ai-gw/v1"),
    ("shared", "shared"),
])
def test_resolve_base_path(base: str, expected: str) -> None:
    ref = AccountRef.parse(REF.id)
    assert config.resolve_base_path(Options(base_path=base), ref) == expected


def test_a_bad_base_url_is_refused_even_with_the_bundled_document() -> None:
    # Like every setting: checked before anything is written, whatever the accounts choose.
    with pytest.raises(InvalidInput, match="setting IMPORTER_OPENAPI_BASE_URL=.*ending in '/'"):
        resolve({"IMPORTER_OPENAPI_BASE_URL": "https://mirror.example.com/specs"})


def test_the_base_url_default_is_the_pinned_ai_gateway_folder() -> None:
    base = resolve().openapi_base_url
    assert base == ("https://raw.githubusercontent.com/Azure-Samples/AI-Gateway/"
                    "561d71992bd660af94efc76a8f2f21df0e6ac8e5/modules/apim/v3/specs/")
    assert check_openapi_base_url(base, "default") == base


@pytest.mark.parametrize("value", ["0/Daily", "-5/Weekly", "abc/Hourly", "99999999999999999999/Monthly"])
def test_an_invalid_quota_echoes_the_whole_value(value: str) -> None:
    with pytest.raises(InvalidInput) as err:
        resolve({}, {"apim-importer-quota": value})
    assert f"tag apim-importer-quota={value!r}" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Modes as a set: setting, tag and override each take a comma-separated list


@pytest.mark.parametrize(("env", "tags", "overrides", "expected"), [
    ({"IMPORTER_MODE": "azure-openai,azure-openai-v1"}, {}, {},
     (Mode.AZURE_OPENAI, Mode.AZURE_OPENAI_V1)),
    ({"IMPORTER_MODE": " azure-openai-v1 , Azure-OpenAI "}, {}, {},
     (Mode.AZURE_OPENAI, Mode.AZURE_OPENAI_V1)),  # canonical order, whatever the spelling
    ({}, {"apim-importer-mode": "azure-ai,azure-openai"}, {}, (Mode.AZURE_OPENAI, Mode.AZURE_AI)),
    ({"IMPORTER_MODE": "azure-openai,azure-ai"}, {"apim-importer-mode": "azure-openai-v1"}, {},
     (Mode.AZURE_OPENAI_V1,)),  # a tag replaces the set, it does not add to it
    ({}, {}, {"mode": "azure-openai-v1,azure-ai,azure-openai"}, tuple(Mode)),
    ({}, {}, {"mode": Mode.AZURE_AI}, (Mode.AZURE_AI,)),
])
def test_modes_are_a_set(env: dict[str, str], tags: dict[str, str], overrides: dict[str, Any],
                         expected: tuple[Mode, ...]) -> None:
    options = resolve(env, tags, overrides)
    assert options.modes == expected and options.mode is expected[0]


@pytest.mark.parametrize("value", ["azure-openai,", ",azure-openai", "azure-openai,azure-openai",
                                   "azure-openai;azure-ai", "azure-openai,gpt", ""])
def test_a_bad_mode_list_is_refused_naming_its_source(value: str) -> None:
    with pytest.raises(InvalidInput, match="apim-importer-mode"):
        resolve({}, {"apim-importer-mode": value or " "})
    with pytest.raises(InvalidInput, match="option mode"):
        resolve({}, {}, {"mode": value})


def test_an_empty_apim_importer_tag_is_refused_as_docs_tags_says() -> None:
    from importer.config import enabled
    from importer.settings import Settings

    with pytest.raises(InvalidInput, match="tag apim-importer='': expected 'enabled' or 'disabled'"):
        enabled(Settings.from_env({}), {"apim-importer": ""})
