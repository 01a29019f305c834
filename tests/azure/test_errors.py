"""The error translation (importer/azure/errors.py) and the one transient-status table, on real
azure-core exceptions raised from real HTTP answers (a local server), as the management SDKs raise them."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from azure.core import PipelineClient
from azure.core.exceptions import AzureError, HttpResponseError, map_error
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest
from azure.mgmt.core.exceptions import ARMErrorFormat

from importer.azure.errors import TRANSIENT_STATUS, arm_call, is_transient_status, translate
from importer.model import ConflictError, ImporterError, NotFound, PermanentError, TransientError


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """Answers GET /{status}/{code} with that status and an ARM error body naming that code."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            _, status, code = self.path.split("/")
            body = json.dumps({"error": {"code": code, "message": f"the {code} message"}}).encode()
            self.send_response(int(status))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _raised(url: str) -> AzureError:
    """The exception a management SDK raises for the answer at ``url`` (the error map the generated
    operations of azure-mgmt-apimanagement use, then HttpResponseError with ARM's error format)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
    )

    error_map = {401: ClientAuthenticationError, 404: ResourceNotFoundError, 409: ResourceExistsError,
                 412: ResourceModifiedError}
    client: PipelineClient[Any, Any] = PipelineClient("", policies=[RetryPolicy.no_retries()])
    try:
        with client:
            response = client.send_request(HttpRequest("GET", url))
            map_error(response.status_code, response, error_map)
            raise HttpResponseError(response=response, error_format=ARMErrorFormat)
    except AzureError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(("status", "code", "kind", "text"), [
    (404, "ResourceNotFound", NotFound, "get x: not found"),
    (404, "ResourceGroupNotFound", NotFound, "get x: the ResourceGroupNotFound message"),
    (401, "InvalidAuthenticationToken", PermanentError,
     "authentication failed; check the importer's identity (status 401)"),
    (412, "PreconditionFailed", ConflictError, "changed concurrently (412); will re-read and re-plan"),
    (409, "Conflict", ConflictError, "get x: conflict (Conflict)"),
    (403, "AuthorizationFailed", PermanentError,
     "forbidden (AuthorizationFailed); the importer's identity lacks"),
    (400, "ValidationError", PermanentError, "get x: HTTP 400 ValidationError: the ValidationError message"),
    (429, "TooManyRequests", TransientError, "get x: HTTP 429 TooManyRequests"),
    (503, "ServiceUnavailable", TransientError, "get x: HTTP 503 ServiceUnavailable"),
    (501, "NotImplemented", PermanentError, "get x: HTTP 501 NotImplemented"),
])
def test_each_answer_becomes_one_of_our_kinds(server: str, status: int, code: str, kind: type[ImporterError],
                                              text: str) -> None:
    exc = _raised(f"{server}/{status}/{code}")
    got = translate(exc, "get x")
    assert type(got) is kind and text in str(got), str(got)
    if kind is NotFound:
        assert got.code == code  # type: ignore[attr-defined]


def test_network_failure_is_transient_and_names_the_endpoint() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exc = _raised(f"http://127.0.0.1:{port}/200/x")
    got = translate(exc, "get x")
    assert isinstance(got, TransientError)
    assert f"get x: network error: could not reach http://127.0.0.1:{port} (Connection refused)" == str(got)


def test_arm_call_raises_ours_from_theirs(server: str) -> None:
    exc = _raised(f"{server}/409/Conflict")
    with pytest.raises(ConflictError) as err, arm_call("put y"):
        raise exc
    assert err.value.__cause__ is exc
    assert isinstance(translate(ValueError("odd"), "z"), PermanentError)


def test_one_transient_status_table() -> None:
    # azure-core's RetryPolicy retries 408, 429, 500, 502-504 and 506 up; 425 (too early) joins them.
    assert [s for s in range(400, 600) if is_transient_status(s)] == [
        408, 425, 429, 500, 502, 503, 504, *range(506, 600)]
    assert TRANSIENT_STATUS <= {s for s in range(999) if is_transient_status(s)}
    assert not any(is_transient_status(s) for s in (200, 304, 400, 401, 403, 404, 409, 412, 501, 505))
