"""Injected trouble, per run: latency, scripted failures and resets, rate limits and slow or failed
LROs, and the error responses they stand for.
"""

from __future__ import annotations

import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Response

from armsim.answers import ArmError, json_response

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
