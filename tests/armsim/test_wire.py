"""Conformance of ARM's shared wire behaviour: paging, ETags, errors, retries, faults, throttling,
the request log, change events and the /_armsim admin surface.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceResponseError
from azure.mgmt.apimanagement import models

from armsim.changes import to_cloudevent
from devhost import seed
from importer.azure.clients import Clients
from tests.armsim.wire import EXAMPLES, call, shape_mismatches

SUB, RG, SVC = seed.SUBSCRIPTION, seed.APIM_GROUP, seed.APIM_NAME


def tag(apim, name):
    return apim.tag.create_or_update(RG, SVC, name, models.TagCreateUpdateParameters(display_name=name))


# ---------------------------------------------------------------------------------------------
# Paging


def test_sdk_follows_next_links_across_pages(clients, armsim):
    armsim.set_options(page_size=2)
    for i in range(7):
        seed.create_account(clients, name=f"acct-{i}")
    armsim.log.clear()
    names = [a.name for a in clients.cognitive(SUB).accounts.list()]
    assert names == [f"acct-{i}" for i in range(7)]
    assert armsim.log.count(method="GET", path="/accounts$") == 4  # 2+2+2+1


def test_apim_paging_keeps_the_filter_across_pages(clients, apim_service, armsim):
    apim = clients.apim(SUB)
    armsim.set_options(page_size=2)
    for i in range(5):
        tag(apim, f"team-{i}")
        tag(apim, f"other-{i}")
    armsim.log.clear()
    found = [t.name for t in apim.tag.list_by_service(RG, SVC, filter="startswith(name, 'team-')")]
    assert found == [f"team-{i}" for i in range(5)]
    assert armsim.log.count(method="GET", path="/tags$") == 3
    assert [t.name for t in apim.tag.list_by_service(RG, SVC, top=4)][:4] == ["team-0", "other-0", "team-1",
                                                                                "other-1"]


def test_raw_pages_carry_next_link_and_apim_count(clients, apim_service, armsim):
    apim = clients.apim(SUB)
    armsim.set_options(page_size=3)
    for i in range(4):
        tag(apim, f"t{i}")
    first = call(armsim.url, "GET", f"{seed.apim_id()}/tags")
    assert first.body["count"] == 4 and len(first.body["value"]) == 3
    assert first.body["nextLink"].startswith(armsim.url)
    last = call(armsim.url, "GET", first.body["nextLink"])
    assert [t["name"] for t in last.body["value"]] == ["t3"] and last.body["nextLink"] == ""


def test_unsupported_filter_is_refused_not_ignored(clients, apim_service):
    with pytest.raises(HttpResponseError, match="InvalidFilter"):
        list(clients.apim(SUB).tag.list_by_service(RG, SVC, filter="name gt 'a'"))


# ---------------------------------------------------------------------------------------------
# ETags and errors


def test_etag_header_on_every_entity_and_if_match_412(clients, apim_service, armsim):
    apim = clients.apim(SUB)
    created = call(armsim.url, "PUT", f"{seed.apim_id()}/tags/t", {"properties": {"displayName": "t"}})
    etag = created.headers["etag"]
    assert etag.startswith('"')
    assert call(armsim.url, "GET", f"{seed.apim_id()}/tags/t").headers["etag"] == etag
    tag(apim, "t")  # changes the etag
    with pytest.raises(HttpResponseError) as err:
        apim.tag.delete(RG, SVC, "t", if_match=etag)
    assert err.value.status_code == 412
    with pytest.raises(HttpResponseError) as err:
        apim.tag.create_or_update(RG, SVC, "missing", models.TagCreateUpdateParameters(display_name="m"),
                                  if_match="*")
    assert err.value.status_code == 412  # If-Match * means "must exist"
    apim.tag.delete(RG, SVC, "t", if_match="*")


def test_account_and_deployment_bodies_carry_their_etag(clients, armsim):
    account = seed.create_account(clients, name="contoso-aoai")
    raw = call(armsim.url, "GET", account.id, api_version="2025-09-01")
    assert raw.body["etag"] and raw.headers["etag"] == raw.body["etag"]
    deployment = seed.create_deployment(clients, account.id, "gpt-4o")
    assert deployment.etag


def test_error_bodies_and_sdk_exceptions(clients, armsim):
    # ARM says which part is missing: the group (nothing was ever created in it here), then the resource.
    with pytest.raises(ResourceNotFoundError) as err:
        clients.cognitive(SUB).accounts.get(seed.AI_GROUP, "ghost")
    assert err.value.error.code == "ResourceGroupNotFound"
    assert err.value.error.message == f"Resource group '{seed.AI_GROUP}' could not be found."
    seed.create_account(clients, name="contoso-aoai")
    with pytest.raises(ResourceNotFoundError) as err:
        clients.cognitive(SUB).accounts.get(seed.AI_GROUP, "ghost")
    assert err.value.error.code == "ResourceNotFound"
    clients.cognitive(SUB).accounts.begin_delete(seed.AI_GROUP, "contoso-aoai").result()
    with pytest.raises(ResourceNotFoundError) as err:  # the group outlives its last resource
        clients.cognitive(SUB).accounts.get(seed.AI_GROUP, "contoso-aoai")
    assert err.value.error.code == "ResourceNotFound"
    raw = call(armsim.url, "GET", seed.account_id(SUB, seed.AI_GROUP, "ghost"))
    assert raw.status == 404 and set(raw.body["error"]) == {"code", "message"}
    assert call(armsim.url, "GET", seed.apim_id(), api_version="").status == 400  # api-version required
    unknown = call(armsim.url, "GET", f"/subscriptions/{SUB}/providers/Microsoft.Web/sites")
    assert unknown.status == 501 and unknown.body["error"]["code"] == "ArmsimNotImplemented"


def test_literal_segments_match_case_insensitively(clients, armsim):
    account = seed.create_account(clients, name="contoso-aoai")
    lower = account.id.replace("resourceGroups", "resourcegroups").replace("Microsoft.CognitiveServices",
                                                                           "microsoft.cognitiveservices")
    assert call(armsim.url, "GET", lower).body["name"] == "contoso-aoai"


# ---------------------------------------------------------------------------------------------
# Faults


def test_429_with_retry_after_is_retried_by_the_sdk(clients, armsim):
    seed.create_account(clients, name="contoso-aoai")
    armsim.log.clear()
    armsim.faults.throttle(times=2, retry_after=0.2, method="GET", path="/accounts/contoso-aoai$")
    started = time.monotonic()
    assert clients.cognitive(SUB).accounts.get(seed.AI_GROUP, "contoso-aoai").name == "contoso-aoai"
    assert time.monotonic() - started >= 0.4  # both Retry-After waits were honoured
    statuses = [e.status for e in armsim.log.select(method="GET", path="/accounts/contoso-aoai$")]
    assert statuses == [429, 429, 200]
    assert armsim.log.count(fault="scripted") == 2


@pytest.mark.parametrize("action", [500, 503, "reset"])
def test_transient_failures_are_retried_to_success(clients, armsim, action):
    seed.create_account(clients, name="contoso-aoai")
    armsim.log.clear()
    armsim.faults.script("GET", r"/accounts/contoso-aoai$", [action])
    assert clients.cognitive(SUB).accounts.get(seed.AI_GROUP, "contoso-aoai").name == "contoso-aoai"
    statuses = [e.status for e in armsim.log.select(method="GET", path="/accounts/contoso-aoai$")]
    assert statuses == [0 if action == "reset" else action, 200]


def test_persistent_failures_surface_after_the_retries(armsim, arm_settings):
    clients = Clients(arm_settings, retry_total=2)
    armsim.faults.error(503, times=10, method="GET")
    with pytest.raises(HttpResponseError) as err:
        clients.cognitive(SUB).accounts.get(seed.AI_GROUP, "x")
    assert err.value.status_code == 503
    assert armsim.log.count(status=503) == 3  # first try + 2 retries
    armsim.faults.clear()
    armsim.faults.reset(times=10, method="GET")
    with pytest.raises(ServiceResponseError):
        clients.cognitive(SUB).accounts.get(seed.AI_GROUP, "x")


def test_latency_is_added(clients, armsim):
    armsim.faults.latency(0.3, method="GET")
    started = time.monotonic()
    with pytest.raises(ResourceNotFoundError):
        clients.cognitive(SUB).accounts.get(seed.AI_GROUP, "x")
    assert time.monotonic() - started >= 0.3


# ---------------------------------------------------------------------------------------------
# Throttling


def test_throttling_slows_a_burst_of_writes_without_losing_any(armsim_factory):
    sim = armsim_factory(throttling=True, write_burst=5, write_rate=20, exact_retry_after=True)
    clients = Clients(arm_endpoint=sim.url, pacing=False)  # the server's throttle, not the client's
    apim = clients.apim(SUB)
    sim.throttle.disable()
    seed.create_apim(clients)
    sim.throttle.enable()
    sim.log.clear()
    started = time.monotonic()
    for i in range(30):
        tag(apim, f"tag-{i}")
    elapsed = time.monotonic() - started
    assert elapsed >= (30 - 5) / 20 * 0.95
    assert len(sim.ids("Microsoft.ApiManagement/service/tags")) == 30
    throttled = sim.log.select(status=429)
    assert throttled and all(e.fault == "throttled" for e in throttled)
    assert sim.log.count(method="PUT", status=201) == 30


def test_throttling_retry_after_is_whole_seconds_by_default(armsim_factory):
    sim = armsim_factory(throttling=True, read_burst=1, read_rate=0.5)
    path = f"/subscriptions/{SUB}/providers/Microsoft.CognitiveServices/accounts"
    granted = call(sim.url, "GET", path)
    assert granted.status == 200 and granted.headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"
    throttled = call(sim.url, "GET", path)
    assert throttled.status == 429 and throttled.headers["retry-after"] == "2"
    assert throttled.body["error"]["code"] == "TooManyRequests"
    other_sub = call(sim.url, "GET", path.replace(SUB, "00000000-0000-0000-0000-000000000009"))
    assert other_sub.status == 200  # buckets are per subscription


# ---------------------------------------------------------------------------------------------
# Request log


def test_log_counts_reads_and_writes_and_lro_polls_as_reads(clients, armsim):
    account = seed.create_account(clients, name="contoso-aoai")
    seed.create_deployment(clients, account.id, "gpt-4o")
    assert armsim.log.writes() == 2  # two PUTs
    assert armsim.log.reads() == 4  # two status polls, two final GETs
    entry = armsim.log.entries[0]
    assert (entry.method, entry.subscription, entry.kind) == ("PUT", SUB, "write")
    assert "api-version=2025-09-01" in entry.query and entry.duration >= 0
    armsim.log.clear()
    assert len(armsim.log) == 0


# ---------------------------------------------------------------------------------------------
# Events


def test_events_have_the_event_grid_and_cloudevents_shapes(clients, armsim):
    account = seed.create_account(clients, name="contoso-aoai")
    seed.create_deployment(clients, account.id, "gpt-4o")
    clients.cognitive(SUB).deployments.begin_delete(seed.AI_GROUP, "contoso-aoai", "gpt-4o").result()
    write = [e for e in armsim.events() if e["data"]["operationName"].endswith("deployments/write")][0]
    reference = json.loads((EXAMPLES / "deployment-write.eventgrid.json").read_text())[0]
    assert shape_mismatches(reference, write) == []
    assert set(write) == set(reference)
    delete = [e for e in armsim.cloud_events() if e["type"].endswith("DeleteSuccess")][0]
    reference = json.loads((EXAMPLES / "deployment-delete.cloudevent.json").read_text())
    assert set(delete) == set(reference)
    assert shape_mismatches(reference, delete) == []
    assert to_cloudevent(write)["source"] == f"/subscriptions/{SUB}"


# ---------------------------------------------------------------------------------------------
# Admin surface (for an out-of-process sandbox)


def admin(sim, method, route, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{sim.url}/_armsim/{route}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return json.loads(text) if text else None


def test_admin_http_drives_faults_log_events_and_options(clients, armsim):
    assert admin(armsim, "GET", "health")["status"] == "ok"
    admin(armsim, "POST", "faults", {"kind": "script", "method": "GET", "path": "/accounts/x$",
                                     "actions": [{"status": 429, "retry_after": 0}]})
    assert admin(armsim, "GET", "faults")[0]["actions"] == [{"status": 429, "retry_after": 0}]
    assert call(armsim.url, "GET", seed.account_id(SUB, seed.AI_GROUP, "x")).status == 429
    assert call(armsim.url, "GET", seed.account_id(SUB, seed.AI_GROUP, "x")).status == 404
    assert [e["status"] for e in admin(armsim, "GET", "log")] == [429, 404]
    admin(armsim, "DELETE", "log")
    assert admin(armsim, "GET", "log") == []

    admin(armsim, "PUT", "options", {"page_size": 1})
    assert armsim.options.page_size == 1
    admin(armsim, "PUT", "throttle", {"enabled": True, "write_burst": 7})
    assert armsim.throttle.config.enabled and armsim.throttle.config.write_burst == 7
    admin(armsim, "PUT", "throttle", {"enabled": False})

    seed.create_account(clients, name="contoso-aoai")
    assert admin(armsim, "GET", "events")[0]["eventType"] == "Microsoft.Resources.ResourceWriteSuccess"
    assert admin(armsim, "GET", "events?schema=cloudevents")[0]["specversion"] == "1.0"
    assert list(admin(armsim, "GET", "state")) == [seed.account_id(SUB, seed.AI_GROUP, "contoso-aoai")]

    admin(armsim, "POST", "reset")
    assert armsim.ids() == [] and armsim.events() == [] and armsim.options.page_size == 100


def test_files_served_for_link_imports(armsim):
    request = urllib.request.Request(f"{armsim.url}/_armsim/files/spec.json", data=b'{"openapi": "3.0.1"}',
                                     method="PUT", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        url = json.loads(response.read())["url"]
    with urllib.request.urlopen(url, timeout=5) as response:
        assert json.loads(response.read()) == {"openapi": "3.0.1"}


def test_retry_after_ceil_rounds_up():
    from armsim.throttle import Throttle, ThrottleConfig

    assert Throttle(ThrottleConfig()).retry_after(0.01) == "1"
    assert Throttle(ThrottleConfig()).retry_after(1.2) == str(math.ceil(1.2))
