"""Microsoft's official per-mode operation sets, from tests/data/official_operations.json (facts taken
from Azure-Samples/AI-Gateway's documents by scripts/official_operations.py; source and commit in the
file). `document(mode)` rebuilds a minimal OpenAPI document: the same paths, methods, operationIds and
parameters (name, in, required) as the official one, without schemas or descriptions."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from importer.model import Mode

DATA = Path(__file__).parent / "data" / "official_operations.json"


@cache
def _data() -> dict[str, Any]:
    return dict(json.loads(DATA.read_text(encoding="utf-8")))


def source() -> dict[str, str]:
    return dict(_data()["source"])


def file_name(mode: Mode) -> str:
    """The official document's file name in AI-Gateway's specs folder."""
    return str(_data()["modes"][Mode(mode).value]["file"])


def document(mode: Mode) -> dict[str, Any]:
    m = _data()["modes"][Mode(mode).value]
    paths = {path: {k: ({**v, "responses": {"200": {"description": "OK"}}} if k != "parameters" else v)
                    for k, v in item.items()} for path, item in m["paths"].items()}
    return {"openapi": m["openapi"], "info": {"title": m["title"], "version": m["version"]},
            "servers": m["servers"], "paths": paths}


def document_text(mode: Mode) -> str:
    return json.dumps(document(mode), separators=(",", ":"))
