"""Importing the official OpenAPI document by link (IMPORTER_OPENAPI=official) instead of the bundled one.

The documents are served by the stand-in itself (``sim.add_file``) and IMPORTER_OPENAPI_BASE_URL points
at ``{sim.url}/_armsim/files/...``: the importer downloads them to know their operations, the stand-in
imports them from the same link. Every scenario ends with a second run that writes nothing.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from importer import openapi
from importer.azure import fetch
from importer.identity import api_id
from importer.model import (
    OFFICIAL_OPENAPI_FILES,
    AccountRef,
    ImporterError,
    LinkedDocument,
    Mode,
    PermanentError,
    TransientError,
)
from tests import official
from tests.fixtures.world import AOAI, FOUNDRY, SUB, World

# A small hand-written document: a required query parameter and the deployment id come through $ref
# (path item and operation level), plus an optional query parameter that must not join the template.
SMALL_DOC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "small", "version": "1"},
    "paths": {
        "/deployments/{deployment-id}/chat/completions": {
            "parameters": [{"$ref": "#/components/parameters/deployment"}],
            "post": {"operationId": "chat", "parameters": [
                {"$ref": "#/components/parameters/apiVersion"},
                {"name": "trace", "in": "query", "required": False, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}}},
        },
        "/deployments/{deployment-id}/embeddings": {
            "parameters": [{"$ref": "#/components/parameters/deployment"},
                           {"$ref": "#/components/parameters/apiVersion"}],
            "post": {"operationId": "embed", "responses": {"200": {"description": "OK"}}},
        },
        "/models": {
            "get": {"operationId": "models", "parameters": [{"$ref": "#/components/parameters/apiVersion"}],
                    "responses": {"200": {"description": "OK"}}},
        },
    },
    "components": {"parameters": {
        "deployment": {"name": "deployment-id", "in": "path", "required": True, "schema": {"type": "string"}},
        "apiVersion": {"$ref": "#/components/parameters/apiVersionValue"},
        "apiVersionValue": {"name": "api-version", "in": "query", "required": True,
                            "schema": {"type": "string"}},
    }},
}
SMALL_OPERATIONS = {
    ("GET", "/models?api-version={api-version}"),
    ("POST", "/deployments/{deployment-id}/chat/completions?api-version={api-version}"),
    ("POST", "/deployments/{deployment-id}/embeddings?api-version={api-version}"),
}


def _serve(world: World, folder: str, docs: dict[str, str]) -> str:
    """Serve ``docs`` (file name → text) under a folder of the stand-in; returns the base URL."""
    for name, text in docs.items():
        world.sim.add_file(f"{folder}/{name}", text)
    return f"{world.sim.url}/_armsim/files/{folder}/"


def _official(world: World, base: str, **env: str) -> Any:
    return world.reconciler(IMPORTER_OPENAPI="official", IMPORTER_OPENAPI_BASE_URL=base, **env)


def _operations(world: World, ref: AccountRef, mode: Mode = Mode.AZURE_OPENAI) -> set[tuple[str, str]]:
    ops = world.apim_client().api_operation.list_by_api(world.rg, world.svc, api_id(ref, mode))
    return {(o.method.upper(), o.url_template) for o in ops}


def _description(world: World, ref: AccountRef, mode: Mode = Mode.AZURE_OPENAI) -> str:
    return str(world.apim_client().api.get(world.rg, world.svc, api_id(ref, mode)).description)


def _assert_noop(world: World, rec: Any, ref: AccountRef, **kw: Any) -> None:
    assert rec.reconcile(ref, dry_run=True, **kw).plan.empty
    world.sim.log.clear()
    again = rec.reconcile(ref, **kw)
    assert again.error is None and again.outcome == "noop" and world.writes() == 0, again.to_json()
    assert world.reads() <= 8, world.sim.log.as_dicts()  # the download is not an ARM read


def test_small_document_by_link_creates_exactly_its_operations(world: World) -> None:
    ref = AccountRef.parse(AOAI)
    base = _serve(world, "small", {"AIFoundryOpenAI.json": json.dumps(SMALL_DOC)})
    rec = _official(world, base)
    run = rec.reconcile(ref)
    assert run.error is None and run.outcome == "applied", run.error
    api = next(c for c in run.plan.changes if c.kind == "api")
    assert f"document: {base}AIFoundryOpenAI.json" in api.diff and "operations: 3" in api.diff
    assert _operations(world, ref) == SMALL_OPERATIONS
    lines = _description(world, ref).splitlines()
    assert lines[-2] == f"OpenAPI document: {base}AIFoundryOpenAI.json"
    assert lines[-1].startswith("[managed-by=apim-ai-importer account=")
    _assert_noop(world, rec, ref)


def test_switching_bundled_to_official_reimports_then_nothing(world: World) -> None:
    from azure.mgmt.cognitiveservices import models

    ref = AccountRef.parse(AOAI)
    base = _serve(world, "switch", {"AIFoundryOpenAI.json": json.dumps(SMALL_DOC)})
    rec = world.reconciler(IMPORTER_OPENAPI_BASE_URL=base)  # IMPORTER_OPENAPI: bundled, the default
    assert rec.reconcile(ref).outcome == "applied"
    bundled = set(openapi.operations(openapi.document(Mode.AZURE_OPENAI)))
    assert _operations(world, ref) == bundled and "OpenAPI document" not in _description(world, ref)
    _assert_noop(world, rec, ref)

    # The tag chooses the official document for this account.
    world.clients.cognitive(SUB).accounts.begin_update("rg-ai", ref.name, models.Account(
        tags={"apim-importer-openapi": "official"})).result()
    plan = rec.reconcile(ref, dry_run=True).plan
    assert [(c.action.value, c.kind) for c in plan.changes] == [("update", "api")]
    diff = plan.changes[0].diff
    assert any(line.startswith("description:") and "OpenAPI document: " in line for line in diff)
    assert any(line.startswith("operation: - ") for line in diff)
    world.sim.log.clear()
    run = rec.reconcile(ref)
    # One change, two writes: the import (which takes the description from the document, which has
    # none), then the API's properties again, so the ownership mark is back before the run ends.
    assert run.outcome == "applied" and world.writes() == 2, run.to_json()
    assert [e.method for e in world.sim.log.entries if e.method == "PUT"] == ["PUT", "PUT"]
    assert _description(world, ref).splitlines()[-1].startswith("[managed-by=apim-ai-importer account=")
    assert _operations(world, ref) == SMALL_OPERATIONS
    _assert_noop(world, rec, ref)

    # And back, for one run, through the override: the bundled document again.
    run = rec.reconcile(ref, overrides={"openapi": "bundled"})
    assert run.outcome == "applied" and _operations(world, ref) == bundled
    assert "OpenAPI document" not in _description(world, ref)
    _assert_noop(world, rec, ref, overrides={"openapi": "bundled"})


def test_operation_deleted_by_hand_is_found_and_repaired_in_link_mode(world: World) -> None:
    ref = AccountRef.parse(AOAI)
    base = _serve(world, "drift", {"AIFoundryOpenAI.json": json.dumps(SMALL_DOC)})
    rec = _official(world, base)
    assert rec.reconcile(ref).outcome == "applied"
    client = world.apim_client()
    client.api_operation.delete(world.rg, world.svc, api_id(ref), "embed", if_match="*")
    assert len(_operations(world, ref)) == 2

    plan = rec.reconcile(ref, dry_run=True).plan
    assert [(c.action.value, c.kind) for c in plan.changes] == [("update", "api")]
    # Compared by method and path in link mode: the query part is not in the diff line.
    assert plan.changes[0].diff == ("operation: + POST /deployments/{deployment-id}/embeddings",)
    run = rec.reconcile(ref)
    assert run.outcome == "applied", run.error
    assert _operations(world, ref) == SMALL_OPERATIONS
    _assert_noop(world, rec, ref)


@pytest.mark.parametrize("mode", list(Mode))
def test_official_documents_import_by_link_and_are_idempotent(world: World, mode: Mode) -> None:
    # The official document's operation set (tests/data/official_operations.json), served by link.
    name, text = OFFICIAL_OPENAPI_FILES[mode], official.document_text(mode)
    assert name == official.file_name(mode)
    ref = AccountRef.parse(FOUNDRY if mode is Mode.AZURE_AI else AOAI)
    base = _serve(world, "official", {name: text})
    rec = _official(world, base, IMPORTER_MODE=mode.value)
    run = rec.reconcile(ref)
    assert run.error is None and run.outcome == "applied", run.error
    expected = set(openapi.operations(json.loads(text)))
    assert _operations(world, ref, mode) == expected and len(expected) >= 5
    assert f"OpenAPI document: {base}{name}" in _description(world, ref, mode)
    _assert_noop(world, rec, ref)


# ---------------------------------------------------------------------------------------------
# Refusals: a clear error and nothing written


def _failed(world: World, run: Any, kind: str, *needles: str) -> None:
    assert run.outcome == "failed" and run.error_kind == kind, run.to_json()
    for needle in needles:
        assert needle in run.error, (needle, run.error)
    assert world.writes() == 0


def test_bad_tag_value_is_refused(world: World) -> None:
    from azure.mgmt.cognitiveservices import models

    ref = AccountRef.parse(AOAI)
    world.clients.cognitive(SUB).accounts.begin_update("rg-ai", ref.name, models.Account(
        tags={"apim-importer-openapi": "latest"})).result()
    world.sim.log.clear()
    run = world.reconciler().reconcile(ref)
    _failed(world, run, "permanent", "tag apim-importer-openapi='latest'", f"on account {ref.name}",
            "bundled, official")


@pytest.mark.parametrize("base", [
    "http://raw.githubusercontent.com/specs/",  # http to anything but the local stand-in
    "https://mirror.example.com/specs",  # no trailing '/'
    "https://mirror.example.com/a b/",
    "https://mirror.example.com/a\"b/",
    "https://mirror.example.com/<x>/",
    "https://mirror.example.com/?a=1&b=2/",
    "https://user:pw@mirror.example.com/specs/",
    "file:///etc/",
])
def test_bad_base_url_is_refused(world: World, base: str) -> None:
    run = world.reconciler(IMPORTER_OPENAPI="official", IMPORTER_OPENAPI_BASE_URL=base).reconcile(
        AccountRef.parse(AOAI))
    _failed(world, run, "permanent", "setting IMPORTER_OPENAPI_BASE_URL=")


def test_missing_document_is_a_permanent_error_naming_url_and_setting(world: World) -> None:
    base = f"{world.sim.url}/_armsim/files/nowhere/"
    run = _official(world, base).reconcile(AccountRef.parse(AOAI))
    _failed(world, run, "permanent", f"{base}AIFoundryOpenAI.json", "IMPORTER_OPENAPI_BASE_URL",
            "HTTP 404")


def test_document_that_is_not_openapi_json_is_refused(world: World) -> None:
    base = _serve(world, "yaml", {"AIFoundryOpenAI.json": "openapi: 3.0.0\npaths: {}\n"})
    run = _official(world, base).reconcile(AccountRef.parse(AOAI))
    _failed(world, run, "permanent", "not JSON", f"{base}AIFoundryOpenAI.json")


def test_unreachable_host_is_transient(world: World) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}/specs/"
    run = _official(world, base).reconcile(AccountRef.parse(AOAI))
    _failed(world, run, "transient", f"{base}AIFoundryOpenAI.json", "network error")


def test_bundled_mode_never_downloads(world: World) -> None:
    # The default base URL is on GitHub: with bundled documents nothing is fetched (so this runs
    # offline), and a no-op stays a no-op.
    calls: list[str] = []
    rec = world.reconciler(documents=calls.append)
    ref = AccountRef.parse(AOAI)
    assert rec.reconcile(ref).outcome == "applied"
    _assert_noop(world, rec, ref)
    assert calls == []


# ---------------------------------------------------------------------------------------------
# The download and its cache, against a plain local HTTP server


Route = tuple[int, dict[str, str], bytes]


@pytest.fixture
def web() -> Iterator[tuple[str, dict[str, Route], list[str]]]:
    """A local HTTP server: (base URL, path → (status, headers, body), paths requested)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    routes: dict[str, Route] = {}
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            hits.append(self.path)
            status, headers, body = routes.get(self.path, (404, {}, b"not found"))
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                if value:  # an empty value leaves the header out (the body then ends at close)
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes, hits
    server.shutdown()
    server.server_close()


def _doc(**extra: Any) -> bytes:
    return json.dumps({**SMALL_DOC, **extra}).encode()


@pytest.mark.parametrize(("route", "kind", "needle"), [
    ((503, {}, b"busy"), "transient", "HTTP 503"),
    ((429, {"Retry-After": "1"}, b"slow down"), "transient", "HTTP 429"),
    ((403, {}, b"no"), "permanent", "HTTP 403"),
    ((200, {}, b"<html>not json</html>"), "permanent", "not JSON"),
    ((200, {}, json.dumps({"swagger": "2.0", "paths": {"/a": {"get": {}}}}).encode()), "permanent",
     "not an OpenAPI 3 document"),
    ((200, {}, json.dumps({"openapi": "3.0.0", "paths": {}}).encode()), "permanent", "no operations"),
    ((200, {"Content-Length": str(fetch.MAX_BYTES + 1)}, b"{}"), "permanent", "over the limit"),
    ((200, {"Content-Length": ""}, b" " * fetch.MAX_BYTES + b"{}"), "permanent", "over the limit"),
    ((302, {"Location": "http://example.com/doc.json"}, b""), "permanent", "refused"),
])
def test_download_refusals_say_what_kind_and_why(web: Any, route: Route, kind: str, needle: str) -> None:
    base, routes, _ = web
    routes["/doc.json"] = route
    with pytest.raises(ImporterError) as err:
        fetch.download(f"{base}/doc.json")
    assert err.value.kind == kind and needle in str(err.value), str(err.value)
    assert f"{base}/doc.json" in str(err.value) and "IMPORTER_OPENAPI_BASE_URL" in str(err.value)


def test_download_follows_a_local_redirect_and_derives_operations(web: Any) -> None:
    base, routes, _ = web
    routes["/old.json"] = (301, {"Location": f"{base}/new.json"}, b"")
    routes["/new.json"] = (200, {"Content-Type": "text/plain; charset=utf-8"}, b"\xef\xbb\xbf" + _doc())
    got = fetch.download(f"{base}/old.json")
    assert got.url == f"{base}/old.json" and set(got.operations) == SMALL_OPERATIONS


def test_cache_keeps_documents_an_hour_and_failures_briefly(web: Any) -> None:
    base, routes, hits = web
    now = [0.0]
    cache = fetch.Cache(clock=lambda: now[0])
    routes["/doc.json"] = (200, {}, _doc())
    url = f"{base}/doc.json"
    assert cache.get(url) == cache.get(url) and hits == ["/doc.json"]
    now[0] += fetch.TTL_S - 1
    cache.get(url)
    assert len(hits) == 1
    now[0] += 2
    cache.get(url)
    assert len(hits) == 2

    routes["/gone.json"] = (404, {}, b"")
    for _ in range(3):
        with pytest.raises(PermanentError, match="HTTP 404"):
            cache.get(f"{base}/gone.json")
    assert hits.count("/gone.json") == 1
    now[0] += fetch.PERMANENT_FAILURE_TTL_S + 1
    routes["/gone.json"] = (200, {}, _doc())
    assert set(cache.get(f"{base}/gone.json").operations) == SMALL_OPERATIONS

    routes["/busy.json"] = (503, {}, b"")
    with pytest.raises(TransientError):
        cache.get(f"{base}/busy.json")
    now[0] += fetch.TRANSIENT_FAILURE_TTL_S + 1
    routes["/busy.json"] = (200, {}, _doc())
    assert cache.get(f"{base}/busy.json").url == f"{base}/busy.json"


def test_the_reconciler_downloads_through_the_documents_it_is_given(world: World) -> None:
    # The fetch is injected: official mode asks the reconciler's documents for each link, once per run.
    ref = AccountRef.parse(AOAI)
    base = "https://mirror.example.com/specs/"
    asked: list[str] = []

    def documents(url: str) -> LinkedDocument:
        asked.append(url)
        return LinkedDocument(url, tuple(sorted(SMALL_OPERATIONS)))

    rec = world.reconciler(documents=documents, IMPORTER_OPENAPI="official", IMPORTER_OPENAPI_BASE_URL=base)
    assert rec.reconcile(ref, dry_run=True).outcome == "planned"
    assert asked == [f"{base}AIFoundryOpenAI.json"]


def test_concurrent_runs_share_one_download() -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    calls: list[str] = []
    gate = threading.Event()

    def slow(url: str) -> Any:
        calls.append(url)
        gate.wait(5)
        return LinkedDocument(url, (("GET", "/a"),))

    cache = fetch.Cache(load=slow)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.get, "https://x.example.com/a.json") for _ in range(8)]
        gate.set()
        results = {f.result() for f in futures}
    assert calls == ["https://x.example.com/a.json"] and len(results) == 1
