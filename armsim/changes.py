"""Change events: what a subscription's system topic would deliver (Event Grid schema, or CloudEvents)
for each successful write and delete, stamped with the caller's object id.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import threading
import uuid
from typing import Any

from werkzeug.wrappers import Request

from armsim.answers import utcnow
from armsim.ids import subscription_of

WRITE_EVENT = "Microsoft.Resources.ResourceWriteSuccess"
CORRELATION = "armsim.correlation_id"  # WSGI environ key: one correlation id per request, as ARM
DELETE_EVENT = "Microsoft.Resources.ResourceDeleteSuccess"


# The caller of a request without a bearer JWT (ARM always knows its caller; the stand-in may not).
UNKNOWN_CALLER = "00000000-0000-0000-0000-0000000000ff"
OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def caller_object_id(request: Request) -> str:
    """The ``oid`` claim of the request's bearer token when it is a JWT (the signature is not
    checked: the stand-in trusts its callers), else ``UNKNOWN_CALLER``."""
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3:
        return UNKNOWN_CALLER
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return UNKNOWN_CALLER
    oid = payload.get("oid") if isinstance(payload, dict) else None
    return oid if isinstance(oid, str) and oid else UNKNOWN_CALLER


class EventLog:
    """Event Grid events for successful writes and deletes, in the order ARM accepted them."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def count(self) -> int:
        with self._lock:
            return len(self._events)

    def record(self, request: Request, resource_id: str, resource_type: str, action: str,
               tenant_id: str) -> dict[str, Any]:
        """Record one event; ``resource_type`` like ``Microsoft.CognitiveServices/accounts``. The
        caller's object id is stamped where ARM puts it (claims and authorization evidence)."""
        subscription = subscription_of(resource_id) or ""
        operation = f"{resource_type}/{action}"
        caller = caller_object_id(request)
        event = {
            "id": str(uuid.uuid4()),
            "topic": f"/subscriptions/{subscription}",
            "subject": resource_id,
            "eventType": WRITE_EVENT if action == "write" else DELETE_EVENT,
            "eventTime": utcnow(),
            "data": {
                "authorization": {"scope": resource_id, "action": operation,
                                  "evidence": {"role": "Contributor", "principalType": "ServicePrincipal",
                                               "principalId": caller}},
                "claims": {"appid": "00000000-0000-0000-0000-0000000000aa", OID_CLAIM: caller},
                "correlationId": request.environ.get(CORRELATION) or str(uuid.uuid4()),
                "httpRequest": {"clientRequestId": request.headers.get("x-ms-client-request-id", ""),
                                "clientIpAddress": request.remote_addr or "127.0.0.1",
                                "method": request.method, "url": request.url},
                "resourceProvider": resource_type.split("/", 1)[0],
                "resourceUri": resource_id,
                "operationName": operation,
                "status": "Succeeded",
                "subscriptionId": subscription,
                "tenantId": tenant_id,
            },
            "dataVersion": "2",
            "metadataVersion": "1",
        }
        with self._lock:
            self._events.append(event)
        return event

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(e) for e in self._events]

    def clear(self) -> None:
        with self._lock:
            self._events.clear()


def to_cloudevent(event: dict[str, Any]) -> dict[str, Any]:
    """The same event as CloudEvents 1.0 delivers it: same ``data``, envelope renamed."""
    return {"specversion": "1.0", "id": event["id"], "source": event["topic"], "subject": event["subject"],
            "type": event["eventType"], "time": event["eventTime"], "data": event["data"]}
