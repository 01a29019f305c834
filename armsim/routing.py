"""Route table entries: one URL pattern, one handler per HTTP method.

Rule: a provider module lists its ``Route``s and nothing else knows its URLs. HEAD falls back to GET
without the body, as ARM does.
"""

from __future__ import annotations

from collections.abc import Callable

from werkzeug.wrappers import Response

Handler = Callable[..., Response]


class Route:
    """``Route(pattern, get=fn, put=fn, ...)``; handlers are called as ``fn(ctx, **url_values)``."""

    def __init__(self, pattern: str, **handlers: Handler) -> None:
        self.pattern = pattern
        self.handlers: dict[str, Handler] = {m.upper(): h for m, h in handlers.items()}

    def handler(self, method: str) -> Handler | None:
        return self.handlers.get(method.upper())

    def __repr__(self) -> str:
        return f"Route({self.pattern!r}, {sorted(self.handlers)})"


def literal_segments(routes: list[Route]) -> dict[str, str]:
    """Lower-case → canonical spelling of every literal path segment (ARM matches them case-insensitively)."""
    out: dict[str, str] = {}
    for route in routes:
        for segment in route.pattern.split("/"):
            if segment and not segment.startswith("<"):
                out.setdefault(segment.lower(), segment)
    return out


def merged(*groups: list[Route]) -> list[Route]:
    routes: list[Route] = []
    for group in groups:
        routes.extend(group)
    return routes

