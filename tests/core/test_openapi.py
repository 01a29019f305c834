"""The project's OpenAPI documents: coverage of the official per-mode sets, and the operation rule."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from importer import openapi
from importer.model import Mode

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "specs"
OFFICIAL = {
    Mode.AZURE_OPENAI: "AIFoundryOpenAI.json",
    Mode.AZURE_AI: "AIFoundryAzureAI.json",
    Mode.AZURE_OPENAI_V1: "AIFoundryOpenAIV1.json",
}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _norm(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _method_paths(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), _norm(p)) for p, item in doc["paths"].items() for m in item if m in METHODS}


def test_reference_specs_are_beside_the_clone() -> None:
    # CI keeps them beside the clone; without them the coverage test would prove nothing.
    missing = [f for f in OFFICIAL.values() if not (SPECS / f).is_file()]
    assert not missing, f"official specs missing under {SPECS}: {missing}"


@pytest.mark.parametrize("mode", list(Mode))
def test_documents_cover_the_official_set_or_list_each_exclusion(mode: Mode) -> None:
    official = json.loads((SPECS / OFFICIAL[mode]).read_text(encoding="utf-8"))
    want = _method_paths(official)
    have = _method_paths(openapi.document(mode))
    excluded = {(e["method"].upper(), _norm(e["path"])) for e in openapi.exclusions()[mode.value]}
    assert want - have == excluded, "every official operation is imported or excluded with a reason"
    assert not excluded & have, "an excluded operation is still in the document"
    assert all(e["reason"].strip() for e in openapi.exclusions()[mode.value])


def test_exclusions_name_every_mode() -> None:
    assert set(openapi.exclusions()) == {m.value for m in Mode}


@pytest.mark.parametrize("mode", list(Mode))
def test_documents_are_compact_openapi_3(mode: Mode) -> None:
    doc = openapi.document(mode)
    assert doc["openapi"].startswith("3.0")
    assert "servers" not in doc and "components" not in doc
    text = openapi.document_text(mode)
    assert json.loads(text) == doc
    assert "description\":\"OK" in text  # the only description: the mandatory response one
    ids = [op["operationId"] for item in doc["paths"].values() for m, op in item.items() if m in METHODS]
    assert len(ids) == len(set(ids)), "operationIds are unique"
    for path, item in doc["paths"].items():
        for m, op in item.items():
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{([^}]+)\}", path)), f"{m} {path}: path parameters declared"


def test_azure_openai_operations_carry_deployment_and_api_version() -> None:
    ops = set(openapi.operations(openapi.document(Mode.AZURE_OPENAI)))
    assert ("POST", "/deployments/{deployment-id}/chat/completions?api-version={api-version}") in ops
    assert ("POST", "/deployments/{deployment-id}/embeddings?api-version={api-version}") in ops
    assert ("DELETE", "/responses/{response_id}") in ops  # no api-version required upstream


def test_v1_operations_have_no_query_template() -> None:
    ops = openapi.operations(openapi.document(Mode.AZURE_OPENAI_V1))
    assert ("POST", "/chat/completions") in ops
    assert all("?" not in t for _, t in ops)


def test_azure_ai_operations() -> None:
    assert openapi.operations(openapi.document(Mode.AZURE_AI)) == (
        ("GET", "/info?api-version={api-version}"),
        ("POST", "/chat/completions?api-version={api-version}"),
        ("POST", "/embeddings?api-version={api-version}"),
        ("POST", "/images/embeddings?api-version={api-version}"),
        ("POST", "/images/generations?api-version={api-version}"),
    )


RULE_CASES: list[tuple[dict[str, Any], tuple[tuple[str, str], ...]]] = [
    ({"paths": {"/a": {"get": {}}}}, (("GET", "/a"),)),
    ({"paths": {"/a/{x}": {"post": {"parameters": [
        {"name": "x", "in": "path", "required": True},
        {"name": "v", "in": "query", "required": True},
        {"name": "opt", "in": "query", "required": False},
        {"name": "w", "in": "query", "required": True},
        {"name": "h", "in": "header", "required": True}]}}}},
     (("POST", "/a/{x}?v={v}&w={w}"),)),
    ({"paths": {"/a": {"parameters": [{"name": "v", "in": "query", "required": True}],
                       "get": {"parameters": [{"name": "z", "in": "query", "required": True}]},
                       "delete": {}}}},
     (("DELETE", "/a?v={v}"), ("GET", "/a?v={v}&z={z}"))),
    ({"paths": {"/a": {"get": {"parameters": [{"$ref": "#/components/parameters/v"}]},
                       "summary": "not a method"}}},
     (("GET", "/a"),)),
]


@pytest.mark.parametrize(("doc", "expected"), RULE_CASES)
def test_operation_rule(doc: dict[str, Any], expected: tuple[tuple[str, str], ...]) -> None:
    assert openapi.operations(doc) == expected


def test_document_returns_a_copy() -> None:
    doc = openapi.document(Mode.AZURE_AI)
    doc["paths"].clear()
    assert openapi.document(Mode.AZURE_AI)["paths"]
