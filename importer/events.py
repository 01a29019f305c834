"""Events: an Event Grid or CloudEvents delivery → the account to look at, or a reason to ignore it.

Pure. No I/O, never raises on bad input: a raise would make Event Grid retry for 24 hours.
The event only says *which* account changed; the reconcile reads the truth itself. Two sources:
an AI account or deployment changed (the account is in the resource id), or one of the importer's
own objects was edited by hand (an APIM API, policy, backend, product link or subscription, or a role
assignment at an account): that decision carries the object's ownership key, which the caller looks
up in the owned-object index (written by the reconciler) to find the account. Events caused by the
importer's own identity are dropped: its writes never trigger its reconciles (no loops).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from importer.model import AccountRef, ApimRef, Desired, InvalidInput, Scope, in_scopes

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
# Writes and deletes of the importer's own kinds of object: resource type → kind.
OWNED_TYPES = {
    "microsoft.apimanagement/service/apis": "api",
    "microsoft.apimanagement/service/apis/policies": "policy",
    "microsoft.apimanagement/service/apis/diagnostics": "diagnostic",
    "microsoft.apimanagement/service/backends": "backend",
    "microsoft.apimanagement/service/products/apis": "product_link",
    "microsoft.apimanagement/service/subscriptions": "subscription",
    "microsoft.authorization/roleassignments": "role_assignment",
}
OWNED_OPERATIONS = {f"{t}/{a}" for t in OWNED_TYPES for a in ("write", "delete")}
MAX_ID_LENGTH = 1024
# Where ARM puts the caller's object id (azure-facts §9).
OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
_ROLE_ASSIGNMENTS = "/providers/microsoft.authorization/roleassignments/"


@dataclass(frozen=True)
class EventDecision:
    """``account`` set → enqueue a reconcile for it. ``key`` set (account None) → the event is about
    the object with that ownership key: look its owner up (``owned_by_index``). Otherwise ``reason``
    says why it was dropped."""

    account: AccountRef | None
    reason: str
    event_id: str = ""
    operation: str = ""
    key: str = ""  # an owned-object key (see owned_keys) still to be looked up
    scope_account: AccountRef | None = None  # a role assignment's scope: its owner must be this one
    edited: str = ""  # a hand edit of one of our objects: its kind of key (KEY_KINDS)

    @property
    def accepted(self) -> bool:
        return self.account is not None

    @property
    def needs_owner(self) -> bool:
        return self.account is None and bool(self.key)


def _drop(reason: str, event_id: str = "", operation: str = "") -> EventDecision:
    return EventDecision(None, reason, event_id, operation)


# -- the importer's own objects: ownership keys -------------------------------------------------


# The kinds of ownership key (the part before the first ':'): what a hand edit was made to.
KEY_KINDS = ("api", "backend", "link", "subscription", "role")


def api_key(api_id: str) -> str:
    return f"api:{api_id.split(';', 1)[0].lower()}"  # a revision (api;rev=2) belongs to its API


def backend_key(backend_id: str) -> str:
    return f"backend:{backend_id.lower()}"


def link_key(product_id: str, api_id: str) -> str:
    return f"link:{product_id.lower()}:{api_id.split(';', 1)[0].lower()}"


def subscription_key(sid: str) -> str:
    return f"subscription:{sid.lower()}"


def role_key(name: str) -> str:
    return f"role:{name.lower()}"


def owned_keys(desired: Desired, subscription_id: str) -> tuple[str, ...]:
    """Every ownership key of one account's objects, from the names the renderer gave them (ids
    follow from the account id) and its probe subscription's id. Sorted, no duplicates."""
    keys = {api_key(a.api_id) for a in desired.apis} | {subscription_key(subscription_id)}
    keys |= {backend_key(b.backend_id) for b in desired.backends}
    keys |= {link_key(p.product_id, p.api_id) for p in desired.product_links}
    keys |= {role_key(r.name) for r in desired.role_assignments}
    return tuple(sorted(keys))


def caller_ids(data: Mapping[str, Any]) -> frozenset[str]:
    """The caller's object ids named by the event (claims oid, authorization evidence), lowercased."""
    found = set()
    claims = data.get("claims")
    if isinstance(claims, Mapping) and isinstance(claims.get(OID_CLAIM), str):
        found.add(claims[OID_CLAIM].lower())
    auth = data.get("authorization")
    evidence = auth.get("evidence") if isinstance(auth, Mapping) else None
    if isinstance(evidence, Mapping) and isinstance(evidence.get("principalId"), str):
        found.add(evidence["principalId"].lower())
    return frozenset(i for i in found if i)


def _owned_object(resource: str, kind: str, apim: ApimRef | None, scopes: tuple[Scope, ...],
                  event_id: str, operation: str) -> EventDecision:
    """An event on one of our kinds of object → its ownership key, or a reason to drop it."""
    if kind == "role_assignment":
        at = resource.lower().rfind(_ROLE_ASSIGNMENTS)
        if at < 0:
            return _drop("role assignment id without a roleAssignments segment", event_id, operation)
        name = resource[at + len(_ROLE_ASSIGNMENTS):].strip("/")
        try:
            ref = AccountRef.parse(resource[:at])
        except InvalidInput:
            return _drop(f"role assignment at {resource[:at][:200]!r}, not at an AI account: not one "
                         "the importer makes", event_id, operation)
        if not in_scopes(ref, scopes):
            return _drop(f"role assignment at {ref}, outside the watched scopes", event_id, operation)
        return EventDecision(None, f"{operation} on {resource}", event_id, operation, role_key(name), ref)
    if apim is None:
        return _drop("no APIM instance configured (IMPORTER_APIM_ID is empty)", event_id, operation)
    prefix = apim.id.lower() + "/"
    if not resource.lower().startswith(prefix):
        return _drop(f"{resource[:200]} is not in the importer's APIM instance {apim}", event_id, operation)
    parts = resource[len(prefix):].strip("/").split("/")
    key = ""
    if kind in ("api", "policy", "diagnostic") and len(parts) >= 2 and parts[0].lower() == "apis":
        key = api_key(parts[1])
    elif kind == "backend" and len(parts) == 2 and parts[0].lower() == "backends":
        key = backend_key(parts[1])
    elif kind == "product_link" and len(parts) == 4 and parts[0].lower() == "products":
        key = link_key(parts[1], parts[3])
    elif kind == "subscription" and len(parts) == 2 and parts[0].lower() == "subscriptions":
        key = subscription_key(parts[1])
    if not key:
        return _drop(f"{resource[:200]} does not name a {kind.replace('_', ' ')}", event_id, operation)
    return EventDecision(None, f"{operation} on {resource}", event_id, operation, key)


# The start of a request's reason for a hand edit of one of the importer's objects ("{}": its kind);
# the worker reads it to repair what the plan does not hold (the probe key: service.py).
HAND_EDIT = "our {} changed by hand"


def owned_by_index(decision: EventDecision, owner: str | None,
                   scopes: tuple[Scope, ...]) -> EventDecision:
    """Finish a ``needs_owner`` decision with the account the index holds for its key (or None)."""
    what = decision.key.split(":", 1)[0]
    if owner is None:
        return replace(decision, reason=f"not an object the importer owns ({decision.key}): "
                                        f"{decision.reason}", key="")
    try:
        ref = AccountRef.parse(owner)
    except InvalidInput as exc:
        return replace(decision, reason=f"owner of {decision.key} rejected: {exc}", key="")
    if decision.scope_account is not None and ref.key != decision.scope_account.key:
        return replace(decision, reason=f"role assignment at {decision.scope_account} is ours for "
                                        f"another account ({ref})", key="")
    if not in_scopes(ref, scopes):
        return replace(decision, reason=f"{ref} is outside the watched scopes", key="")
    return replace(decision, account=ref, reason=f"{HAND_EDIT.format(what)}: {decision.reason}",
                   key="", edited=what)


# -- the rule for both schemas -----------------------------------------------------------------


def decide(event_type: str, subject: str | None, data: Any, scopes: tuple[Scope, ...],
           event_id: str = "", *, own_ids: frozenset[str] = frozenset(),
           apim: ApimRef | None = None) -> EventDecision:
    """Common rule for both schemas (the fields have the same meaning in each). ``own_ids``: the
    importer's own object id(s), whose events are dropped; ``apim``: the instance it imports into."""
    if not isinstance(event_type, str) or event_type.lower() not in EVENT_TYPES:
        return _drop(f"event type {str(event_type)[:80]!r} is not a resource write/delete", event_id)
    if not isinstance(data, Mapping):
        return _drop("event data is not a JSON object", event_id)
    operation = data.get("operationName")
    if not isinstance(operation, str) or operation.lower() not in OPERATIONS | OWNED_OPERATIONS:
        return _drop(f"operation {str(operation)[:120]!r} is not an AI account or deployment change "
                     "nor one on the importer's kinds of object", event_id)
    status = data.get("status")
    if not isinstance(status, str) or status.lower() != "succeeded":
        return _drop(f"operation status is {str(status)[:40]!r}, not Succeeded", event_id, operation)
    callers = caller_ids(data)
    if own_ids and callers & own_ids:
        return _drop(f"caused by the importer's own identity ({sorted(callers & own_ids)[0]}): its "
                     "own write", event_id, operation)
    resource = data.get("resourceUri") or subject
    if not isinstance(resource, str) or not resource or len(resource) > MAX_ID_LENGTH:
        return _drop("no usable resource id in resourceUri or subject", event_id, operation)
    kind = OWNED_TYPES.get(operation.lower().rsplit("/", 1)[0])
    if kind is not None:
        if not scopes:
            return _drop("no watched scopes configured (IMPORTER_SCOPES is empty)", event_id, operation)
        return _owned_object(resource, kind, apim, scopes, event_id, operation)
    try:
        ref = AccountRef.parse(resource)
    except InvalidInput as exc:
        return _drop(f"resource id rejected: {exc}", event_id, operation)
    if not scopes:
        return _drop("no watched scopes configured (IMPORTER_SCOPES is empty)", event_id, operation)
    if not in_scopes(ref, scopes):
        return _drop(f"{ref} is outside the watched scopes", event_id, operation)
    return EventDecision(ref, f"{operation} on {resource}", event_id, operation)


def decide_eventgrid(event: Mapping[str, Any], scopes: tuple[Scope, ...], *,
                     own_ids: frozenset[str] = frozenset(), apim: ApimRef | None = None) -> EventDecision:
    """Event Grid schema: ``eventType``, ``subject``, ``data``."""
    if not isinstance(event, Mapping):
        return _drop("event is not a JSON object")
    return decide(event.get("eventType", ""), event.get("subject"), event.get("data"), scopes,
                  str(event.get("id", ""))[:100], own_ids=own_ids, apim=apim)


def decide_cloudevent(event: Mapping[str, Any], scopes: tuple[Scope, ...], *,
                      own_ids: frozenset[str] = frozenset(), apim: ApimRef | None = None) -> EventDecision:
    """CloudEvents 1.0: ``type``, ``subject``, ``data`` (same data as the Event Grid schema)."""
    if not isinstance(event, Mapping):
        return _drop("event is not a JSON object")
    if str(event.get("specversion", "")) != "1.0":
        return _drop(f"unsupported CloudEvents specversion {str(event.get('specversion'))[:10]!r}")
    return decide(event.get("type", ""), event.get("subject"), event.get("data"), scopes,
                  str(event.get("id", ""))[:100], own_ids=own_ids, apim=apim)
