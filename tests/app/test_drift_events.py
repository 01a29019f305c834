"""Hand edits of the importer's own objects, repaired through the function app's own triggers.

A person (``seed.OPERATOR_ID``) edits or deletes an object the importer owns; the stand-in records the
ARM event, stamped with the caller's object id; ``on_resource_event`` turns it into one reconcile
request (the owned-object index names the account: no ARM read), and ``reconcile_worker`` repairs it.
The importer's own writes (the repair included) raise no request: no loops.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from devhost import seed
from devhost.queues import RequestQueue
from devhost.queues.memory import MemoryQueue
from importer import service
from importer.azure.clients import LOCAL_PRINCIPAL_ID
from importer.identity import api_id, backend_id, probe_subscription_id
from importer.model import AccountRef
from importer.run import Trigger
from importer.settings import Settings
from importer.state.factory import memory_state
from tests.app.conftest import Host, hosted
from tests.fixtures.world import AOAI, FOUNDRY, SUB, World

PRODUCT = "ai-consumers"
OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def _hosted(world: World, state: Any, queue: RequestQueue, monkeypatch: pytest.MonkeyPatch,
            **extra: str) -> AbstractContextManager[Host]:
    """The app linking to the product, probes off (``extra`` on top)."""
    return hosted(world, state, queue, monkeypatch, IMPORTER_PRODUCTS=PRODUCT, IMPORTER_PROBE="off", **extra)


@pytest.fixture
def imported(world: World, storage_state: Any, storage_queue: RequestQueue,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    """Both accounts imported (linked to the product) by the timer and the worker, on Azurite."""
    with _hosted(world, storage_state, storage_queue, monkeypatch) as host:
        world.sim.clear_events()
        assert host.timer() == 2
        host.pump()
        assert host.raised == []
        yield host


def deliver_all(host: Host) -> list[dict[str, Any]]:
    """Deliver every event the stand-in recorded since the last call; the requests they raised."""
    events = host.world.sim.events()
    host.world.sim.clear_events()
    texts = [host.deliver(e) for e in events]
    return [json.loads(t) for t in texts if t is not None]


def _role_at(world: World, account: str) -> str:
    ids = [i for i in world.sim.ids("Microsoft.Authorization/roleAssignments")
           if i.lower().startswith(account.lower() + "/")]
    assert len(ids) == 1, ids
    return ids[0]


def _edit_policy(w: World, ref: AccountRef) -> None:
    from azure.mgmt.apimanagement.models import PolicyContract

    xml = "<policies><inbound><base /></inbound><backend><base /></backend><outbound><base /></outbound>" \
          "<on-error><base /></on-error></policies>"
    w.apim_client().api_policy.create_or_update(w.rg, w.svc, api_id(ref), "policy",
                                                PolicyContract(value=xml, format="xml"), if_match="*")


def _edit_api(w: World, ref: AccountRef) -> None:
    from azure.mgmt.apimanagement.models import ApiUpdateContract

    w.apim_client().api.update(w.rg, w.svc, api_id(ref), if_match="*",
                               parameters=ApiUpdateContract(subscription_required=False))


def _delete_backend(w: World, ref: AccountRef) -> None:
    w.apim_client().backend.delete(w.rg, w.svc, backend_id(ref), if_match="*")


def _delete_link(w: World, ref: AccountRef) -> None:
    w.apim_client().product_api.delete(w.rg, w.svc, PRODUCT, api_id(ref))


def _delete_role(w: World, ref: AccountRef) -> None:
    w.clients.authorization(SUB).role_assignments.delete_by_id(_role_at(w, ref.id))


def _delete_api(w: World, ref: AccountRef) -> None:
    w.apim_client().api.begin_delete(w.rg, w.svc, api_id(ref), if_match="*").result()


EDITS: dict[str, Callable[[World, AccountRef], None]] = {
    "policy edited": _edit_policy, "api edited": _edit_api, "api deleted": _delete_api,
    "backend deleted": _delete_backend, "product link deleted": _delete_link,
    "role assignment deleted": _delete_role,
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_a_hand_edit_raises_exactly_one_request_and_the_worker_repairs_it(imported: Host, edit: str) -> None:
    host, w = imported, imported.world
    ref = AccountRef.parse(AOAI)
    rec = service.get_service().reconciler
    assert rec.reconcile(ref, dry_run=True).plan.empty
    writes = w.writes()

    EDITS[edit](w, ref)
    assert not rec.reconcile(ref, dry_run=True).plan.empty  # it really drifted
    requests = deliver_all(host)
    assert [(r["account"].lower(), r["trigger"]) for r in requests] == [(AOAI.lower(), "event")]
    assert "changed by hand" in requests[0]["reason"]
    before = w.writes()
    assert before == writes + 1  # the edit itself; the event function made no ARM call at all
    reads = w.reads()
    host.pump()
    assert host.raised == []
    assert w.writes() > before  # the worker repaired it ...
    assert w.reads() > reads
    assert host.state.history.last_for(AOAI).outcome == "applied"
    assert rec.reconcile(ref, dry_run=True).plan.empty  # ... completely
    assert rec.reconcile(AccountRef.parse(FOUNDRY), dry_run=True).plan.empty
    assert deliver_all(host) == []  # and the repair's own events raise nothing


@pytest.mark.parametrize("edit", ["turned off", "deleted"])
def test_a_hand_edit_of_an_api_diagnostic_is_repaired_by_event(
        world: World, storage_state: Any, storage_queue: RequestQueue, monkeypatch: pytest.MonkeyPatch,
        edit: str) -> None:
    """LLM message logging on (IMPORTER_LLM_LOGGING): a person turns it off on the API's azuremonitor
    diagnostic, or deletes the diagnostic; the event names the API, so the index finds the account."""
    from azure.mgmt.apimanagement.models import DiagnosticContract

    with _hosted(world, storage_state, storage_queue, monkeypatch, IMPORTER_LLM_LOGGING="true") as host:
        world.sim.clear_events()
        assert host.timer() == 2
        host.pump()
        ref, rec = AccountRef.parse(AOAI), service.get_service().reconciler
        assert rec.reconcile(ref, dry_run=True).plan.empty
        diagnostics = world.apim_client().api_diagnostic
        if edit == "deleted":
            diagnostics.delete(world.rg, world.svc, api_id(ref), "azuremonitor", if_match="*")
        else:
            diagnostics.create_or_update(world.rg, world.svc, api_id(ref), "azuremonitor", DiagnosticContract(
                logger_id=f"{world.apim}/loggers/azuremonitor"), if_match="*")
        drift = rec.reconcile(ref, dry_run=True).plan
        assert [(c.kind, c.id) for c in drift.changes] == [("diagnostic", f"{api_id(ref)}/azuremonitor")]
        requests = deliver_all(host)
        assert [(r["account"].lower(), r["trigger"]) for r in requests] == [(AOAI.lower(), "event")]
        reason = requests[0]["reason"]  # the diagnostic is the API's: its key is the API's
        assert "changed by hand" in reason and "/apis/diagnostics/" in reason
        host.pump()
        assert host.raised == [] and rec.reconcile(ref, dry_run=True).plan.empty
        assert deliver_all(host) == []  # the repair's own events raise nothing


def test_an_edit_of_the_probe_key_subscription_raises_one_request(imported: Host,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The key's subscription is made by the prober on first use; a hand edit (suspended) raises one
    request, and the worker re-activates it on the API it was scoped to, in the run it records. The
    request says so in a field, not in its text, and is never coalesced into a run that did not."""
    from azure.mgmt.apimanagement.models import SubscriptionUpdateParameters

    from importer.prober import Prober

    host, w = imported, imported.world
    ref = AccountRef.parse(AOAI)
    rec = service.get_service().reconciler
    prober = Prober(rec.arm, rec.apim, level="routing", local=True)
    prober.key(ref)  # the key is made on first use (by the importer: no request)
    assert deliver_all(host) == []
    sid = probe_subscription_id(ref)
    w.apim_client().subscription.update(w.rg, w.svc, sid, if_match="*",
                                        parameters=SubscriptionUpdateParameters(state="suspended"))
    requests = deliver_all(host)
    assert [(r["account"].lower(), r["edited"]) for r in requests] == [(AOAI.lower(), "subscription")]
    # A good run of the account after the request was enqueued would coalesce any other request.
    monkeypatch.setattr(service, "COALESCE_MARGIN_S", -3600.0)
    assert rec.reconcile(ref, trigger=Trigger.HTTP).outcome == "noop"
    before = w.writes()
    host.pump()
    assert host.raised == []
    stored = w.sim.resource(f"{w.apim}/subscriptions/{sid}") or {}
    assert stored["properties"]["state"] == "active" and w.writes() == before + 1  # the worker's repair
    last = host.state.history.last_for(AOAI)
    assert (last.trigger, last.outcome, last.writes) == ("event", "applied", 1)  # recorded with its run
    assert stored["properties"]["scope"].endswith(f"/apis/{api_id(ref)}")
    _key, remade = prober.key(ref)
    assert not remade  # nothing left for the next use to fix
    assert deliver_all(host) == []  # the repair is the importer's own write: no new request


def test_the_importers_own_writes_raise_no_request_over_three_rounds(imported: Host) -> None:
    host, w = imported, imported.world
    for ref in (AccountRef.parse(AOAI), AccountRef.parse(FOUNDRY)):
        _edit_policy(w, ref)
        _delete_backend(w, ref)
    rounds = []
    for _ in range(3):
        events = w.sim.events()
        by_operator = sum(e["data"]["claims"][OID] == seed.OPERATOR_ID for e in events)
        requests = deliver_all(host)
        before = w.writes()
        host.pump()
        rounds.append((len(events) - by_operator, by_operator, len(requests), w.writes() - before))
    assert host.raised == []
    # Round 1: the onboarding's own events (10: role, backend, API, policy, link for each account),
    # and the 4 hand edits → one request each; the repairs write.
    # Rounds 2 and 3: only the importer's own events → no request, no write: the loop is closed.
    assert rounds[0][:3] == (10, 4, 4) and rounds[0][3] == 4
    assert rounds[1] == (4, 0, 0, 0)
    assert rounds[2] == (0, 0, 0, 0)


def test_the_importers_object_id_comes_from_the_setting_when_set(imported: Host) -> None:
    """IMPORTER_PRINCIPAL_ID wins over the token. Set to the operator's id, the operator's edit is
    taken as ours (no request) and the onboarding's writes (the token's id) as someone else's."""
    host, w = imported, imported.world
    svc = service.get_service()
    assert svc.own_ids == {LOCAL_PRINCIPAL_ID}  # from the token's oid claim
    other = Settings.from_env({**dict(svc.settings.raw), "IMPORTER_PRINCIPAL_ID": seed.OPERATOR_ID.upper()})
    service.install(service.Service(other, svc.reconciler, svc.state))
    assert service.get_service().own_ids == {seed.OPERATOR_ID}
    _delete_backend(w, AccountRef.parse(AOAI))
    requests = deliver_all(host)
    assert len(requests) == 10 and {r["account"].lower() for r in requests} == {AOAI.lower(), FOUNDRY.lower()}
    assert not any("backends/delete" in r["reason"] for r in requests)


def test_foreign_objects_raise_no_request(imported: Host) -> None:
    from azure.mgmt.apimanagement import models
    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

    host, w = imported, imported.world
    client = w.apim_client()
    client.api.begin_create_or_update(w.rg, w.svc, "payments", models.ApiCreateOrUpdateParameter(
        display_name="Payments", path="payments", protocols=["https"], format="openapi+json",
        value=json.dumps({"openapi": "3.0.1", "info": {"title": "p", "version": "1"}, "paths": {}}))).result()
    client.api_policy.create_or_update(w.rg, w.svc, "payments", "policy", models.PolicyContract(
        value="<policies><inbound><base /></inbound></policies>", format="xml"))
    client.backend.create_or_update(w.rg, w.svc, "payments-backend", models.BackendContract(
        url="https://payments.contoso.com", protocol="http"))
    client.product_api.create_or_update(w.rg, w.svc, PRODUCT, "payments")
    # Named like ours (the id scheme, a made-up hash) but never made by the importer.
    client.backend.create_or_update(w.rg, w.svc, "ai-contoso-aoai-00000000", models.BackendContract(
        url="https://elsewhere.contoso.com", protocol="http"))
    client.subscription.create_or_update(w.rg, w.svc, "payments-key", models.SubscriptionCreateParameters(
        scope="/apis/payments", display_name="payments"))
    role = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/" \
           "a97b65f3-24c7-4388-baec-2e87135dc908"
    w.clients.authorization(SUB).role_assignments.create(AOAI, "6f1d2c3b-0000-4000-8000-000000000001",
                                                         RoleAssignmentCreateParameters(
                                                             role_definition_id=role,
                                                             principal_id="11111111-1111-1111-1111-111111111111",
                                                             principal_type="User"))
    client.backend.delete(w.rg, w.svc, "payments-backend", if_match="*")
    events = w.sim.events()
    kinds = sorted({e["data"]["operationName"] for e in events})
    assert "Microsoft.Authorization/roleAssignments/write" in kinds
    assert "Microsoft.ApiManagement/service/backends/delete" in kinds
    assert deliver_all(host) == []


def test_a_storm_of_1000_events_on_owned_objects_coalesces(world: World,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    state = memory_state()
    with _hosted(world, state, MemoryQueue(), monkeypatch) as host:
        assert host.timer() == 2
        host.pump()
        w = world
        w.sim.clear_events()
        for ref in (AccountRef.parse(AOAI), AccountRef.parse(FOUNDRY)):
            _edit_policy(w, ref)
            _delete_backend(w, ref)
            _delete_role(w, ref)
        distinct = w.sim.events()
        assert len(distinct) == 6
        storm = [distinct[i % len(distinct)] for i in range(1000)]  # at least once, many times over
        delivered = [host.deliver(e) for e in storm]
        assert sum(t is not None for t in delivered) == 1000
        time.sleep(2.2)  # the queue worker picks them up later than they were enqueued
        writes, runs_before = w.writes(), len(state.history.list(limit=500))
        host.pump(workers=4, max_rounds=2000)
        assert host.raised == []
        runs = state.history.list(limit=2000)[: len(state.history.list(limit=2000)) - runs_before]
        assert 2 <= len(runs) <= 2 * 4  # one run per account (at most one per worker racing it)
        assert w.writes() - writes == 6  # each edit repaired once
        assert host.queue.count() == 0
        rec = service.get_service().reconciler
        assert rec.reconcile(AccountRef.parse(AOAI), dry_run=True).plan.empty
        assert rec.reconcile(AccountRef.parse(FOUNDRY), dry_run=True).plan.empty
