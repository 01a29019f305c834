"""Shared ARM behaviour of the stand-in: store, ETags, errors, paging, LROs, request log, faults,
throttling and change events.

Rule: the wire is the contract. Everything here follows the public REST specs and examples; armsim
imports nothing from ``azure.*``, so the SDK cannot agree with it by construction.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import math
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

TENANT_ID = "00000000-0000-0000-0000-00000000a1b2"
# The principal every request comes from (the stand-in checks no token): its role assignments decide
# what the permissions listing returns. Also the createdBy of what it writes.
CALLER_PRINCIPAL_ID = "00000000-0000-0000-0000-0000000000aa"
SUBSCRIPTION_RE = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)

# ---------------------------------------------------------------------------------------------
# Errors


class ArmError(Exception):
    """An ARM error response: ``{"error": {"code", "message"[, "details"]}}``."""

    def __init__(self, status: int, code: str, message: str, *, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str, code: str = "InvalidRequestContent") -> ArmError:
    return ArmError(400, code, message)


def validation_error(message: str, target: str | None = None) -> ArmError:
    """APIM's shape: a generic top message and the reason in ``details``."""
    detail = {"code": "ValidationError", "message": message}
    if target:
        detail["target"] = target
    return ArmError(400, "ValidationError", "One or more fields contain incorrect values:", details=[detail])


def system_data(previous: dict[str, Any] | None = None, by: str = "armsim@contoso.example") -> dict[str, Any]:
    """ARM ``systemData``: creation kept from the previous body, modification now."""
    created = (previous or {}).get("systemData") or {}
    now = utcnow()
    return {"createdBy": created.get("createdBy", by), "createdByType": created.get("createdByType", "User"),
            "createdAt": created.get("createdAt", now), "lastModifiedBy": by, "lastModifiedByType": "User",
            "lastModifiedAt": now}


def utcnow() -> str:
    """ARM timestamps: ISO 8601 with seven fractional digits and a Z."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}0Z"


# ---------------------------------------------------------------------------------------------
# Store and ETags

_etag_counter = itertools.count(1)


def new_etag() -> str:
    """APIM-style opaque ETag (``"AAAAAAAAAAE="``), strictly increasing across the process."""
    return '"' + base64.b64encode(next(_etag_counter).to_bytes(8, "big")).decode() + '"'


def _bare_etag(tag: str) -> str:
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    return tag.strip('"')


@dataclass
class Entity:
    """One stored resource: its public JSON body, its ETag and private state the wire never shows."""

    id: str
    body: dict[str, Any]
    etag: str
    private: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.id.rsplit("/", 1)[-1]

    @property
    def type(self) -> str:
        return str(self.body.get("type", ""))


def _key(resource_id: str) -> str:
    return resource_id.rstrip("/").lower()


def resource_group_of(path: str) -> str | None:
    """``/subscriptions/{s}/resourcegroups/{g}`` (lower case) when ``path`` is at or below a group."""
    parts = path.strip("/").split("/")
    if len(parts) >= 4 and parts[0].lower() == "subscriptions" and parts[2].lower() == "resourcegroups":
        return "/" + "/".join(parts[:4]).lower()
    return None


class Store:
    """Resources by id, case-insensitively; children kept in insertion order per collection."""

    def __init__(self) -> None:
        self._items: dict[str, Entity] = {}
        self._collections: dict[str, dict[str, Entity]] = {}
        self._types: dict[str, dict[str, Entity]] = {}
        # Resource groups (and subscriptions) something was ever created in: those exist (a listing
        # under another group answers 404 like ARM); they outlive their resources, as groups do.
        self._scopes: set[str] = set()

    def scope_exists(self, scope: str) -> bool:
        """``/subscriptions/s`` or ``/subscriptions/s/resourceGroups/g``: created in before (any case)."""
        return _key(scope) in self._scopes

    def add_scopes(self, resource_id: str) -> None:
        parts = _key(resource_id).strip("/").split("/")
        if len(parts) >= 2 and parts[0] == "subscriptions":
            self._scopes.add("/" + "/".join(parts[:2]))
            if len(parts) >= 4 and parts[2] == "resourcegroups":
                self._scopes.add("/" + "/".join(parts[:4]))

    def get(self, resource_id: str) -> Entity | None:
        return self._items.get(_key(resource_id))

    def put(self, resource_id: str, body: dict[str, Any], private: dict[str, Any] | None = None,
            ) -> tuple[Entity, bool]:
        """Create or replace; every write gets a new ETag. Returns (entity, created)."""
        key = _key(resource_id)
        existing = self._items.get(key)
        if existing is not None:
            existing.body = body
            existing.etag = new_etag()
            if private is not None:
                existing.private = private
            self._types.setdefault(existing.type.lower(), {})[key] = existing
            return existing, False
        entity = Entity(resource_id, body, new_etag(), private or {})
        self._items[key] = entity
        self.add_scopes(resource_id)
        collection, _, name = key.rpartition("/")
        self._collections.setdefault(collection, {})[name] = entity
        self._types.setdefault(entity.type.lower(), {})[key] = entity
        return entity, True

    def delete(self, resource_id: str) -> Entity | None:
        """Remove a resource and everything below it (its children, links and assignments)."""
        key = _key(resource_id)
        entity = self._items.get(key)
        doomed = [k for k in self._items if k == key or k.startswith(key + "/")]
        for k in doomed:
            gone = self._items.pop(k)
            collection, _, name = k.rpartition("/")
            self._collections.get(collection, {}).pop(name, None)
            self._types.get(gone.type.lower(), {}).pop(k, None)
        return entity

    def children(self, collection_id: str) -> list[Entity]:
        """Direct children of ``{parent}/{collection}``, in creation order."""
        return list(self._collections.get(_key(collection_id), {}).values())

    def of_type(self, resource_type: str, under: str = "") -> list[Entity]:
        """All resources of one ARM type, optionally below an id prefix (a subscription, a group)."""
        prefix = _key(under) + "/" if under else ""
        return [e for k, e in self._types.get(resource_type.lower(), {}).items() if k.startswith(prefix)]

    def all(self) -> list[Entity]:
        return list(self._items.values())

    def clear(self) -> None:
        self._items.clear()
        self._collections.clear()
        self._types.clear()
        self._scopes.clear()


def check_if_match(request: Request, entity: Entity | None) -> None:
    """If-Match: ``*`` means "must exist"; a tag must equal the current one; else 412."""
    header = request.headers.get("If-Match")
    if header is not None and header.strip():
        if entity is None:
            raise ArmError(412, "PreconditionFailed",
                           "The resource does not exist, so If-Match cannot match.")
        tags = [t for t in header.split(",") if t.strip()]
        if not any(t.strip() == "*" or _bare_etag(t) == _bare_etag(entity.etag) for t in tags):
            raise ArmError(412, "PreconditionFailed",
                           "The entity's ETag does not match the If-Match header: "
                           "it was changed since it was read.")
    if request.headers.get("If-None-Match", "").strip() == "*" and entity is not None:
        raise ArmError(412, "PreconditionFailed", "The resource already exists (If-None-Match: *).")


def require_scope(ctx: Ctx, scope: str) -> None:
    """A listing under a resource group that doesn't exist: ARM's 404. (Every subscription exists:
    the stand-in keeps no subscription registry.)"""
    parts = scope.strip("/").split("/")
    if len(parts) >= 4 and not ctx.state.store.scope_exists(scope):
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{parts[3]}' could not be found.")


# ---------------------------------------------------------------------------------------------
# Long-running operations


@dataclass
class Operation:
    """An async operation: InProgress for ``polls`` status reads, then its outcome, applied once."""

    id: str
    resource_id: str
    polls: int
    outcome: str = "Succeeded"
    error: dict[str, Any] | None = None
    on_done: Callable[[str], None] | None = None
    status: str = "InProgress"
    started: str = field(default_factory=utcnow)
    ended: str | None = None

    def advance(self) -> None:
        if self.status != "InProgress":
            return
        if self.polls > 0:
            self.polls -= 1
            return
        self.status = self.outcome
        self.ended = utcnow()
        if self.on_done is not None:
            self.on_done(self.outcome)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "name": self.id, "status": self.status,
                                "startTime": self.started}
        if self.ended:
            body["endTime"] = self.ended
        if self.status == "Failed":
            body["error"] = self.error or {"code": "OperationFailed", "message": "The operation failed."}
        return body


# ---------------------------------------------------------------------------------------------
# Request log


@dataclass(frozen=True)
class LogEntry:
    method: str
    path: str
    query: str
    status: int
    time: float
    duration: float
    subscription: str | None
    kind: str  # "read" (GET/HEAD, including LRO polls) or "write" (PUT/PATCH/POST/DELETE)
    fault: str | None = None  # "throttled", "scripted", "reset" when armsim answered instead of ARM


class RequestLog:
    """Every ARM request the stand-in answered, in order. Admin (/_armsim) calls are not logged."""

    def __init__(self) -> None:
        self._entries: list[LogEntry] = []
        self._lock = threading.Lock()

    def append(self, entry: LogEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    @property
    def entries(self) -> list[LogEntry]:
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Any:
        return iter(self.entries)

    def select(self, *, method: str | None = None, path: str | None = None, status: int | None = None,
               kind: str | None = None, subscription: str | None = None,
               fault: str | None = None) -> list[LogEntry]:
        """Entries matching every given filter; ``path`` is a regex searched in the path."""
        pattern = re.compile(path, re.IGNORECASE) if path else None
        return [e for e in self.entries
                if (method is None or e.method == method.upper())
                and (pattern is None or pattern.search(e.path))
                and (status is None or e.status == status)
                and (kind is None or e.kind == kind)
                and (subscription is None or (e.subscription or "").lower() == subscription.lower())
                and (fault is None or e.fault == fault)]

    def count(self, **filters: Any) -> int:
        return len(self.select(**filters))

    def reads(self, **filters: Any) -> int:
        return self.count(kind="read", **filters)

    def writes(self, **filters: Any) -> int:
        return self.count(kind="write", **filters)

    def round_trips(self) -> int:
        """Sequential round trips: the longest chain of requests each received after the previous
        one was answered, so requests in flight together count once. (Greedy by end time gives
        the largest set of pairwise non-overlapping intervals.)"""
        chain, last_end = 0, float("-inf")
        for start, end in sorted(((e.time, e.time + e.duration) for e in self.entries),
                                 key=lambda iv: iv[1]):
            if start >= last_end:
                chain, last_end = chain + 1, end
        return chain

    def as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.entries]


def request_kind(method: str) -> str:
    return "read" if method.upper() in ("GET", "HEAD", "OPTIONS") else "write"


def subscription_of(path: str) -> str | None:
    match = SUBSCRIPTION_RE.match(path)
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------------
# Faults


RESET = "reset"


def reset_connection(environ: dict[str, Any]) -> None:
    """Close the client's connection without answering (what a dropped connection looks like)."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise ConnectionAbortedError("armsim: injected connection reset")


@dataclass
class FaultRule:
    kind: str  # latency | script | lro
    method: str | None = None
    path: str | None = None
    seconds: float = 0.0
    actions: deque[Any] = field(default_factory=deque)
    polls: int = 0
    outcome: str = "Succeeded"
    times: int | None = None
    on: str = "request"  # request: the path of the request made; backend: the URL the gateway calls
    per_second: float = 0.0  # rate: the capacity, as a token bucket holding one second's worth
    tokens: float = 0.0
    stamp: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return not self.path or re.search(self.path, path, re.IGNORECASE) is not None

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": self.kind, "method": self.method, "path": self.path}
        if self.kind == "latency":
            spec["seconds"] = self.seconds
        elif self.kind == "rate":
            spec["per_second"] = self.per_second
        elif self.kind == "script":
            spec["actions"] = list(self.actions)
        else:
            spec.update(polls=self.polls, outcome=self.outcome, times=self.times)
        if self.on != "request":
            spec["on"] = self.on
        return spec


class Faults:
    """Injected trouble, per run: latency, scripted failures (consumed in order) and slow/failed LROs.

    Actions of a script: an HTTP status (``429``, ``500``, ``503``, ...), ``"reset"`` (close the
    connection without a response) or a dict ``{"status", "retry_after", "code", "message"}``.
    Any rule may say ``"on": "backend"``: its ``path`` regex is then matched against the backend URL
    the gateway is about to call, and it answers in place of that backend (armsim/pools.py).
    """

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, spec: dict[str, Any]) -> FaultRule:
        """Add a rule from its JSON form (what the admin API posts)."""
        spec = dict(spec)
        kind = spec.pop("kind")
        on = spec.pop("on", "request")
        if on not in ("request", "backend"):
            raise ValueError(f"unknown fault target on={on!r}: use request or backend")
        if kind == "latency":
            return self.latency(spec.pop("seconds"), **spec, on=on)
        if kind == "script":
            return self.script(spec.pop("method", None), spec.pop("path", None), spec.pop("actions"), on=on)
        if kind == "throttle":
            return self.throttle(**spec, on=on)
        if kind == "error":
            return self.error(**spec, on=on)
        if kind == "rate":
            return self.rate(**spec, on=on)
        if kind == "lro" and on == "request":
            return self.lro(**spec)
        raise ValueError(f"unknown fault kind {kind!r}: use latency, script, throttle, error, rate or lro")

    def _push(self, rule: FaultRule) -> FaultRule:
        if rule.path:
            re.compile(rule.path)
        with self._lock:
            self._rules.append(rule)
        return rule

    def latency(self, seconds: float, method: str | None = None, path: str | None = None,
                on: str = "request") -> FaultRule:
        """Delay every matching request by ``seconds`` before it is answered."""
        return self._push(FaultRule("latency", method, path, seconds=float(seconds), on=on))

    def script(self, method: str | None, path: str | None, actions: Iterable[Any],
               on: str = "request") -> FaultRule:
        """Answer the next matching requests with ``actions``, one each, then pass through."""
        return self._push(FaultRule("script", method, path, actions=deque(actions), on=on))

    def throttle(self, times: int = 1, retry_after: float = 1, method: str | None = None,
                 path: str | None = None, on: str = "request") -> FaultRule:
        return self.script(method, path, [{"status": 429, "retry_after": retry_after}] * times, on=on)

    def error(self, status: int = 500, times: int = 1, method: str | None = None,
              path: str | None = None, on: str = "request") -> FaultRule:
        return self.script(method, path, [status] * times, on=on)

    def rate(self, per_second: float, method: str | None = None, path: str | None = None,
             on: str = "request") -> FaultRule:
        """A capacity: matching requests beyond ``per_second`` (a bucket of one second's worth) get a
        429 with the Retry-After (whole seconds) until the next one fits."""
        if not per_second > 0:
            raise ValueError("per_second must be positive")
        return self._push(FaultRule("rate", method, path, per_second=float(per_second),
                                    tokens=float(per_second), stamp=time.monotonic(), on=on))

    def reset(self, times: int = 1, method: str | None = None, path: str | None = None) -> FaultRule:
        return self.script(method, path, [RESET] * times)

    def lro(self, method: str | None = "PUT", path: str | None = None, polls: int = 0,
            outcome: str = "Succeeded", times: int | None = None) -> FaultRule:
        """Matching LROs stay InProgress for ``polls`` status reads, then end with ``outcome``."""
        if outcome not in ("Succeeded", "Failed", "Canceled"):
            raise ValueError("outcome must be Succeeded, Failed or Canceled")
        return self._push(FaultRule("lro", method, path, polls=int(polls), outcome=outcome, times=times))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def remove(self, rule: FaultRule) -> None:
        """Drop one rule (as ``add`` and the helpers returned it); no error when already gone."""
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def specs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.spec() for r in self._rules]

    # -- used by the server -----------------------------------------------------------------

    def delay_for(self, method: str, path: str, on: str = "request") -> float:
        with self._lock:
            return sum(r.seconds for r in self._rules
                       if r.kind == "latency" and r.on == on and r.matches(method, path))

    def next_action(self, method: str, path: str, on: str = "request") -> Any:
        """The next scripted action for a request (``on="backend"``: for a call to the backend URL
        ``path``), or None."""
        with self._lock:
            for rule in self._rules:
                if rule.kind == "script" and rule.on == on and rule.actions and rule.matches(method, path):
                    action = rule.actions.popleft()
                    if not rule.actions:
                        self._rules.remove(rule)
                    return action
                if rule.kind == "rate" and rule.on == on and rule.matches(method, path):
                    now = time.monotonic()
                    rule.tokens = min(rule.per_second, rule.tokens + (now - rule.stamp) * rule.per_second)
                    rule.stamp = now
                    if rule.tokens >= 1:
                        rule.tokens -= 1
                        continue
                    wait = (1 - rule.tokens) / rule.per_second
                    return {"status": 429, "retry_after": max(1, math.ceil(wait))}
        return None

    def lro_for(self, method: str, path: str, default_polls: int = 0) -> tuple[int, str]:
        with self._lock:
            for rule in self._rules:
                if rule.kind == "lro" and rule.on == "request" and rule.matches(method, path):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    return rule.polls, rule.outcome
        return default_polls, "Succeeded"


def fault_response(action: Any) -> Response:
    """The error response a scripted action stands for."""
    if isinstance(action, int):
        action = {"status": action}
    status = int(action.get("status", 500))
    codes = {429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
             503: "ServiceUnavailable", 504: "GatewayTimeout", 409: "Conflict", 404: "NotFound"}
    error = ArmError(status, action.get("code", codes.get(status, "InjectedFault")),
                     action.get("message", f"armsim injected a {status} response."))
    response = json_response(error.body(), status)
    retry_after = action.get("retry_after", 1 if status == 429 else None)
    if retry_after is not None:
        response.headers["Retry-After"] = _seconds(float(retry_after))
    return response


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.3f}"


# ---------------------------------------------------------------------------------------------
# Throttling


@dataclass
class ThrottleConfig:
    enabled: bool = False
    read_burst: int = 250
    read_rate: float = 25.0
    write_burst: int = 200
    write_rate: float = 10.0
    exact_retry_after: bool = False  # Retry-After in fractional seconds instead of whole ones


class Throttle:
    """ARM's token buckets, one pair (reads, writes) per subscription. Off unless enabled."""

    def __init__(self, config: ThrottleConfig | None = None) -> None:
        self.config = config or ThrottleConfig()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def configure(self, **changes: Any) -> ThrottleConfig:
        with self._lock:
            for name, value in changes.items():
                if not hasattr(self.config, name):
                    raise TypeError(f"unknown throttle setting {name!r}")
                setattr(self.config, name, value)
            self._buckets.clear()
            return self.config

    def enable(self, **rates: Any) -> ThrottleConfig:
        return self.configure(enabled=True, **rates)

    def disable(self) -> ThrottleConfig:
        return self.configure(enabled=False)

    def take(self, subscription: str, kind: str) -> tuple[float, int | None]:
        """Take a token: (0, tokens left) when granted, else (seconds until one is available, 0).

        Tokens left is None while throttling is off (ARM's x-ms-ratelimit-remaining-* headers).
        """
        cfg = self.config
        if not cfg.enabled:
            return 0.0, None
        burst, rate = (cfg.read_burst, cfg.read_rate) if kind == "read" else (cfg.write_burst, cfg.write_rate)
        now = time.monotonic()
        key = (subscription.lower(), kind)
        with self._lock:
            tokens, last = self._buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0, int(tokens - 1.0)
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate, 0

    def retry_after(self, wait: float) -> str:
        if self.config.exact_retry_after:
            return f"{max(wait, 0.001):.3f}"
        return str(max(1, math.ceil(wait)))


# ---------------------------------------------------------------------------------------------
# Change events (what a subscription system topic would deliver)

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


def resource_type_of(resource_id: str) -> str:
    """``Microsoft.ApiManagement/service/apis/policies`` for an API policy's id: the namespace after
    the last ``providers`` segment, then every other segment (extension resources included)."""
    parts = [p for p in resource_id.split("/") if p]
    last = max((i for i, p in enumerate(parts) if p.lower() == "providers"), default=-1)
    if last < 0 or last + 1 >= len(parts):
        return ""
    return "/".join([parts[last + 1], *parts[last + 2::2]])


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


# ---------------------------------------------------------------------------------------------
# Per-request context: body, responses, paging


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _encode_token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise bad_request(f"Invalid $skipToken {token!r}.", "InvalidSkipToken") from exc
    if not isinstance(data, dict):
        raise bad_request(f"Invalid $skipToken {token!r}.", "InvalidSkipToken")
    return data


class Ctx:
    """What a handler sees: the request, the shared state and helpers to answer like ARM."""

    def __init__(self, request: Request, path: str, state: State) -> None:
        self.request = request
        self.path = path
        self.state = state
        self.method = request.method.upper()
        args = MultiDict(request.args)
        self.offset = 0
        token = next((args[k] for k in list(args) if k.lower() == "$skiptoken"), None)
        if token:
            # Our nextLinks carry the original query inside an opaque token, so the SDK's
            # re-encoding of nextLink queries can never garble a $filter.
            payload = _decode_token(token)
            self.offset = int(payload.get("o", 0))
            for name, value in payload.get("q", {}).items():
                args[name] = value
        self.args = {k.lower(): v for k, v in args.items() if k.lower() != "$skiptoken"}
        self.api_version = self.args.get("api-version", "")

    def arg(self, name: str, default: str | None = None) -> str | None:
        return self.args.get(name.lower(), default)

    def body(self) -> dict[str, Any]:
        raw = self.request.get_data(as_text=True)
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise bad_request(f"The request content is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise bad_request("The request content must be a JSON object.")
        return data

    def url(self, path: str, **query: str) -> str:
        """Absolute URL on this server (ARM hands out absolute Location and nextLink URLs)."""
        query.setdefault("api-version", self.api_version)
        return self.request.host_url.rstrip("/") + quote(path) + "?" + urlencode(query)

    def entity(self, entity: Entity, status: int = 200, headers: dict[str, str] | None = None,
               body: dict[str, Any] | None = None) -> Response:
        response = json_response(entity.body if body is None else body, status, headers)
        response.headers["ETag"] = entity.etag
        return response

    def empty(self, status: int, headers: dict[str, str] | None = None) -> Response:
        response = Response(status=status, headers=headers)
        del response.headers["Content-Type"]
        return response

    def _int(self, name: str, default: int) -> int:
        raw = self.arg(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError as exc:
            raise bad_request(f"{name} must be an integer, not {raw!r}.") from exc

    def page(self, items: list[dict[str, Any]], *, count: bool = False) -> Response:
        """One page of ``items`` with a ``nextLink`` when more remain; ``$top``/``$skip`` honoured."""
        size = max(1, self._int("$top", self.state.options.page_size))
        start = self.offset or max(0, self._int("$skip", 0))
        chunk = items[start:start + size]
        body: dict[str, Any] = {"value": chunk}
        if count:  # APIM's collections carry a total and an empty nextLink on the last page
            body["count"] = len(items)
            body["nextLink"] = ""
        if start + size < len(items):
            carried = {k: v for k, v in self.args.items() if k not in ("api-version", "$skip")}
            token = _encode_token({"o": start + size, "q": carried})
            body["nextLink"] = self.url(self.path, **{"$skiptoken": token})
        return json_response(body)


# ---------------------------------------------------------------------------------------------
# Tiny OData $filter: what list calls need (eq, ne, startswith, endswith, contains; joined by and)

_CLAUSE = re.compile(
    r"^\s*(?:(?P<fn>startswith|endswith|contains)\(\s*(?P<fa>[\w/]+)\s*,\s*'(?P<fv>(?:[^']|'')*)'\s*\)"
    r"|(?P<field>[\w/]+)\s+(?P<op>eq|ne)\s+'(?P<value>(?:[^']|'')*)')\s*$",
    re.IGNORECASE,
)


def odata_filter(expression: str | None, getter: Callable[[dict[str, Any], str], Any],
                 ) -> Callable[[dict[str, Any]], bool]:
    """Compile ``$filter``; ``getter(body, field)`` reads a field such as ``properties/path``."""
    if not expression or not expression.strip():
        return lambda _body: True
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for clause in re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(clause)
        if not match:
            raise bad_request(f"armsim supports only eq/ne/startswith/endswith/contains joined by 'and'; "
                              f"cannot evaluate $filter clause {clause!r}.", "InvalidFilter")
        if match["fn"]:
            tests.append(_function_test(getter, match["fn"].lower(), match["fa"], match["fv"]))
        else:
            tests.append(_compare_test(getter, match["field"], match["op"].lower(), match["value"]))
    return lambda body: all(t(body) for t in tests)


def _function_test(getter: Callable[[dict[str, Any], str], Any], fn: str, fld: str, literal: str,
                   ) -> Callable[[dict[str, Any]], bool]:
    val = literal.replace("''", "'").lower()

    def test(body: dict[str, Any]) -> bool:
        have = str(getter(body, fld) or "").lower()
        if fn == "startswith":
            return have.startswith(val)
        if fn == "endswith":
            return have.endswith(val)
        return val in have

    return test


def _compare_test(getter: Callable[[dict[str, Any], str], Any], fld: str, op: str, literal: str,
                  ) -> Callable[[dict[str, Any]], bool]:
    val = literal.replace("''", "'").lower()

    def test(body: dict[str, Any]) -> bool:
        equal = str(getter(body, fld) or "").lower() == val
        return equal if op == "eq" else not equal

    return test


def field_getter(body: dict[str, Any], path: str) -> Any:
    """Read ``name`` or ``properties/displayName`` style paths out of a body."""
    value: Any = body
    for part in path.split("/"):
        if not isinstance(value, dict):
            return None
        value = next((v for k, v in value.items() if k.lower() == part.lower()), None)
    return value


# ---------------------------------------------------------------------------------------------
# Shared state of one stand-in


@dataclass
class Options:
    """Per-run settings (``start(**options)``); ``sim.reset()`` returns to the ones given at start."""

    page_size: int = 100
    tenant_id: str = TENANT_ID
    lro_polls: int = 0  # status reads every LRO stays InProgress unless a fault says otherwise
    policy_indent: str = "  "  # APIM's REST examples re-indent policies with two spaces
    gateway_url: str = ""  # the local gateway's base URL when it runs (Sim(gateway=True)), else ""
    caller_principal_id: str = CALLER_PRINCIPAL_ID  # whose role assignments the permissions listing reads
    # What an OpenAPI import keeps when the PUT and the document both give displayName, description or
    # serviceUrl: "request" (the PUT's) or "document" (the document's, as azure-cli #20812 reports).
    import_metadata: str = "request"


class State:
    """Everything the handlers share. Handlers run one at a time under ``lock``."""

    def __init__(self, options: Options, faults: Faults) -> None:
        self.options = options
        self.faults = faults
        self.lock = threading.RLock()
        self.store = Store()
        self.events = EventLog()
        self.operations: dict[str, Operation] = {}
        self._pending: dict[str, str] = {}
        # name -> (content type, text), served under /_armsim/files for link imports
        self.files: dict[str, tuple[str, str]] = {}

    def clear(self) -> None:
        self.store.clear()
        self.events.clear()
        self.operations.clear()
        self._pending.clear()
        self.files.clear()

    def begin(self, ctx: Ctx, resource_id: str, on_done: Callable[[str], None] | None = None,
              error: dict[str, Any] | None = None) -> Operation:
        """Start an LRO for this request. ``error`` forces a Failed outcome (e.g. an unfetchable link)."""
        polls, outcome = self.faults.lro_for(ctx.method, ctx.path, self.options.lro_polls)
        if error is not None:
            outcome = "Failed"
        elif outcome != "Succeeded":
            error = {"code": "OperationFailed" if outcome == "Failed" else "OperationCanceled",
                     "message": f"armsim: the operation was made to end {outcome} by fault injection."}
        op = Operation(uuid.uuid4().hex, resource_id, polls, outcome, error, on_done)
        self.operations[op.id] = op
        self._pending[_key(resource_id)] = op.id
        if polls == 0:
            op.advance()
        return op

    def touch(self, resource_id: str) -> None:
        """A read of a resource whose LRO is pending counts as one poll of that LRO."""
        op_id = self._pending.get(_key(resource_id))
        if op_id and op_id in self.operations:
            self.operations[op_id].advance()

    def poll(self, op_id: str) -> Operation:
        op = self.operations.get(op_id)
        if op is None:
            raise ArmError(404, "OperationNotFound", f"Operation {op_id} not found.")
        op.advance()
        return op

    def event(self, ctx: Ctx, resource_id: str, resource_type: str, action: str) -> None:
        self.events.record(ctx.request, resource_id, resource_type, action, self.options.tenant_id)
