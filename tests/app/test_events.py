"""events.decide_*: which deliveries become a reconcile request, and why the rest are dropped."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from importer.events import decide_cloudevent, decide_eventgrid
from importer.model import Scope

# Microsoft's example deliveries (source: tests/armsim/examples, see its README).
REF = Path(__file__).resolve().parents[1] / "armsim" / "examples"
SUB = "00000000-0000-0000-0000-000000000001"
ACCOUNT = (f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices"
           "/accounts/contoso-aoai")
SCOPES = (Scope.parse(f"/subscriptions/{SUB}"),)


def _eventgrid() -> dict:
    return json.loads((REF / "deployment-write.eventgrid.json").read_text())[0]


def _cloud() -> dict:
    return json.loads((REF / "deployment-delete.cloudevent.json").read_text())


def test_reference_deliveries_map_to_their_account() -> None:
    for decision in (decide_eventgrid(_eventgrid(), SCOPES), decide_cloudevent(_cloud(), SCOPES)):
        assert decision.accepted, decision.reason
        assert decision.account is not None and decision.account.id == ACCOUNT


def test_mixed_case_ids_and_types_are_accepted() -> None:
    ev = _eventgrid()
    ev["eventType"] = "microsoft.resources.resourcewritesuccess"
    ev["data"]["resourceUri"] = ACCOUNT.replace("resourceGroups", "resourcegroups").upper()
    ev["data"]["operationName"] = "MICROSOFT.COGNITIVESERVICES/ACCOUNTS/WRITE"
    d = decide_eventgrid(ev, SCOPES)
    assert d.accepted and d.account is not None
    assert d.account.key == ACCOUNT.lower()


def test_resource_group_scope() -> None:
    inside = (Scope.parse(f"/subscriptions/{SUB}/resourcegroups/RG-AI"),)
    outside = (Scope.parse(f"/subscriptions/{SUB}/resourceGroups/rg-other"),)
    assert decide_eventgrid(_eventgrid(), inside).accepted
    assert "outside the watched scopes" in decide_eventgrid(_eventgrid(), outside).reason


def _mutate(path: list[str], value: object) -> dict:
    ev = copy.deepcopy(_eventgrid())
    target = ev
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return ev


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (_mutate(["eventType"], "Microsoft.Resources.ResourceActionSuccess"), "not a resource write"),
        (_mutate(["data", "operationName"], "Microsoft.Storage/storageAccounts/write"), "not an AI account"),
        (_mutate(["data", "status"], "Failed"), "not Succeeded"),
        (_mutate(["data", "status"], KeyError), "not Succeeded"),
        (_mutate(["data"], "a string"), "not a JSON object"),
        (_mutate(["data"], None), "not a JSON object"),
        (_mutate(["data", "resourceUri"], "/subscriptions/x/../../etc"), "rejected"),
        (_mutate(["data", "resourceUri"], ACCOUNT + "/deployments/a\"/><x"), "rejected"),
        (_mutate(["data", "resourceUri"], ACCOUNT.replace("contoso-aoai", "a<b>")), "rejected"),
        (_mutate(["data", "resourceUri"], "/subscriptions/" + "a" * 2000), "no usable resource id"),
        (_mutate(["data", "resourceUri"],
                 "/subscriptions/00000000-0000-0000-0000-000000000009/resourceGroups/rg/providers/"
                 "Microsoft.CognitiveServices/accounts/x1"), "outside the watched scopes"),
        (_mutate(["data", "resourceUri"],
                 f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Storage/accounts/x1"),
         "rejected"),
        ("not even a dict", "not a JSON object"),
    ],
)
def test_bad_or_irrelevant_events_are_dropped_with_a_reason(event: object, reason: str) -> None:
    d = decide_eventgrid(event, SCOPES)  # type: ignore[arg-type]
    assert not d.accepted
    assert reason in d.reason


def test_no_scopes_means_nothing_is_watched() -> None:
    assert "no watched scopes" in decide_eventgrid(_eventgrid(), ()).reason


def test_cloudevent_needs_specversion_1() -> None:
    ev = _cloud()
    ev["specversion"] = "0.3"
    assert "specversion" in decide_cloudevent(ev, SCOPES).reason
