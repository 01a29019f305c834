"""Plain-HTTP helpers for conformance tests: raw requests to the stand-in and shape comparison.

Tests read raw JSON through urllib (not the SDK) when the wire itself is what is being checked.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).parent / "examples"
DATA_MAPS = {"tags"}


@dataclass
class Raw:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


def call(base: str, method: str, path: str, body: Any = None, *, api_version: str = "2024-05-01",
         headers: dict[str, str] | None = None, query: str = "") -> Raw:
    url = path if path.startswith("http") else f"{base}{path}"
    if api_version and "api-version=" not in url:
        url += ("&" if "?" in url else "?") + f"api-version={api_version}"
    if query:
        url += "&" + query
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return _raw(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return _raw(exc.code, exc.headers, exc.read())


def _raw(status: int, headers: Any, payload: bytes) -> Raw:
    text = payload.decode() if payload else ""
    return Raw(status, {k.lower(): v for k, v in headers.items()}, json.loads(text) if text.strip() else None)


def example(name: str, status: str = "") -> dict[str, Any]:
    """An example file from tests/armsim/examples; with ``status``, that response (body and headers)."""
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return data["responses"][status] if status else data


def shape_mismatches(expected: Any, actual: Any, where: str = "$") -> list[str]:
    """Every key of ``expected`` must exist in ``actual`` with a value of the same JSON kind.

    ``null`` in the example matches anything (the examples use it for "not set"); list items are
    compared against the example's first item; maps keyed by data (``tags``) only need to be maps.
    """
    if expected is None:
        return []
    problems: list[str] = []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {type(actual).__name__}"]
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}.{key}: missing")
            elif key in DATA_MAPS:
                if not isinstance(actual[key], dict):
                    problems.append(f"{where}.{key}: expected a map")
            else:
                problems += shape_mismatches(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list, got {type(actual).__name__}"]
        if expected and actual:
            for i, item in enumerate(actual):
                problems += shape_mismatches(expected[0], item, f"{where}[{i}]")
    elif isinstance(expected, bool) != isinstance(actual, bool) or (
            isinstance(expected, (int, float)) and not isinstance(actual, (int, float))) or (
            isinstance(expected, str) and not isinstance(actual, str)):
        problems.append(f"{where}: expected {type(expected).__name__}, got {type(actual).__name__}")
    return problems
