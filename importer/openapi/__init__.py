"""OpenAPI documents the importer imports, one per mode: the project's own. Pure; package data, cached.

Operation rule (the ARM stand-in repeats it): (METHOD, path + ``?a={a}&b={b}`` for the inline
``in: query, required: true`` parameters, path item's then operation's, in declared order; ``$ref`` not
followed), as APIM templates them on import. Optional query parameters are undeclared: APIM forwards them.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from importer.model import Mode

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


@cache
def _load(name: str) -> Any:
    return json.loads(resources.files(__name__).joinpath(name).read_text(encoding="utf-8"))


def document(mode: Mode) -> dict[str, Any]:
    """The mode's OpenAPI 3.0 document (a fresh copy: callers may not change the cached one)."""
    doc = _load(f"{Mode(mode).value}.json")
    return dict(copy.deepcopy(doc))


@cache
def document_text(mode: Mode) -> str:
    """The document as compact JSON text: what the API import sends inline. No ``servers``: the
    API's serviceUrl and the policy's set-backend-service say where requests go."""
    doc = document(mode)
    doc.pop("servers", None)
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True)


def _required_query(params: Any) -> list[str]:
    names: list[str] = []
    for p in params or ():
        if isinstance(p, dict) and p.get("in") == "query" and p.get("required") is True:
            names.append(str(p["name"]))
    return names


def operations(doc: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(METHOD, urlTemplate) for every operation in ``doc``, sorted."""
    out: set[tuple[str, str]] = set()
    for path, item in (doc.get("paths") or {}).items():
        shared = _required_query(item.get("parameters"))
        for method, op in item.items():
            if method not in _METHODS:
                continue
            names = list(dict.fromkeys(shared + _required_query(op.get("parameters"))))
            query = "&".join(f"{n}={{{n}}}" for n in names)
            out.add((method.upper(), f"{path}?{query}" if query else path))
    return tuple(sorted(out))


def exclusions() -> dict[str, list[dict[str, str]]]:
    """Operations of the official per-mode sets that the project's documents leave out, with why."""
    data = _load("exclusions.json")
    return {str(k): [dict(e) for e in v] for k, v in data.items()}
