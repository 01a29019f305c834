"""importer/settings.py SETTINGS and the Function App's app settings in infra/main.bicep match both ways.

The app settings are the `appSettings` variable of main.bicep (passed whole to modules/function-app.bicep),
read with tree-sitter: every entry's name must be a plain string literal.

Documented exceptions: settings that SETTINGS declares but that are deliberately empty or absent in Azure.
Platform extras: settings the Functions platform reads, not the importer's code; listed one by one.
"""

from __future__ import annotations

import json

import pytest

from importer.settings import SETTINGS
from tests.infra.bicep import INFRA, Expr, has_default, load

# Declared in SETTINGS, deliberately empty in Azure: it only points the code at the local ARM stand-in;
# empty means the public cloud with DefaultAzureCredential (the function's managed identity).
PRESENT_BUT_EMPTY = {"IMPORTER_ARM_ENDPOINT"}

# Declared in SETTINGS, deliberately NOT set in Azure: a connection string carries the account key.
# Storage is identity-based through AzureWebJobsStorage__accountName (which is set).
ABSENT_IN_AZURE = {"AzureWebJobsStorage"}

# Read by the platform (Functions host / Application Insights SDK), not by importer code.
PLATFORM_EXTRAS = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}

# Settings Flex Consumption rejects or ignores (runtime and deployment live in functionAppConfig).
FORBIDDEN_ON_FLEX = {
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "AzureWebJobsDashboard",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
}

# Settings whose Bicep value is derived rather than a parameter used as is.
DERIVED = {
    "IMPORTER_SCOPES": "watchScopes",  # join(scopeList, ','): trimmed, empties dropped
    # eventSubscriptionBase: the parameter, else apim-ai-importer-<environment name> (what the hook uses)
    "IMPORTER_EVENT_SUBSCRIPTION": "eventSubscriptionName",
}

SETTING_NAMES = {s.name for s in SETTINGS}
DEFAULTS = {s.name: s.default for s in SETTINGS}


def _app_settings() -> dict[str, object]:
    entries = load("main.bicep").var("appSettings").body
    assert isinstance(entries, list) and entries, "main.bicep: var appSettings must be a literal array"
    result: dict[str, object] = {}
    for entry in entries:
        assert isinstance(entry, dict) and set(entry) == {"name", "value"}, entry
        name = entry["name"]
        assert isinstance(name, str), f"app setting name must be a string literal, got {name!r}"
        assert name not in result, f"duplicate app setting {name}"
        result[name] = entry["value"]
    return result


APP_SETTINGS = _app_settings()


def _param_of(setting: str) -> str | None:
    """The main.bicep parameter an app setting is set from: `p` or `p ? 'true' : 'false'`."""
    if setting in DERIVED:
        return DERIVED[setting]
    value = APP_SETTINGS[setting]
    if not isinstance(value, Expr):
        return None
    if value.type == "identifier":
        return value.text
    if value.type == "ternary_expression":
        condition = value.field("condition")
        if (
            condition is not None
            and condition.type == "identifier"
            and _literal(value.field("consequence")) == "true"
            and _literal(value.field("alternative")) == "false"
        ):
            return (condition.text or b"").decode()
    return None


def _literal(node) -> object:
    from tests.infra.bicep import value

    return None if node is None else value(node)


def test_exceptions_are_declared_settings() -> None:
    assert PRESENT_BUT_EMPTY <= SETTING_NAMES
    assert ABSENT_IN_AZURE <= SETTING_NAMES
    assert not PLATFORM_EXTRAS & SETTING_NAMES


def test_every_setting_is_in_the_app_settings() -> None:
    missing = SETTING_NAMES - ABSENT_IN_AZURE - set(APP_SETTINGS)
    assert not missing, f"settings the code reads but Azure does not set: {sorted(missing)}"


def test_every_app_setting_is_a_setting_or_an_allowed_platform_extra() -> None:
    unknown = set(APP_SETTINGS) - SETTING_NAMES - PLATFORM_EXTRAS
    assert not unknown, f"app settings nothing reads: {sorted(unknown)}"
    assert PLATFORM_EXTRAS <= set(APP_SETTINGS)


def test_documented_exceptions() -> None:
    for name in PRESENT_BUT_EMPTY:
        assert APP_SETTINGS[name] == "", f"{name} must be the empty string literal in Azure"
    for name in ABSENT_IN_AZURE:
        assert name not in APP_SETTINGS, f"{name} must not be set in Azure (identity-based storage)"
    assert isinstance(APP_SETTINGS["AzureWebJobsStorage__accountName"], Expr)
    assert APP_SETTINGS["AzureWebJobsStorage__accountName"].text == "storage.outputs.name"


def test_platform_settings() -> None:
    assert not FORBIDDEN_ON_FLEX & set(APP_SETTINGS)
    assert APP_SETTINGS["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"
    conn = APP_SETTINGS["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    assert isinstance(conn, Expr) and conn.text == "monitoring.outputs.appInsightsConnectionString"


def test_scopes_setting_is_the_normalised_list() -> None:
    value = APP_SETTINGS["IMPORTER_SCOPES"]
    assert isinstance(value, Expr) and value.text == "join(scopeList, ',')"
    main = load("main.bicep")
    assert main.var("scopeListRaw").body.text == "[for s in split(watchScopes, ','): trim(s)]"


def test_app_settings_reach_the_site() -> None:
    params = load("main.bicep").module("functionApp").body["params"]
    assert isinstance(params["appSettings"], Expr) and params["appSettings"].text == "appSettings"


@pytest.mark.parametrize(
    "setting",
    sorted(SETTING_NAMES - ABSENT_IN_AZURE - PRESENT_BUT_EMPTY - {"AzureWebJobsStorage__accountName"}),
)
def test_setting_comes_from_a_parameter_with_the_same_default(setting: str) -> None:
    main = load("main.bicep")
    param_name = _param_of(setting)
    assert param_name, f"{setting}: value should be a parameter (or p ? 'true' : 'false')"
    param = main.param(param_name)
    default = DEFAULTS[setting]
    assert f"-> {setting}" in _description(param), f"{param_name}: @description should name {setting}"
    if setting in ("IMPORTER_APIM_ID", "IMPORTER_SCOPES"):
        assert not has_default(param), f"{param_name} is required: azd asks for it"
        return
    assert has_default(param), f"{param_name} needs a default (= settings.py's {default!r})"
    bicep_default = param.body
    if isinstance(bicep_default, bool):
        bicep_default = "true" if bicep_default else "false"
    assert bicep_default == default, f"{param_name} default {param.body!r} != settings.py {default!r}"


def _description(param) -> str:
    prev = param.node.prev_named_sibling
    return (prev.text or b"").decode() if prev is not None and prev.type == "decorators" else ""


def test_parameters_file_covers_every_parameter() -> None:
    main = load("main.bicep")
    params = {p.name for p in main.of_kind("param")}
    doc = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(doc) == params


@pytest.mark.parametrize(
    "setting",
    sorted(SETTING_NAMES - ABSENT_IN_AZURE - PRESENT_BUT_EMPTY - {"AzureWebJobsStorage__accountName"}),
)
def test_azd_variable_has_the_setting_name(setting: str) -> None:
    """`azd env set IMPORTER_MODE azure-ai` sets the app setting IMPORTER_MODE: one vocabulary."""
    doc = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    param_name = _param_of(setting)
    assert doc[param_name]["value"] == "${" + setting + "}"


def test_event_subscription_setting_is_the_name_the_hook_uses() -> None:
    """The app learns the event subscriptions' name from the same value the postdeploy hook reads
    (output DEPLOY_EVENT_SUBSCRIPTION_NAME), so `doctor` looks for what the deployment made."""
    main = load("main.bicep")
    value = APP_SETTINGS["IMPORTER_EVENT_SUBSCRIPTION"]
    assert isinstance(value, Expr) and value.text == "eventSubscriptionBase"
    base = main.var("eventSubscriptionBase").body.text
    assert base.startswith("!empty(eventSubscriptionName) ? eventSubscriptionName : 'apim-ai-importer-")
    assert main._find("output", "DEPLOY_EVENT_SUBSCRIPTION_NAME").body.text == "eventSubscriptionBase"
