"""`doctor` against the stand-in: a healthy world passes clean; break one thing at a time and exactly
that finding fails; doctor leaves every object as it found it (ETags unchanged, the throwaway gone)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from azure.mgmt.apimanagement import models as apim_models

from armsim.server import Sim
from armsim.state import CALLER_PRINCIPAL_ID
from devhost import seed
from importer import doctor, openapi
from importer.azure.arm import AzureArm
from importer.azure.clients import Clients
from importer.cli import main
from importer.model import Mode
from importer.settings import Settings
from tests.fixtures.world import SUB, World

RBAC_ADMIN = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
EVENT_SUBSCRIPTION = "apim-ai-importer-test"
FRAGMENT = "org-ai-policy"
TOPIC = (f"/subscriptions/{SUB}/resourceGroups/{seed.APIM_GROUP}/providers/Microsoft.EventGrid/systemTopics/"
         "evgt-apim-ai-importer-test")


@dataclass
class Healthy:
    world: World
    env: dict[str, str]

    @property
    def sim(self) -> Sim:
        return self.world.sim

    def settings(self, **changes: str) -> Settings:
        return Settings.from_env({**self.env, **changes})

    def run(self, *, probe_import: bool = False, **changes: str) -> doctor.Report:
        settings = self.settings(**changes)
        target = doctor.Target.build(settings, AzureArm(Clients(settings)))
        return doctor.run(target, probe_import=probe_import)

    def etags(self) -> dict[str, str]:
        with self.sim.state.lock:
            return {e.id: e.etag for e in self.sim.state.store.all()}


LOGGER = "appinsights"
SAFETY = seed.account_id(SUB, seed.AI_GROUP, "contoso-safety")


@pytest.fixture
def healthy(gateway_world: World) -> Iterator[Healthy]:
    """Everything doctor checks is in place: the caller's roles, APIM (identity on, gateway up), the
    product, fragment and cache the settings name, the official documents, the event subscription."""
    w, clients, sim = gateway_world, gateway_world.clients, gateway_world.sim
    apim = w.apim_client()
    seed.grant_importer_roles(clients, w.apim, f"/subscriptions/{SUB}")
    apim.policy_fragment.begin_create_or_update(
        w.rg, w.svc, FRAGMENT, apim_models.PolicyFragmentContract(
            value='<fragment><set-header name="x-org" exists-action="override"><value>1</value>'
                  "</set-header></fragment>", format="xml")).result()
    apim.cache.create_or_update(w.rg, w.svc, "default", apim_models.CacheContract(
        connection_string="contoso-redis.redis.cache.windows.net:6380,password=x,ssl=True",
        use_from_location="default"))
    key = {"instrumentationKey": "00000000-0000-0000-0000-00000000000a"}
    apim.logger.create_or_update(w.rg, w.svc, LOGGER, apim_models.LoggerContract(
        logger_type="applicationInsights", credentials=key))
    seed.create_account(clients, name="contoso-safety", kind="ContentSafety")
    seed.create_system_topic(clients, name=TOPIC.rsplit("/", 1)[-1])
    seed.create_event_subscription(clients, TOPIC, EVENT_SUBSCRIPTION)
    seed.create_event_subscription(clients, TOPIC, EVENT_SUBSCRIPTION + "-apim", subject_prefix=w.apim + "/")
    sim.add_file("AIFoundryOpenAI.json", openapi.document_text(Mode.AZURE_OPENAI))
    env = {"IMPORTER_ARM_ENDPOINT": sim.url, "IMPORTER_APIM_ID": w.apim,
           "IMPORTER_SCOPES": f"/subscriptions/{SUB},/subscriptions/{SUB}/resourceGroups/{seed.AI_GROUP}",
           "IMPORTER_PRODUCTS": "ai-consumers", "IMPORTER_POLICY_FRAGMENT": FRAGMENT,
           "IMPORTER_SEMANTIC_CACHE_DEPLOYMENT": "text-embedding-3-small", "IMPORTER_OPENAPI": "official",
           "IMPORTER_OPENAPI_BASE_URL": f"{sim.url}/_armsim/files/",
           "IMPORTER_EVENT_SUBSCRIPTION": EVENT_SUBSCRIPTION, "IMPORTER_APIM_LOGGER": LOGGER,
           "IMPORTER_CONTENT_SAFETY_ID": SAFETY}
    sim.log.clear()
    yield Healthy(w, env)


def _by_status(report: doctor.Report, status: str) -> set[str]:
    return {f.id for f in report.findings if f.status == status}


def test_a_healthy_world_passes_every_check(healthy: Healthy) -> None:
    report = healthy.run()
    assert report.status == doctor.PASS and report.exit_code == 0, report.to_json()
    assert _by_status(report, doctor.PASS) == {c.id for c in doctor.CHECKS}
    assert not _by_status(report, doctor.SKIP)
    scopes = [f.target for f in report.findings if f.id == "scopes.list"]
    assert len(scopes) == 2
    for f in report.findings:
        assert f.checked and f.evidence and f.fix == "", f


def test_doctor_writes_nothing_and_the_probe_leaves_nothing_behind(healthy: Healthy) -> None:
    before = healthy.etags()
    report = healthy.run(probe_import=True)
    assert report.exit_code == 0, report.to_json()
    assert {"probe.import", "probe.description", "probe.display-name", "probe.service-url",
            "probe.cleanup"} <= _by_status(report, doctor.PASS)
    assert healthy.etags() == before  # every object as it was; the throwaway API is gone
    writes = healthy.sim.log.select(kind="write")
    assert writes and all("/apis/apim-importer-doctor-" in e.path for e in writes), [e.path for e in writes]
    assert {e.method for e in writes} == {"PUT", "DELETE"}
    healthy.sim.log.clear()
    healthy.run()
    assert healthy.sim.log.writes() == 0  # without the probe, not one write


def _break_identity(h: Healthy) -> None:
    h.world.apim_client().api_management_service.begin_update(
        h.world.rg, h.world.svc, apim_models.ApiManagementServiceUpdateParameters(
            identity=apim_models.ApiManagementServiceIdentity(type="None"))).result()


def _delete_product(h: Healthy) -> None:
    h.world.apim_client().product.delete(h.world.rg, h.world.svc, "ai-consumers", if_match="*")


def _delete_fragment(h: Healthy) -> None:
    h.world.apim_client().policy_fragment.delete(h.world.rg, h.world.svc, FRAGMENT, if_match="*")


def _delete_cache(h: Healthy) -> None:
    h.world.apim_client().cache.delete(h.world.rg, h.world.svc, "default", if_match="*")


def _revoke_rbac_admin(h: Healthy) -> None:
    auth = h.world.clients.authorization(SUB)
    for ra in auth.role_assignments.list_for_scope(f"/subscriptions/{SUB}", filter="atScope()"):
        if ra.role_definition_id.endswith(RBAC_ADMIN):
            auth.role_assignments.delete(ra.scope, ra.name)


def _contributor_instead_of_apim_role(h: Healthy) -> None:
    """Contributor on the subscription allows every APIM write but no role assignment (NotActions)."""
    auth = h.world.clients.authorization(SUB)
    for ra in list(auth.role_assignments.list_for_scope(f"/subscriptions/{SUB}", filter="atScope()")):
        if ra.role_definition_id.endswith(RBAC_ADMIN):
            auth.role_assignments.delete(ra.scope, ra.name)
    seed.assign_role(h.world.clients, f"/subscriptions/{SUB}", CONTRIBUTOR, CALLER_PRINCIPAL_ID)


def _revoke_apim_role(h: Healthy) -> None:
    auth = h.world.clients.authorization(SUB)
    for ra in list(auth.role_assignments.list_for_scope(h.world.apim, filter="atScope()")):
        if ra.scope.lower() == h.world.apim.lower():  # not the subscription's, inherited
            auth.role_assignments.delete(ra.scope, ra.name)


def _gateway_down(h: Healthy) -> None:
    assert h.sim.gateway is not None
    h.sim.gateway.down = True


def _delete_event_subscription(h: Healthy) -> None:
    """Over ARM (the stand-in's DELETE route), through the management pipeline as seed's PUT goes:
    no installed SDK models Event Grid. 200: it was there and is gone (204 would mean it never was)."""
    from azure.core.rest import HttpRequest

    request = HttpRequest("DELETE", f"{TOPIC}/eventSubscriptions/{EVENT_SUBSCRIPTION}",
                          params={"api-version": seed.EVENTGRID_API_VERSION})
    response = h.world.clients.apim(SUB)._send_request(request)
    assert response.status_code == 200, response.text()


def _untouched(h: Healthy) -> None:
    pass


# (name, what breaks, settings changed, the finding ids that fail; everything else passes or skips)
BREAKS: list[tuple[str, Callable[[Healthy], None], dict[str, str], set[str]]] = [
    ("identity off", _break_identity, {}, {"apim.identity"}),
    ("missing product", _delete_product, {}, {"apim.products"}),
    ("missing fragment", _delete_fragment, {}, {"apim.fragment"}),
    ("missing cache", _delete_cache, {}, {"apim.cache"}),
    ("no role-assignment permission", _revoke_rbac_admin, {}, {"access.accounts"}),
    ("Contributor cannot assign roles", _contributor_instead_of_apim_role, {}, {"access.accounts"}),
    ("no APIM role", _revoke_apim_role, {}, {"access.apim"}),
    ("gateway down", _gateway_down, {}, {"apim.gateway"}),
    ("scope that doesn't exist", _untouched,
     {"IMPORTER_SCOPES": f"/subscriptions/{SUB}/resourceGroups/rg-gone"}, {"scopes.list"}),
    ("event subscription gone", _delete_event_subscription, {}, {"events.subscription"}),
    ("official documents unreachable", _untouched,
     {"IMPORTER_OPENAPI_BASE_URL": "http://127.0.0.1:9/specs/"}, {"openapi.base-url"}),
    ("APIM that doesn't exist", _untouched,
     {"IMPORTER_APIM_ID": seed.apim_id(name="nowhere-apim")}, {"apim.exists"}),
    ("a setting that doesn't parse", _untouched, {"IMPORTER_TOKEN_QUOTA": "lots"}, {"settings.values"}),
    ("a bad tag", lambda h: seed.create_account(h.world.clients, name="badly-tagged",
                                                tags={"apim-importer-tpm": "many"}),
     {}, {"accounts.options"}),
]


@pytest.mark.parametrize(("name", "breaks", "changes", "failing"), BREAKS, ids=[b[0] for b in BREAKS])
def test_each_broken_thing_is_its_own_finding(healthy: Healthy, name: str, breaks: Callable[[Healthy], None],
                                              changes: dict[str, str], failing: set[str]) -> None:
    breaks(healthy)
    report = healthy.run(**changes)
    assert report.exit_code == doctor.EXIT_FAIL
    assert _by_status(report, doctor.FAIL) == failing, report.to_json()
    assert not _by_status(report, doctor.WARN)
    for f in report.findings:
        if f.status == doctor.FAIL:
            assert f.fix and f.evidence, f


def test_a_skipped_check_names_what_blocked_it(healthy: Healthy) -> None:
    report = healthy.run(IMPORTER_APIM_ID="not-an-id")
    assert _by_status(report, doctor.FAIL) == {"settings.apim"}
    skipped = {f.id: f.evidence for f in report.findings if f.status == doctor.SKIP}
    assert set(skipped) == {"apim.exists", "apim.identity", "apim.gateway", "access.apim", "apim.products",
                            "apim.fragment", "apim.cache", "apim.logger", "events.apim"}
    assert skipped["apim.identity"] == "not checked: apim.exists did not pass"


def test_unused_features_are_skipped_not_failed(healthy: Healthy) -> None:
    report = healthy.run(IMPORTER_PRODUCTS="", IMPORTER_POLICY_FRAGMENT="",
                         IMPORTER_SEMANTIC_CACHE_DEPLOYMENT="", IMPORTER_OPENAPI="bundled",
                         IMPORTER_EVENT_SUBSCRIPTION="")
    assert report.exit_code == 0, report.to_json()
    assert _by_status(report, doctor.SKIP) == {"apim.products", "apim.fragment", "apim.cache",
                                               "openapi.base-url", "events.subscription", "events.apim"}


def test_warnings_only_exit_2(healthy: Healthy) -> None:
    _break_identity(healthy)
    report = healthy.run(IMPORTER_ENABLE_APIM_IDENTITY="true")
    assert _by_status(report, doctor.WARN) == {"apim.identity"} and not _by_status(report, doctor.FAIL)
    assert report.exit_code == doctor.EXIT_WARN


def test_tags_name_products_too(healthy: Healthy) -> None:
    seed.create_account(healthy.world.clients, name="tagged", tags={"apim-importer-products": "partners"})
    report = healthy.run()
    [products] = [f for f in report.findings if f.id == "apim.products"]
    assert products.status == doctor.FAIL and "partners (named by account tagged)" in products.evidence


def test_probe_reports_an_instance_that_keeps_the_documents_metadata(healthy: Healthy) -> None:
    # What azure-cli #20812 reports of real APIM: the import keeps the document's description. The
    # importer writes its properties again after an import, so the assumptions still hold; the
    # evidence says what the import kept.
    healthy.sim.set_options(import_metadata="document")
    before = healthy.etags()
    report = healthy.run(probe_import=True)
    status = {f.id: f.status for f in report.findings}
    assert status["probe.import"] == status["probe.description"] == doctor.PASS
    assert status["probe.display-name"] == status["probe.service-url"] == doctor.PASS
    assert status["probe.cleanup"] == doctor.PASS
    [imported] = [f for f in report.findings if f.id == "probe.import"]
    assert "the document's description, the document's display name, the document's serviceUrl" \
        in imported.evidence
    assert healthy.etags() == before


def test_probe_deletes_the_throwaway_even_when_the_read_back_fails(healthy: Healthy) -> None:
    before = healthy.etags()
    # The first read of the throwaway API after its import fails (a 400 is not retried).
    healthy.sim.faults.script("GET", r"/apis/apim-importer-doctor-[0-9a-f]{12}$",
                              [{"status": 400, "code": "Broken", "message": "injected"}])
    report = healthy.run(probe_import=True)
    status = {f.id: f.status for f in report.findings}
    assert status["probe.import"] == doctor.FAIL and status["probe.cleanup"] == doctor.PASS
    assert healthy.etags() == before
    assert not [i for i in healthy.sim.ids("Microsoft.ApiManagement/service/apis") if "doctor" in i]


def test_cli_json_and_exit_codes(healthy: Healthy, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in healthy.env.items():
        monkeypatch.setenv(key, value)
    assert main(["doctor", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "pass" and out["exitCode"] == 0
    assert set(out["findings"][0]) >= {"id", "status", "checked", "evidence", "fix"}
    assert main(["doctor", "--scopes", f"/subscriptions/{SUB}/resourceGroups/rg-gone"]) == 1
    text = capsys.readouterr().out
    assert "✘ scopes.list" in text and "fix: correct IMPORTER_SCOPES" in text
    _break_identity(healthy)
    monkeypatch.setenv("IMPORTER_ENABLE_APIM_IDENTITY", "true")
    assert main(["doctor", "--json"]) == 2


def test_http_doctor(healthy: Healthy, monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.functions as func

    from devhost.host import user_function
    from importer import service

    for key, value in healthy.env.items():
        monkeypatch.setenv(key, value)
    service.reset_service()
    try:
        def get() -> tuple[int, Any]:
            req = func.HttpRequest(method="GET", url="http://localhost/api/doctor", body=b"")
            resp = user_function("http_doctor")(req)
            return resp.status_code, json.loads(resp.get_body())

        status, body = get()
        assert status == 200 and body["status"] == "pass", body
        _gateway_down(healthy)
        status, body = get()
        failed = [f["id"] for f in body["findings"] if f["status"] == "fail"]
        assert status == 503 and failed == ["apim.gateway"]
        monkeypatch.delenv("IMPORTER_APIM_ID")
        service.reset_service()
        status, body = get()  # the service can't even be built: the report still says why
        assert status == 503 and any(f["id"] == "settings.apim" and f["status"] == "fail"
                                     for f in body["findings"])
    finally:
        service.reset_service()


@pytest.mark.parametrize(("grants", "action", "allowed"), [
    ([(["*"], [])], "Microsoft.Authorization/roleAssignments/write", True),
    ([(["*"], ["Microsoft.Authorization/*/Write"])], "Microsoft.Authorization/roleAssignments/write", False),
    ([(["*/read"], [])], "Microsoft.CognitiveServices/accounts/read", True),
    ([(["*/read"], [])], "Microsoft.CognitiveServices/accounts/write", False),
    ([(["Microsoft.ApiManagement/service/*"], [])], "Microsoft.ApiManagement/service/apis/write", True),
    ([(["Microsoft.ApiManagement/service/*"], [])], "Microsoft.ApiManagementX/service/apis/write", False),
    ([(["Microsoft.CognitiveServices/*/read"], [])], "Microsoft.CognitiveServices/accounts/deployments/read",
     True),
    # NotActions subtract from their own grant only: another grant still allows it.
    ([(["*"], ["Microsoft.Authorization/*/Write"]), (["Microsoft.Authorization/roleAssignments/write"], [])],
     "Microsoft.Authorization/roleAssignments/write", True),
    ([(["microsoft.authorization/roleassignments/WRITE"], [])],
     "Microsoft.Authorization/roleAssignments/write", True),
])
def test_action_wildcards(grants: list[tuple[list[str], list[str]]], action: str, allowed: bool) -> None:
    from importer.azure.preflight import Grant

    assert doctor.allows([Grant(tuple(a), tuple(n)) for a, n in grants], action) is allowed


def test_is_ours_matches_the_templates_names() -> None:
    assert doctor.is_ours("apim-ai-importer-prod", "apim-ai-importer-prod")
    assert doctor.is_ours("apim-ai-importer-prod-abcdefghijklm", "apim-ai-importer-prod")
    assert not doctor.is_ours("apim-ai-importer-prod2", "apim-ai-importer-prod")
    assert not doctor.is_ours("apim-ai-importer-prod-x", "apim-ai-importer-prod")


def test_probe_says_how_to_delete_a_throwaway_it_could_not(healthy: Healthy) -> None:
    healthy.sim.faults.script("DELETE", r"/apis/apim-importer-doctor-[0-9a-f]{12}$",
                              [{"status": 400, "code": "Broken", "message": "injected"}])
    report = healthy.run(probe_import=True)
    [cleanup] = [f for f in report.findings if f.id == "probe.cleanup"]
    assert cleanup.status == doctor.FAIL and cleanup.fix.startswith("delete it: az apim api delete --api-id "
                                                                    "apim-importer-doctor-")
    left = [i for i in healthy.sim.ids("Microsoft.ApiManagement/service/apis") if "doctor" in i]
    assert len(left) == 1 and left[0].endswith(cleanup.fix.split("--api-id ")[1].split()[0])


def test_probe_without_write_access_leaves_nothing_and_says_why(healthy: Healthy) -> None:
    healthy.sim.faults.script("PUT", r"/apis/apim-importer-doctor-[0-9a-f]{12}$",
                              [{"status": 403, "code": "AuthorizationFailed", "message": "no"}])
    healthy.sim.faults.script("DELETE", r"/apis/apim-importer-doctor-[0-9a-f]{12}$",
                              [{"status": 403, "code": "AuthorizationFailed", "message": "no"}])
    report = healthy.run(probe_import=True)
    by_id = {f.id: f for f in report.findings}
    assert by_id["probe.import"].status == doctor.FAIL and "forbidden" in by_id["probe.import"].evidence
    assert by_id["probe.cleanup"].status == doctor.PASS
    assert "was never created" in by_id["probe.cleanup"].evidence
    assert "probe.description" not in by_id


@pytest.mark.parametrize(("finding", "change", "evidence"), [
    ("apim.logger", {"IMPORTER_APIM_LOGGER": "no-such-logger"},
     "no-such-logger (named by setting IMPORTER_APIM_LOGGER)"),
    ("content-safety", {"IMPORTER_CONTENT_SAFETY_ID": SAFETY.replace("contoso-safety", "gone-safety")},
     "gone-safety (404)"),
])
def test_a_missing_logger_or_content_safety_resource_is_its_own_finding(healthy: Healthy, finding: str,
                                                                       change: dict[str, str],
                                                                       evidence: str) -> None:
    report = healthy.run(**change)
    failed = {f.id: f for f in report.findings if f.status == doctor.FAIL}
    assert set(failed) == {finding} and evidence in failed[finding].evidence and failed[finding].fix
    assert report.exit_code == 1


def test_the_apim_event_subscription_is_checked(healthy: Healthy) -> None:
    assert {f.id: f.status for f in healthy.run().findings}["events.apim"] == doctor.PASS
    clients = healthy.world.clients
    seed.create_event_subscription(clients, TOPIC, EVENT_SUBSCRIPTION + "-apim", subject_prefix="/other")
    [found] = [f for f in healthy.run().findings if f.id == "events.apim"]
    assert found.status == doctor.FAIL and "'/other'" in found.evidence and found.fix


def test_an_apim_event_subscription_without_diagnostics_is_a_warning(healthy: Healthy) -> None:
    """The operation names infra deploys (tests/infra checks the Bicep list) all pass; the list an
    older deployment holds (no API diagnostics) is named, with the fix."""
    from tests.infra.bicep import load

    deployed = load("modules/event-subscriptions.bicep").var("apimOperationNames").body
    clients, name = healthy.world.clients, EVENT_SUBSCRIPTION + "-apim"
    prefix = healthy.world.apim + "/"
    seed.create_event_subscription(clients, TOPIC, name, subject_prefix=prefix, operations=deployed)
    assert {f.id: f.status for f in healthy.run().findings}["events.apim"] == doctor.PASS
    older = [op for op in deployed if "/diagnostics/" not in op]
    seed.create_event_subscription(clients, TOPIC, name, subject_prefix=prefix, operations=older)
    [found] = [f for f in healthy.run().findings if f.id == "events.apim"]
    assert found.status == doctor.WARN and found.fix
    assert "microsoft.apimanagement/service/apis/diagnostics/write" in found.evidence
    assert "microsoft.apimanagement/service/apis/diagnostics/delete" in found.evidence
    assert "policies" not in found.evidence


@pytest.mark.parametrize(("env", "needs_diagnostics"), [
    ({}, False),
    ({"IMPORTER_LLM_LOGGING": "true"}, True),
    ({"IMPORTER_TOKEN_METRICS": "true", "IMPORTER_APIM_LOGGER": "appi"}, True),
    ({"IMPORTER_TOKEN_METRICS": "true"}, False),  # no logger named: no diagnostic of ours
])
def test_apim_access_asks_for_diagnostics_write_only_when_the_options_write_diagnostics(
        env: dict[str, str], needs_diagnostics: bool) -> None:
    """A least-privilege role without apis/diagnostics/write passes unless a diagnostic is to be written."""
    from importer.azure.preflight import Grant
    from importer.config import resolve_options
    from importer.model import ApimRef

    grant = Grant(doctor.APIM_ACTIONS + doctor.APIM_KEY_ACTIONS, ())

    class Permissions:
        def permissions(self, scope: str) -> list[Grant]:
            return [grant]

    settings = Settings.from_env(env)
    target = doctor.Target(settings, pre=Permissions(), options=resolve_options(settings, {}, None),
                           apim=ApimRef(SUB, "rg-apim", "contoso-apim"))
    [check] = [c for c in doctor.CHECKS if c.id == "access.apim"]
    [finding] = list(check.run(target, check))
    if needs_diagnostics:
        assert finding.status == doctor.FAIL and doctor.APIM_DIAGNOSTIC_ACTION in finding.evidence
    else:
        assert finding.status == doctor.PASS, finding


def test_get_doctor_reports_a_bad_storage_setting_instead_of_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    """GET /api/doctor with a storage account name the state factory refuses (SettingsError, not an
    ImporterError): the report, not a 500 from an escaped exception."""
    from importer import service

    monkeypatch.setenv("AzureWebJobsStorage__accountName", "BAD!")
    monkeypatch.setenv("IMPORTER_APIM_ID", f"/subscriptions/{SUB}/resourceGroups/rg-apim/providers/"
                       "Microsoft.ApiManagement/service/contoso-apim")
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    service.reset_service()
    try:
        with pytest.raises(ValueError):
            service.get_service()  # what used to escape http_doctor
        status, report = service.http_doctor()
    finally:
        service.reset_service()
    assert status == 503 and report["status"] == doctor.FAIL and report["findings"]


def test_a_scope_event_subscription_without_role_assignment_operations_is_a_warning(healthy: Healthy) -> None:
    """The operation names infra deploys on a scope's subscription pass; a filter from before role
    assignments were watched is named, with the fix."""
    from tests.infra.bicep import load

    deployed = load("modules/event-subscriptions.bicep").var("operationNames").body
    clients = healthy.world.clients
    seed.create_event_subscription(clients, TOPIC, EVENT_SUBSCRIPTION, operations=deployed)
    assert {f.id: f.status for f in healthy.run().findings}["events.subscription"] == doctor.PASS
    older = [op for op in deployed if "roleAssignments" not in op]
    seed.create_event_subscription(clients, TOPIC, EVENT_SUBSCRIPTION, operations=older)
    [found] = [f for f in healthy.run().findings if f.id == "events.subscription"]
    assert found.status == doctor.WARN and found.fix
    assert "microsoft.authorization/roleassignments/write" in found.evidence
    assert "deployments" not in found.evidence
