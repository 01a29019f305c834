"""Pacing: spend ARM's per-subscription request budget evenly instead of running into 429s.

ARM throttles each subscription (and principal) with token buckets — reads 250 burst / 25 per s,
writes 200 / 10 per s — and says what is left in ``x-ms-ratelimit-remaining-subscription-reads``
and ``-writes`` on every answer. This pipeline policy mirrors those buckets on the client: it
takes a token before each attempt (sleeping when the bucket is in debt) and resynchronises to the
header. A subscription is paced only once ARM has sent the header, so a server that does not
throttle is never slowed down.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy

_SUBSCRIPTION = re.compile(r"/subscriptions/([^/?]+)", re.IGNORECASE)
HEADERS = {"read": "x-ms-ratelimit-remaining-subscription-reads",
           "write": "x-ms-ratelimit-remaining-subscription-writes"}


@dataclass
class Bucket:
    burst: float
    rate: float  # tokens per second
    tokens: float = 0.0
    stamp: float = 0.0
    active: bool = False  # set by the first ratelimit header seen
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now: float) -> float:
        """Reserve one token; returns how long to wait before sending (0 when there is budget)."""
        with self.lock:
            if not self.active:
                return 0.0
            self._refill(now)
            self.tokens -= 1
            return max(0.0, -self.tokens / self.rate)

    def sync(self, remaining: float, now: float) -> None:
        """ARM's own count wins: never believe we have more than it says."""
        with self.lock:
            if not self.active:
                self.active, self.tokens, self.stamp = True, min(self.burst, remaining), now
                return
            self._refill(now)
            self.tokens = min(self.tokens, remaining)


class ArmPacer(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Per-attempt policy (it sits after the retry policy, as ``custom_hook_policy``)."""

    def __init__(self, *, read_burst: float = 250, read_rate: float = 25.0, write_burst: float = 200,
                 write_rate: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._limits = {"read": (read_burst, read_rate), "write": (write_burst, write_rate)}
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self.waited_s = 0.0  # total time spent pacing (for benchmarks and logs)

    def _bucket(self, request: Any) -> Bucket | None:
        match = _SUBSCRIPTION.search(request.url)
        if match is None:
            return None
        kind = "read" if request.method.upper() in ("GET", "HEAD") else "write"
        key = (match.group(1).lower(), kind)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                burst, rate = self._limits[kind]
                bucket = self._buckets[key] = Bucket(burst, rate)
        return bucket

    def on_request(self, request: PipelineRequest[Any]) -> None:
        bucket = self._bucket(request.http_request)
        if bucket is not None:
            wait = bucket.take(self._clock())
            if wait > 0:
                self.waited_s += wait
                self._sleep(wait)

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]) -> None:
        http = request.http_request
        kind = "read" if http.method.upper() in ("GET", "HEAD") else "write"
        value = response.http_response.headers.get(HEADERS[kind])
        if value is None:
            return
        try:
            remaining = float(value)
        except ValueError:
            return
        bucket = self._bucket(http)
        if bucket is not None:
            bucket.sync(remaining, self._clock())
