"""OpenAPI documents the importer imports, one per mode: the project's own. Pure; package data, cached.

Operation rule (the ARM stand-in repeats it): (METHOD, path + ``?a={a}&b={b}`` for the required query
parameters), as APIM templates them on import. Parameters are the path item's, then the operation's; an
operation's parameter replaces the path item's of the same name and location; local ``$ref``s
(``#/components/parameters/...``) are followed, anything else is ignored. Optional query parameters are
undeclared: APIM forwards them. The project's own documents use no ``$ref``; linked (official) ones do.
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


_MAX_REF_DEPTH = 32


def _resolve(doc: dict[str, Any], item: Any) -> dict[str, Any]:
    """``item``, or what its local ``$ref`` (a JSON pointer into ``doc``) points at; {} when that
    is missing, not local, or a chain of refs longer than _MAX_REF_DEPTH (a cycle)."""
    for _ in range(_MAX_REF_DEPTH):
        if not isinstance(item, dict):
            return {}
        ref = item.get("$ref")
        if ref is None:
            return item
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return {}
        node: Any = doc
        for part in ref[2:].split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            node = node.get(key) if isinstance(node, dict) else None
        item = node
    return {}


def _required_query(doc: dict[str, Any], shared: Any, own: Any) -> list[str]:
    """Names of the required query parameters, keyed like APIM by (name, in): the operation's
    parameter replaces the path item's, keeping its place."""
    params: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*(shared if isinstance(shared, list) else ()), *(own if isinstance(own, list) else ())]:
        p = _resolve(doc, raw)
        if p.get("name") and p.get("in"):
            params[(str(p["name"]), str(p["in"]))] = p
    return [name for (name, where), p in params.items() if where == "query" and p.get("required")]


def operations(doc: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(METHOD, urlTemplate) for every operation in ``doc``, sorted."""
    out: set[tuple[str, str]] = set()
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method in _METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            query = "&".join(f"{n}={{{n}}}" for n in _required_query(doc, item.get("parameters"),
                                                                     op.get("parameters")))
            out.add((method.upper(), f"{path}?{query}" if query else path))
    return tuple(sorted(out))


def exclusions() -> dict[str, list[dict[str, str]]]:
    """Operations of the official per-mode sets that the project's documents leave out, with why."""
    data = _load("exclusions.json")
    return {str(k): [dict(e) for e in v] for k, v in data.items()}


def additions() -> dict[str, list[dict[str, str]]]:
    """Operations the project's documents add beyond the official per-mode sets: calls the service
    serves and the SDKs make (``call`` names one), though Microsoft's documents lack them."""
    data = _load("additions.json")
    return {str(k): [dict(e) for e in v] for k, v in data.items()}
