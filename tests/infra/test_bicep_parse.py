"""Every .bicep file parses with tree-sitter-bicep without ERROR or MISSING nodes, and the deployment keeps
to its rules: no keys or secrets, no registry modules, Flex Consumption with identity-based storage."""

from __future__ import annotations

import json

import pytest

from tests.infra.bicep import INFRA, REPO, Expr, bicep_files, load, parse, syntax_errors

EXPECTED_FILES = {
    "main.bicep",
    "events.bicep",
    "modules/apim-identity.bicep",
    "modules/apim-logger.bicep",
    "modules/event-subscriptions.bicep",
    "modules/events-topic.bicep",
    "modules/function-app.bicep",
    "modules/monitoring.bicep",
    "modules/rbac-apim.bicep",
    "modules/rbac-app.bicep",
    "modules/rbac-content-safety.bicep",
    "modules/rbac-deadletter.bicep",
    "modules/rbac-outcome-topic.bicep",
    "modules/rbac-watch-rg.bicep",
    "modules/rbac-watch-sub.bicep",
    "modules/storage.bicep",
}


def _rel(path) -> str:
    return path.relative_to(INFRA).as_posix()


def test_expected_bicep_files_exist() -> None:
    assert {_rel(p) for p in bicep_files()} == EXPECTED_FILES


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_bicep_parses_without_errors(path) -> None:
    root = parse(path)
    assert root.type == "infrastructure"
    assert syntax_errors(root) == []


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_no_keys_or_secrets(path) -> None:
    bicep = load(_rel(path))
    list_calls = [c for c in bicep.calls() if c.lower().startswith("list")]
    assert list_calls == [], f"list* calls read keys or secrets: {list_calls}"
    text = path.read_text()
    for needle in ("AccountKey=", "SharedAccessSignature", "@secure()", "InstrumentationKey="):
        assert needle not in text


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_modules_are_local_files(path) -> None:
    """No registry (br:/ts:) modules: nothing to download at build time, and checkov sees every resource."""
    bicep = load(_rel(path))
    for module in bicep.of_kind("module"):
        assert not module.type.startswith(("br:", "br/", "ts:", "ts/")), module.type
        assert (path.parent / module.type).is_file(), f"{module.name}: {module.type} not found"


def test_main_is_subscription_scope_and_events_too() -> None:
    for name in ("main.bicep", "events.bicep", "modules/rbac-watch-sub.bicep"):
        text = (INFRA / name).read_text()
        assert "targetScope = 'subscription'" in text, name


def test_function_app_is_flex_consumption_python_311_with_identity() -> None:
    app = load("modules/function-app.bicep")
    plan = app.resource("plan").body
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True
    site = app.resource("site").body
    assert site["kind"] == "functionapp,linux"
    assert site["identity"] == {"type": "SystemAssigned"}
    props = site["properties"]
    assert props["httpsOnly"] is True
    config = props["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "SystemAssignedIdentity"}
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    assert isinstance(props["siteConfig"]["appSettings"], Expr)
    assert props["siteConfig"]["appSettings"].text == "appSettings"
    for policy in ("ftpPolicy", "scmPolicy"):
        assert app.resource(policy).body["properties"] == {"allow": False}


def test_storage_is_identity_only_and_has_what_the_code_uses() -> None:
    storage = load("modules/storage.bicep")
    props = storage.resource("storage").body["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    queues = storage.var("queueNames").body
    assert queues == ["reconcile-requests", "reconcile-requests-poison"]
    containers = storage.var("blobContainerNames").body
    assert [c for c in containers if isinstance(c, str)] == ["locks"]
    assert [c.text for c in containers if isinstance(c, Expr)] == [
        "deploymentContainerName",
        "deadLetterContainerName",
    ]
    assert storage.param("deadLetterContainerName").body == "eventgrid-deadletter"
    assert storage.var("tableNames").body == ["runs"]


def test_monitoring_has_local_auth_off() -> None:
    monitoring = load("modules/monitoring.bicep")
    insights = monitoring.resource("appInsights").body["properties"]
    assert insights["DisableLocalAuth"] is True
    assert isinstance(insights["WorkspaceResourceId"], Expr)
    workspace = monitoring.resource("logAnalytics").body["properties"]
    assert workspace["features"]["disableLocalAuth"] is True


def test_optional_apim_changes_are_off_by_default() -> None:
    main = load("main.bicep")
    assert main.param("apimIdentityViaBicep").body is False
    assert main.param("apimAppInsightsLogger").body is False
    assert main.module("apimIdentity").condition.text == "apimIdentityViaBicep"
    assert main.module("apimLogger").condition.text == "apimAppInsightsLogger"
    logger = load("modules/apim-logger.bicep").resource("logger").body["properties"]
    assert logger["loggerType"] == "applicationInsights"
    assert logger["credentials"]["identityClientId"] == "SystemAssigned"
    assert "instrumentationKey" not in logger["credentials"]
    diagnostic = load("modules/apim-logger.bicep").resource("diagnostic")
    assert diagnostic.body["name"] == "applicationinsights"
    assert diagnostic.body["properties"]["metrics"] is True


def test_azure_yaml_points_at_the_function_and_hooks() -> None:
    import yaml
    doc = yaml.safe_load((REPO / "azure.yaml").read_text())
    assert doc["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    service = doc["services"]["importer"]
    assert service == {"project": ".", "language": "python", "host": "function"}
    # azd finds the app by this tag
    site_tags = load("main.bicep").module("functionApp").body["params"]["siteTags"]
    assert site_tags == {"azd-service-name": "importer"}
    for hook in ("preprovision", "postdeploy", "predown"):
        posix = doc["hooks"][hook]["posix"]["run"]
        script = REPO / posix
        assert script.is_file() and script.stat().st_mode & 0o111, f"{posix} missing or not executable"
        assert "events.py" in doc["hooks"][hook]["windows"]["run"]


def test_parameters_file_is_valid_json_with_azd_references() -> None:
    doc = json.loads((INFRA / "main.parameters.json").read_text())
    for name, entry in doc["parameters"].items():
        assert set(entry) == {"value"}, name
        assert entry["value"].startswith("${") and entry["value"].endswith("}"), name
        assert "=" not in entry["value"], f"{name}: defaults live in main.bicep, not in the parameters file"
