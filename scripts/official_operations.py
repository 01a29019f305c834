"""Write tests/data/official_operations.json: the facts the coverage tests need from Microsoft's
official per-mode OpenAPI documents, so the tests run from a clone alone.

Usage: python scripts/official_operations.py DIR [--commit SHA] > tests/data/official_operations.json
where DIR holds AIFoundryOpenAI.json, AIFoundryAzureAI.json and AIFoundryOpenAIV1.json from a checkout
of Azure-Samples/AI-Gateway (folder modules/apim/v3/specs/).

Kept per mode: the document's openapi version, title, version and servers; per path, its parameters;
per operation, its operationId and parameters. Parameters are reduced to name/in/required with local
``$ref``s resolved. Schemas, descriptions and bodies are left out: they are not facts the tests use.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

FILES = {"azure-openai": "AIFoundryOpenAI.json", "azure-ai": "AIFoundryAzureAI.json",
         "azure-openai-v1": "AIFoundryOpenAIV1.json"}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
REPOSITORY = "Azure-Samples/AI-Gateway"
FOLDER = "modules/apim/v3/specs"


def _resolve(doc: dict[str, Any], item: Any) -> dict[str, Any]:
    # Deliberately not importer.openapi's resolver: this script writes the reference the coverage
    # tests hold the importer's reading against, so sharing it would let a bug agree with itself.
    seen = 0
    while isinstance(item, dict) and "$ref" in item and seen < 32:
        node: Any = doc
        for part in str(item["$ref"]).removeprefix("#/").split("/"):
            node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
        item, seen = node, seen + 1
    return item if isinstance(item, dict) else {}


def _params(doc: dict[str, Any], raw: Any) -> list[dict[str, Any]]:
    out = []
    for p in (_resolve(doc, r) for r in (raw if isinstance(raw, list) else ())):
        if p.get("name") and p.get("in"):
            out.append({"name": p["name"], "in": p["in"], "required": bool(p.get("required"))})
    return out


def skeleton(doc: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, item in doc.get("paths", {}).items():
        entry: dict[str, Any] = {}
        if shared := _params(doc, item.get("parameters")):
            entry["parameters"] = shared
        for method in METHODS:
            if isinstance(op := item.get(method), dict):
                entry[method] = {"operationId": op.get("operationId", ""),
                                 "parameters": _params(doc, op.get("parameters"))}
        paths[path] = entry
    return {"openapi": doc.get("openapi"), "title": doc["info"].get("title"),
            "version": doc["info"].get("version"), "servers": doc.get("servers", []), "paths": paths}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="folder holding the three AIFoundry*.json documents")
    parser.add_argument("--commit", default="561d71992bd660af94efc76a8f2f21df0e6ac8e5",
                        help="the AI-Gateway commit the documents come from")
    args = parser.parse_args(argv)
    modes = {mode: {"file": name, **skeleton(json.loads((args.dir / name).read_text(encoding="utf-8")))}
             for mode, name in FILES.items()}
    out = {"source": {"repository": REPOSITORY, "folder": FOLDER, "commit": args.commit,
                      "url": f"https://github.com/{REPOSITORY}/tree/{args.commit}/{FOLDER}",
                      "licence": "MIT (Azure-Samples/AI-Gateway)",
                      "generated_by": "scripts/official_operations.py"},
           "modes": modes}
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
