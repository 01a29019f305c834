"""The project's OpenAPI documents: coverage of the official per-mode sets, and the operation rule."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from importer import openapi
from importer.model import Mode
from tests import official

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _norm(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _method_paths(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), _norm(p)) for p, item in doc["paths"].items() for m in item if m in METHODS}


def test_official_operation_sets_are_checked_in_with_their_source() -> None:
    # Without them the coverage tests would prove nothing; their counts are those of the documents.
    counts = {m: len(_method_paths(official.document(m))) for m in Mode}
    assert counts == {Mode.AZURE_OPENAI: 49, Mode.AZURE_AI: 5, Mode.AZURE_OPENAI_V1: 60}
    src = official.source()
    assert re.fullmatch(r"[0-9a-f]{40}", src["commit"]) and src["commit"] in src["url"]


@pytest.mark.parametrize("mode", list(Mode))
def test_documents_cover_the_official_set_or_list_each_exclusion(mode: Mode) -> None:
    want = _method_paths(official.document(mode))
    have = _method_paths(openapi.document(mode))
    excluded = {(e["method"].upper(), _norm(e["path"])) for e in openapi.exclusions()[mode.value]}
    assert want - have == excluded, "every official operation is imported or excluded with a reason"
    assert not excluded & have, "an excluded operation is still in the document"
    assert all(e["reason"].strip() for e in openapi.exclusions()[mode.value])
    added = {(e["method"].upper(), _norm(e["path"])) for e in openapi.additions()[mode.value]}
    assert have - want == added, "every operation beyond the official set is a listed addition"


def test_exclusions_and_additions_name_every_mode() -> None:
    assert set(openapi.exclusions()) == {m.value for m in Mode} == set(openapi.additions())


@pytest.mark.parametrize("mode", list(Mode))
def test_additions_are_in_the_document_each_with_the_sdk_call_that_needs_it(mode: Mode) -> None:
    paths = openapi.document(mode)["paths"]
    have = {(m.upper(), p) for p, item in paths.items() for m in item if m in METHODS}
    for e in openapi.additions()[mode.value]:
        assert (e["method"], e["path"]) in have and e["call"].strip()


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


# ---------------------------------------------------------------------------------------------
# $ref: local refs are followed (linked official documents use them); the stand-in has the same rule

P = "#/components/parameters/"
REF_CASES: list[tuple[str, dict[str, Any], tuple[tuple[str, str], ...]]] = [
    ("operation-ref", {"paths": {"/a": {"get": {"parameters": [{"$ref": P + "v"}]}}},
                       "components": {"parameters": {"v": {"name": "api-version", "in": "query",
                                                           "required": True}}}},
     (("GET", "/a?api-version={api-version}"),)),
    ("path-item-ref", {"paths": {"/a": {"parameters": [{"$ref": P + "v"}], "post": {}, "get": {}}},
                       "components": {"parameters": {"v": {"name": "v", "in": "query", "required": True}}}},
     (("GET", "/a?v={v}"), ("POST", "/a?v={v}"))),
    ("ref-to-ref", {"paths": {"/a": {"get": {"parameters": [{"$ref": P + "alias"}]}}},
                    "components": {"parameters": {"alias": {"$ref": P + "v"},
                                                  "v": {"name": "v", "in": "query", "required": True}}}},
     (("GET", "/a?v={v}"),)),
    ("optional-ref", {"paths": {"/a": {"get": {"parameters": [{"$ref": P + "o"}]}}},
                      "components": {"parameters": {"o": {"name": "o", "in": "query", "required": False}}}},
     (("GET", "/a"),)),
    ("path-and-header-refs", {"paths": {"/d/{id}": {"get": {"parameters": [{"$ref": P + "id"},
                                                                          {"$ref": P + "h"}]}}},
                              "components": {"parameters": {
                                  "id": {"name": "id", "in": "path", "required": True},
                                  "h": {"name": "h", "in": "header", "required": True}}}},
     (("GET", "/d/{id}"),)),
    ("escaped-pointer", {"paths": {"/a": {"get": {"parameters": [{"$ref": P + "a~1b~0c"}]}}},
                         "components": {"parameters": {"a/b~c": {"name": "x", "in": "query",
                                                                 "required": True}}}},
     (("GET", "/a?x={x}"),)),
    ("operation-overrides-path-item", {"paths": {"/a": {
        "parameters": [{"$ref": P + "v"}, {"name": "w", "in": "query", "required": True}],
        "get": {"parameters": [{"name": "v", "in": "query", "required": False}]},
        "put": {"parameters": [{"$ref": P + "w2"}]}}},
        "components": {"parameters": {"v": {"name": "v", "in": "query", "required": True},
                                      "w2": {"name": "w", "in": "query", "required": True}}}},
     (("GET", "/a?w={w}"), ("PUT", "/a?v={v}&w={w}"))),
    ("missing-target", {"paths": {"/a": {"get": {"parameters": [{"$ref": P + "nope"}]}}}}, (("GET", "/a"),)),
    ("remote-ref-ignored", {"paths": {"/a": {"get": {"parameters": [{"$ref": "other.json#/v"}]}}},
                            "v": {"name": "v", "in": "query", "required": True}},
     (("GET", "/a"),)),
]
CYCLE: dict[str, Any] = {"paths": {"/a": {"get": {"parameters": [{"$ref": P + "x"}]}}},
                         "components": {"parameters": {"x": {"$ref": P + "y"}, "y": {"$ref": P + "x"}}}}


@pytest.mark.parametrize(("doc", "expected"), [(d, e) for _, d, e in REF_CASES],
                         ids=[c[0] for c in REF_CASES])
def test_local_refs_are_followed(doc: dict[str, Any], expected: tuple[tuple[str, str], ...]) -> None:
    assert openapi.operations(doc) == expected


def test_a_ref_cycle_yields_no_parameter() -> None:
    assert openapi.operations(CYCLE) == (("GET", "/a"),)


def _stand_in(doc: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    from armsim.apim import derive_operations

    return tuple(sorted((p["method"], p["urlTemplate"]) for _, p in derive_operations(doc)))


@pytest.mark.parametrize("doc", [d for d, _ in RULE_CASES] + [d for _, d, _ in REF_CASES])
def test_the_stand_in_derives_the_same_operations(doc: dict[str, Any]) -> None:
    assert openapi.operations(doc) == _stand_in(doc)


@pytest.mark.parametrize("mode", list(Mode))
def test_official_documents_operations_as_the_stand_in_derives_them(mode: Mode) -> None:
    doc = official.document(mode)
    ops = openapi.operations(doc)
    assert ops == _stand_in(doc)
    if mode is not Mode.AZURE_OPENAI_V1:  # api-version comes through a $ref in the Azure AI document
        assert all("api-version={api-version}" in t for m, t in ops if t.startswith(("/chat", "/deploy")))


def test_official_azure_openai_document_names_the_deployment_as_the_policy_reads_it() -> None:
    # The allow-list reads MatchedParameters["deployment-id"] (docs/policy.md) with either document.
    ops = openapi.operations(official.document(Mode.AZURE_OPENAI))
    deployment_paths = [t for _, t in ops if t.startswith("/deployments/")]
    assert deployment_paths and all(t.startswith("/deployments/{deployment-id}/") for t in deployment_paths)
