"""Events: an Event Grid or CloudEvents delivery → the account to look at, or a reason to ignore it.

Pure. No I/O, never raises on bad input: a raise would make Event Grid retry for 24 hours.
The event only says *which* account changed; the reconcile reads the truth itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from importer.model import AccountRef, InvalidInput, Scope, in_scopes

EVENT_TYPES = {
    "microsoft.resources.resourcewritesuccess": "write",
    "microsoft.resources.resourcedeletesuccess": "delete",
}
OPERATIONS = {
    "microsoft.cognitiveservices/accounts/write",
    "microsoft.cognitiveservices/accounts/delete",
    "microsoft.cognitiveservices/accounts/deployments/write",
    "microsoft.cognitiveservices/accounts/deployments/delete",
}
MAX_ID_LENGTH = 1024


@dataclass(frozen=True)
class EventDecision:
    """``account`` set → enqueue a reconcile for it; otherwise ``reason`` says why it was dropped."""

    account: AccountRef | None
    reason: str
    event_id: str = ""
    operation: str = ""

    @property
    def accepted(self) -> bool:
        return self.account is not None


def _drop(reason: str, event_id: str = "", operation: str = "") -> EventDecision:
    return EventDecision(None, reason, event_id, operation)


def decide(event_type: str, subject: str | None, data: Any, scopes: tuple[Scope, ...],
           event_id: str = "") -> EventDecision:
    """Common rule for both schemas (the fields have the same meaning in each)."""
    if not isinstance(event_type, str) or event_type.lower() not in EVENT_TYPES:
        return _drop(f"event type {str(event_type)[:80]!r} is not a resource write/delete", event_id)
    if not isinstance(data, Mapping):
        return _drop("event data is not a JSON object", event_id)
    operation = data.get("operationName")
    if not isinstance(operation, str) or operation.lower() not in OPERATIONS:
        return _drop(f"operation {str(operation)[:120]!r} is not an AI account or deployment change",
                     event_id)
    status = data.get("status")
    if not isinstance(status, str) or status.lower() != "succeeded":
        return _drop(f"operation status is {str(status)[:40]!r}, not Succeeded", event_id, operation)
    resource = data.get("resourceUri") or subject
    if not isinstance(resource, str) or not resource or len(resource) > MAX_ID_LENGTH:
        return _drop("no usable resource id in resourceUri or subject", event_id, operation)
    try:
        ref = AccountRef.parse(resource)
    except InvalidInput as exc:
        return _drop(f"resource id rejected: {exc}", event_id, operation)
    if not scopes:
        return _drop("no watched scopes configured (IMPORTER_SCOPES is empty)", event_id, operation)
    if not in_scopes(ref, scopes):
        return _drop(f"{ref} is outside the watched scopes", event_id, operation)
    return EventDecision(ref, f"{operation} on {resource}", event_id, operation)


def decide_eventgrid(event: Mapping[str, Any], scopes: tuple[Scope, ...]) -> EventDecision:
    """Event Grid schema: ``eventType``, ``subject``, ``data``."""
    if not isinstance(event, Mapping):
        return _drop("event is not a JSON object")
    return decide(event.get("eventType", ""), event.get("subject"), event.get("data"), scopes,
                  str(event.get("id", ""))[:100])


def decide_cloudevent(event: Mapping[str, Any], scopes: tuple[Scope, ...]) -> EventDecision:
    """CloudEvents 1.0: ``type``, ``subject``, ``data`` (same data as the Event Grid schema)."""
    if not isinstance(event, Mapping):
        return _drop("event is not a JSON object")
    if str(event.get("specversion", "")) != "1.0":
        return _drop(f"unsupported CloudEvents specversion {str(event.get('specversion'))[:10]!r}")
    return decide(event.get("type", ""), event.get("subject"), event.get("data"), scopes,
                  str(event.get("id", ""))[:100])
