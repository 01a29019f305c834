"""The request log: every ARM request the stand-in answered, in order, for tests and benchmarks to
count reads, writes and sequential round trips.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass
from typing import Any


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
