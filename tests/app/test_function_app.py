"""The function app end to end: events → queue (Azurite) → worker → APIM (stand-in), timer, HTTP."""

from __future__ import annotations

import json
import threading

import pytest

from devhost import seed
from devhost.host import Out
from importer.identity import api_id
from importer.model import AccountRef
from tests.app.conftest import Host
from tests.fixtures.world import AOAI, FOUNDRY, SUB


def _api_exists(host: Host, ref: AccountRef) -> bool:
    return host.world.sim.resource(f"{host.world.apim}/apis/{api_id(ref)}") is not None


def test_deployment_event_onboards_the_account_and_a_duplicate_writes_nothing(host: Host) -> None:
    w = host.world
    w.sim.clear_events()
    seed.create_deployment(w.clients, AOAI, "o3-mini", model="o3-mini", version="2025-01-31")
    events = w.sim.events()
    assert [e["data"]["operationName"] for e in events] == [
        "Microsoft.CognitiveServices/accounts/deployments/write"]
    w.sim.log.clear()

    text = host.deliver(events[0])
    assert text is not None and json.loads(text)["account"].lower() == AOAI.lower()
    assert w.writes() == 0  # the Event Grid function never calls ARM
    host.pump()
    assert _api_exists(host, AccountRef.parse(AOAI))
    last = host.state.history.last_for(AOAI)
    assert last.outcome == "applied" and last.trigger == "event" and last.writes > 0

    w.sim.log.clear()
    host.deliver(events[0])
    host.pump()
    assert w.writes() == 0
    assert host.state.history.last_for(AOAI).outcome == "noop"
    assert host.raised == []


def test_cloudevent_delivery_takes_the_same_path(host: Host) -> None:
    w = host.world
    w.sim.clear_events()
    w.clients.cognitive(SUB).deployments.begin_delete("rg-ai", "contoso-foundry", "Phi-4").result()
    cloud = w.sim.cloud_events()
    assert cloud and cloud[-1]["type"] == "Microsoft.Resources.ResourceDeleteSuccess"
    assert host.deliver(cloud[-1], cloud=True) is not None
    host.pump()
    assert _api_exists(host, AccountRef.parse(FOUNDRY))


BAD_EVENTS = [
    {"id": "1", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "subject": "x", "data": "nope"},
    {"id": "2", "eventType": "Microsoft.Storage.BlobCreated", "subject": "/x", "data": {}},
    {"id": "3", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "subject": "",
     "data": {"operationName": "Microsoft.CognitiveServices/accounts/write", "status": "Succeeded",
              "resourceUri": "/subscriptions/../resourceGroups/x/providers/"
                             "Microsoft.CognitiveServices/accounts/a"}},
    {"id": "4", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "subject": "",
     "data": {"operationName": "Microsoft.CognitiveServices/accounts/write", "status": "Succeeded",
              "resourceUri": "/subscriptions/99999999-0000-0000-0000-000000000000/resourceGroups/x/"
                             "providers/Microsoft.CognitiveServices/accounts/elsewhere"}},
    {"id": "5", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "subject": "",
     "data": {"operationName": "Microsoft.CognitiveServices/accounts/write", "status": "Failed",
              "resourceUri": AOAI}},
    {"id": "6", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "subject": "",
     "data": {"operationName": "Microsoft.CognitiveServices/accounts/write", "status": "Succeeded",
              "resourceUri": AOAI + "/deployments/x\"/><policies>"}},
]


@pytest.mark.parametrize("event", BAD_EVENTS, ids=[e["id"] for e in BAD_EVENTS])
def test_bad_events_are_dropped_without_raising_or_writing(host: Host, event: dict) -> None:
    host.world.sim.log.clear()
    assert host.deliver(event) is None
    assert host.queue.count() == 0
    assert host.world.sim.log.count() == 0


def test_timer_repairs_drift_offboards_orphans_and_leaves_foreign_apis(host: Host) -> None:
    from azure.mgmt.apimanagement import models

    w = host.world
    assert host.timer() == 2
    host.pump()
    aoai, foundry = AccountRef.parse(AOAI), AccountRef.parse(FOUNDRY)
    assert _api_exists(host, aoai) and _api_exists(host, foundry)

    client = w.apim_client()
    client.api.begin_create_or_update(w.rg, w.svc, "payments", models.ApiCreateOrUpdateParameter(
        display_name="Payments", path="payments", protocols=["https"], format="openapi+json",
        value=json.dumps({"openapi": "3.0.1", "info": {"title": "p", "version": "1"}, "paths": {}}))).result()
    foreign = w.sim.resource(f"{w.apim}/apis/payments")
    # Drift in both accounts, then the second account disappears entirely.
    for ref in (aoai, foundry):
        client.api_policy.delete(w.rg, w.svc, api_id(ref), "policy", if_match="*")
    seed.create_account(w.clients, name="contoso-extra", kind="OpenAI")
    w.clients.cognitive(SUB).accounts.begin_delete("rg-ai", "contoso-foundry").result()

    assert host.timer() == 3  # aoai, extra (new) and foundry (orphaned owner)
    host.pump()
    assert host.raised == []
    assert _api_exists(host, aoai)
    assert not _api_exists(host, foundry)
    assert _api_exists(host, AccountRef.parse(seed.account_id(SUB, "rg-ai", "contoso-extra")))
    assert w.sim.resource(f"{w.apim}/apis/{api_id(aoai)}/policies/policy") is not None
    assert w.sim.resource(f"{w.apim}/apis/payments") == foreign
    outcomes = {r.account.rsplit("/", 1)[-1]: r.outcome for r in host.state.history.list(limit=3)}
    assert outcomes == {"contoso-aoai": "applied", "contoso-foundry": "offboarded",
                        "contoso-extra": "applied"}


def test_eight_workers_forty_requests_five_accounts_converge_like_one_pass(host: Host) -> None:
    from importer.state.ports import ReconcileRequest

    w = host.world
    names = ["contoso-aoai", "contoso-foundry", "acct-3", "acct-4", "acct-5"]
    for name in names[2:]:
        seed.create_account(w.clients, name=name, kind="OpenAI")
        seed.create_deployment(w.clients, seed.account_id(SUB, "rg-ai", name), "gpt-4o")
    ids = [seed.account_id(SUB, "rg-ai", n) for n in names]
    host.queue.send_many([ReconcileRequest.new(ids[i % 5], "event", "storm") for i in range(40)])
    host.pump(workers=8)
    # Lock contention surfaces as retries (LockBusy → the host re-delivers), never as 409/412 errors.
    assert all("409" not in r and "412" not in r for r in host.raised), host.raised
    assert host.queue.count(poison=True) == 0
    apis = [rid for rid in w.sim.ids("Microsoft.ApiManagement/service/apis")]
    assert sorted(a.rsplit("/", 1)[-1] for a in apis) == sorted(api_id(AccountRef.parse(i)) for i in ids)
    roles = w.sim.ids("Microsoft.Authorization/roleAssignments")
    assert len(roles) == 5
    # Same state as one sequential pass: nothing left to do for any account.
    from importer.service import get_service

    rec = get_service().reconciler
    for i in ids:
        assert rec.reconcile(AccountRef.parse(i), dry_run=True).plan.empty


def test_a_persistently_failing_account_is_poisoned_after_the_configured_tries(host: Host) -> None:
    w = host.world
    from importer.state.ports import ReconcileRequest

    w.sim.faults.script("GET", r"accounts/contoso-foundry$", [503] * 100)
    host.queue.send(ReconcileRequest.new(FOUNDRY, "event", "doomed"))
    host.queue.send(ReconcileRequest.new(AOAI, "event", "fine"))
    host.pump()
    poisoned = host.queue.poison_messages()
    assert [p.request.account for p in poisoned if p.request] == [FOUNDRY]
    failed = [r for r in host.state.history.list(account=FOUNDRY, limit=20)]
    assert len(failed) == 5 and all(r.outcome == "failed" and r.error_kind == "transient" for r in failed)
    assert host.state.history.last_for(AOAI).outcome == "applied"


def test_http_import_plan_and_apply(host: Host) -> None:
    status, body = host.http("http_imports", method="POST",
                             body=json.dumps({"account": AOAI, "dryRun": True}).encode())
    assert status == 200 and body["outcome"] == "planned" and body["writes"] == 0
    assert {c["kind"] for c in body["changes"]} >= {"api", "backend", "policy", "role_assignment"}
    status, body = host.http("http_imports", method="POST",
                             body=json.dumps({"account": AOAI, "tokensPerMinute": 5000}).encode())
    assert status == 200 and body["outcome"] == "applied" and body["writes"] >= 4
    run_id = body["runId"]
    status, one = host.http("http_run", route_params={"run_id": run_id})
    assert status == 200 and one["run_id"] == run_id and one["outcome"] == "applied"
    status, many = host.http("http_runs", params={"account": AOAI})
    assert status == 200 and [r["run_id"] for r in many["runs"]][0] == run_id
    assert host.http("http_health")[0] == 200
    # The openapi option goes through the same validation as the tag and the CLI flag.
    status, body = host.http("http_imports", method="POST", body=json.dumps(
        {"account": AOAI, "dryRun": True, "tokensPerMinute": 5000, "openapi": "bundled"}).encode())
    assert status == 200 and body["outcome"] == "noop"
    status, body = host.http("http_imports", method="POST", body=json.dumps(
        {"account": AOAI, "openapi": "yaml"}).encode())
    assert status == 400 and "openapi" in body["error"] and body["writes"] == 0


BAD_BODIES = [
    (b"{not json", "not valid JSON"),
    (b"[]", "JSON object"),
    (json.dumps({"account": AOAI, "dryRun": "yes"}).encode(), "dryRun"),
    (json.dumps({"account": AOAI, "surprise": 1}).encode(), "unknown field"),
    (json.dumps({"account": AOAI, "tokensPerMinute": True}).encode(), "tokensPerMinute"),
    (json.dumps({"dryRun": True}).encode(), "account"),
    (json.dumps({"account": "/subscriptions/99999999-0000-0000-0000-000000000000/resourceGroups/x/"
                            "providers/Microsoft.CognitiveServices/accounts/far"}).encode(), "outside"),
    (json.dumps({"account": AOAI + "/../../x"}).encode(), "account"),
    (json.dumps({"account": AOAI, "basePath": "a<b"}).encode(), "base"),
    (b"{" + b" " * 20000 + b"}", "limit"),
    (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    (b'{"account": "x", "tokensPerMinute": ' + b"9" * 5000 + b"}", "not valid JSON"),
    (json.dumps({"account": AOAI.replace("/rg-ai/", "/./")}).encode(), "invalid resource group '.'"),
    (json.dumps({"account": AOAI.replace("/rg-ai/", "/../")}).encode(), "invalid resource group '..'"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES, ids=[m for _, m in BAD_BODIES])
def test_http_bad_input_is_400_and_writes_nothing(host: Host, body: bytes, message: str) -> None:
    host.world.sim.log.clear()
    status, payload = host.http("http_imports", method="POST", body=body)
    assert status == 400, payload
    text = json.dumps(payload)
    assert message.lower() in text.lower()
    assert host.world.writes() == 0


def test_http_unknown_account_is_404(host: Host) -> None:
    status, _ = host.http("http_imports", method="POST", body=json.dumps(
        {"account": seed.account_id(SUB, "rg-ai", "no-such-account")}).encode())
    assert status == 404
    assert host.world.writes() == 0


def test_http_lock_held_and_no_wait_is_409(host: Host) -> None:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with host.state.locks.hold(AccountRef.parse(AOAI).key):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        status, body = host.http("http_imports", method="POST",
                                 body=json.dumps({"account": AOAI, "wait": False}).encode())
    finally:
        release.set()
        t.join()
    assert status == 409
    assert host.world.writes() == 0


def test_http_run_lookup_validates_ids(host: Host) -> None:
    assert host.http("http_run", route_params={"run_id": "../etc"})[0] == 400
    assert host.http("http_run", route_params={"run_id": "deadbeef0000"})[0] == 404


def _request_enqueued(account: str, seconds_before: str, lead_s: float) -> str:
    """A queue message for ``account`` enqueued ``lead_s`` seconds before ``seconds_before``."""
    import uuid
    from datetime import timedelta

    from importer.state.ports import ReconcileRequest, parse_time

    at = (parse_time(seconds_before, "t") - timedelta(seconds=lead_s)).isoformat()
    return ReconcileRequest(account=account, trigger="event", reason="test", request_id=str(uuid.uuid4()),
                            enqueued_at=at).to_json()


@pytest.mark.parametrize(("lead_s", "coalesced"), [(3.0, True), (1.0, False)],
                         ids=["run-started-3s-after-enqueue", "within-the-2s-margin"])
def test_a_request_already_served_by_a_later_run_is_coalesced(host: Host, lead_s: float,
                                                              coalesced: bool) -> None:
    import azure.functions as func

    from devhost.host import user_function
    from importer.state.ports import ReconcileRequest

    w = host.world
    host.queue.send(ReconcileRequest.from_json(_request_enqueued(AOAI, "2000-01-01T00:00:00+00:00", 0)))
    host.pump()
    first = host.state.history.last_for(AOAI)
    assert first.outcome == "applied"
    w.sim.log.clear()
    body = _request_enqueued(AOAI, first.started_at, lead_s)
    user_function("reconcile_worker")(func.QueueMessage(id="m", body=body.encode()), Out())
    if coalesced:  # a storm's duplicates: no ARM request, no new run
        assert len(w.sim.log) == 0
        assert host.state.history.last_for(AOAI).run_id == first.run_id
    else:
        assert w.sim.log.reads() > 0 and w.writes() == 0
        assert host.state.history.last_for(AOAI).run_id != first.run_id


def test_a_request_after_a_failed_run_is_not_coalesced(host: Host) -> None:
    import azure.functions as func

    from devhost.host import user_function
    from importer.run import Run

    now = "2030-01-01T00:00:10+00:00"
    host.state.history.record(Run(run_id="f" * 12, account=AOAI, trigger="event", started_at=now,
                                  finished_at=now, duration_ms=1, outcome="failed",
                                  error="boom", error_kind="transient"))
    host.world.sim.log.clear()
    body = _request_enqueued(AOAI, now, 60)
    user_function("reconcile_worker")(func.QueueMessage(id="m", body=body.encode()), Out())
    assert host.world.sim.log.reads() > 0 and host.world.writes() > 0  # it ran, and onboarded


def test_http_import_with_no_scope_configured_refuses_every_account(host: Host,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from importer import service

    monkeypatch.setattr(service.get_service().reconciler, "scopes", ())
    status, payload = host.http("http_imports", method="POST", body=json.dumps({"account": AOAI}).encode())
    assert status == 400 and "no scope is configured" in payload["error"]["message"]
    assert host.world.writes() == 0


def test_http_import_that_ends_in_a_conflict_is_409(host: Host) -> None:
    from azure.mgmt.apimanagement import models

    w = host.world
    foreign = models.ApiCreateOrUpdateParameter(display_name="payments", path="contoso-aoai/openai",
                                                protocols=["https"])
    w.apim_client().api.begin_create_or_update(w.rg, w.svc, "payments-openai", foreign).result()
    before = w.writes()
    status, payload = host.http("http_imports", method="POST", body=json.dumps({"account": AOAI}).encode())
    assert status == 409 and payload["outcome"] == "conflict"
    assert "payments-openai" in payload["error"]["message"]
    assert w.writes() == before


@pytest.mark.parametrize(("body", "reason"), [
    (b"\xff\xfe not utf-8", "not UTF-8"),
    (b"{not json", "Expecting property name"),
    (json.dumps({"account": "/subscriptions/x/../y"}).encode(), "missing fields"),
])
def test_an_unreadable_queue_message_is_poisoned_at_once_with_its_reason(host: Host, body: bytes,
                                                                          reason: str) -> None:
    import azure.functions as func

    from devhost.host import user_function

    poison = Out()
    user_function("reconcile_worker")(func.QueueMessage(id="m", body=body), poison)
    assert poison.value is not None  # no raise: the host deletes it, no five retries
    host.queue.reject(poison.value)
    [entry] = host.queue.poison_messages()
    assert entry.request is None and entry.error.startswith("rejected by the worker: ")
    assert reason.lower() in entry.error.lower()
    assert host.world.writes() == 0


def test_account_events_still_flow_when_the_service_cannot_be_built(host: Host,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from importer import service

    def broken() -> service.Service:
        raise ValueError("AzureWebJobsStorage is not a usable storage connection string")

    monkeypatch.setattr(service, "get_service", broken)
    event = {"id": "e1", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "subject": "",
             "data": {"operationName": "Microsoft.CognitiveServices/accounts/deployments/write",
                      "status": "Succeeded", "resourceUri": AOAI + "/deployments/gpt-4o"}}
    text = host.deliver(event)
    assert text is not None and json.loads(text)["account"].lower() == AOAI.lower()
    # A hand edit of an importer-owned APIM object needs the owned-object index: dropped, no raise.
    edit = {"id": "e2", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "subject": "",
            "data": {"operationName": "Microsoft.ApiManagement/service/apis/write", "status": "Succeeded",
                     "resourceUri": host.world.apim + "/apis/" + api_id(AccountRef.parse(AOAI))}}
    assert host.deliver(edit) is None
