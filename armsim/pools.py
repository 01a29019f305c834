"""Backend pools in the stand-in gateway: route a request to a ``Pool`` backend like APIM does, and
answer backend-targeted faults.

Rule: priority groups (lowest value first), weighted choice among the group's members whose circuit
breaker is closed, a breaker per member backend from its stored rule (failure count in an interval,
status ranges, trip duration, or ``Retry-After`` when ``acceptRetryAfter``), and the policy's
``<retry>`` in the backend section (count, and the status codes its condition names). The pool is
the one the importer's literal ``ai-pool-backends`` map names for the requested deployment; no
policy expression is evaluated. A fault with ``"on": "backend"`` answers in place of the backend
whose URL its ``path`` regex matches.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from armsim.policyxml import Element

POOL_VARIABLE = "ai-pool-backends"
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def duration_s(text: Any, default: float = 60.0) -> float:
    """ISO 8601 duration (``PT1M``, ``P1DT2H``) → seconds."""
    m = _DURATION.fullmatch(str(text or ""))
    if not m or not any(m.groups()):
        return default
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def backend_fault(sim: Any, method: str, url: str) -> Response | None:
    """The answer of an ``"on": "backend"`` fault matching ``url``, in the model endpoint's shape."""
    delay = sim.faults.delay_for(method, url, on="backend")
    if delay:
        time.sleep(delay)
    action = sim.faults.next_action(method, url, on="backend")
    if action is None:
        return None
    spec = {"status": action} if isinstance(action, int) else dict(action)
    status = int(spec.get("status", 500))
    code = {429: "429", 503: "ServiceUnavailable"}.get(status, "InternalServerError")
    message = spec.get("message") or f"armsim injected a {status} response from the backend."
    body = {"error": {"code": spec.get("code") or code, "message": message}}
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    if spec.get("retry_after"):
        response.headers["Retry-After"] = str(spec["retry_after"])
    return response


class Breakers:
    """Circuit breaker state per backend id (lower-cased), shared by every request of the gateway."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, list[float]] = {}
        self._open_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def closed(self, backend: str) -> bool:
        with self._lock:
            return self._open_until.get(backend.lower(), 0.0) <= self._clock()

    def record(self, backend: str, rule: dict[str, Any] | None, status: int, retry_after: str | None) -> None:
        if not rule:
            return
        condition = rule.get("failureCondition") or {}
        ranges = condition.get("statusCodeRanges") or []
        if not any(int(r.get("min", 0)) <= status <= int(r.get("max", 0)) for r in ranges):
            return
        now, key = self._clock(), backend.lower()
        window = duration_s(condition.get("interval"), 60.0)
        with self._lock:
            recent = [t for t in self._failures.get(key, []) if now - t < window] + [now]
            self._failures[key] = recent
            if len(recent) < int(condition.get("count") or 1):
                return
            trip = duration_s(rule.get("tripDuration"), 60.0)
            if rule.get("acceptRetryAfter") and retry_after:
                try:
                    trip = float(retry_after)
                except ValueError:
                    pass
            self._open_until[key] = now + trip
            self._failures[key] = []

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
            self._open_until.clear()


def _literal(inbound: Element | None, name: str) -> str | None:
    for el in inbound.iter() if inbound is not None else ():
        attrs = dict(el.attrs)
        value = attrs.get("value", "")
        if el.tag == "set-variable" and attrs.get("name") == name and not value.startswith("@"):
            return value
    return None


def _retry(doc: Any) -> tuple[int, set[int]]:
    """(retries, statuses retried) of the policy's ``<backend><retry>``; (0, {}) without one."""
    backend = next((c for c in doc.root.children if isinstance(c, Element) and c.tag == "backend"), None) \
        if doc is not None else None
    for el in backend.iter() if backend is not None else ():
        if el.tag == "retry":
            attrs = dict(el.attrs)
            named = re.findall(r"StatusCode\s*==\s*(\d{3})", attrs.get("condition", ""))
            statuses = {int(code) for code in named}
            return max(0, int(attrs.get("count", "0") or 0)), statuses
    return 0, set()


class PoolRouter:
    """Routes requests whose policy sends them to a Pool backend."""

    def __init__(self, seed: int | None = 0) -> None:
        # Seeded: the weighted choice is the same sequence in every run, so tests of shares are
        # reproducible (pass seed=None for a fresh sequence).
        self.breakers = Breakers()
        self._seed = seed
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()

    def reset(self) -> None:
        self.breakers.clear()
        with self._random_lock:
            self._random = random.Random(self._seed)

    def pool_for(self, store: Any, svc: Any, inbound: Element | None, requested: str | None) -> Any:
        """The Pool backend entity this request goes to, or None (not routed to a pool)."""
        target = next((el for el in inbound.iter() if el.tag == "set-backend-service"), None) \
            if inbound is not None else None
        if target is None:
            return None
        backend_id = dict(target.attrs).get("backend-id", "")
        if backend_id.startswith("@"):
            mapping = _literal(inbound, POOL_VARIABLE)
            if not mapping:
                return None
            pairs = [p.split("=", 1) for p in mapping.strip("|").split("|") if "=" in p]
            table = {k.lower(): v for k, v in pairs}
            backend_id = table.get((requested or "").lower()) or (pairs[0][1] if pairs else "")
        entity = store.get(f"{svc.id}/backends/{backend_id}") if backend_id else None
        if entity is None or str(entity.body["properties"].get("type", "")).lower() != "pool":
            return None
        return entity

    def _pick(self, store: Any, svc: Any, pool: Any) -> Any:
        services = (pool.body["properties"].get("pool") or {}).get("services") or []
        groups: dict[int, list[tuple[Any, int]]] = {}
        for item in services:
            member = store.get(f"{svc.id}/backends/{str(item.get('id', '')).rstrip('/').rsplit('/', 1)[-1]}")
            if member is None or not self.breakers.closed(member.name):
                continue
            weight = item.get("weight")
            groups.setdefault(int(item.get("priority") or 0), []).append(
                (member, int(weight) if weight is not None else 1))
        for priority in sorted(groups):
            members = groups[priority]
            total = sum(max(0, w) for _, w in members)
            with self._random_lock:
                if total <= 0:
                    return self._random.choice(members)[0]
                point = self._random.uniform(0, total)
            for member, weight in members:
                point -= max(0, weight)
                if point <= 0:
                    return member
            return members[-1][0]
        return None

    def route(self, sim: Any, svc: Any, pool: Any, method: str, rest: str, doc: Any,
              answer: Callable[[str, Any], Response]) -> tuple[str, Response]:
        """(the member URL that answered last, its response): tries members as APIM would, retrying
        what the policy's ``<retry>`` retries. ``answer(url, member)`` is the model's answer to a
        call to the member backend (the gateway's, with the token that call carries)."""
        store = sim.state.store
        retries, statuses = _retry(doc)
        for attempt in range(retries + 1):
            member = self._pick(store, svc, pool)
            if member is None:
                response = Response(json.dumps({"statusCode": 503, "message": (
                    f"Backend pool {pool.name} is temporarily unavailable: every member's circuit "
                    "breaker is open.")}), status=503, mimetype="application/json")
                return "", response
            props = member.body["properties"]
            url = str(props.get("url") or "")
            response = backend_fault(sim, method, url.rstrip("/") + rest) or answer(url, member)
            rules = (props.get("circuitBreaker") or {}).get("rules") or []
            self.breakers.record(member.name, rules[0] if rules else None, response.status_code,
                                 response.headers.get("Retry-After"))
            if response.status_code not in statuses or attempt == retries:
                return url, response
        raise AssertionError("unreachable")  # pragma: no cover
