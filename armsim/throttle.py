"""Throttling: ARM's token buckets, one pair (reads, writes) per subscription, and the Retry-After
they answer with. Off unless enabled.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any


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
