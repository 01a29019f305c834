"""The gateway adapter (importer/azure/gateway.py): one request on azure-core's pipeline, any answer an
Answer, against a local HTTP server; the key goes in its header only."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from importer.azure.gateway import MAX_BODY, USER_AGENT, is_loopback, send

KEY = "k3y-never-logged"


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """POST/GET /{status}: answers that status with a JSON body; /big: MAX_BODY * 2 bytes;
    /moved: a redirect. Records what it was sent."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                         "body": self.rfile.read(length) if length else b""})
            if self.path == "/moved":
                status, headers, body = 302, {"Location": "/200"}, b""
            elif self.path == "/big":
                status, headers, body = 200, {}, b"x" * (MAX_BODY * 2)
            else:
                status, headers = int(self.path.strip("/")), {"X-Token-Limit": "5"}
                body = json.dumps({"statusCode": status, "message": "m"}).encode()
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer  # noqa: N815 - http.server's names

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("status", [200, 401, 404, 429, 500])
def test_every_status_is_an_answer_with_headers_and_body(server: Any, status: int) -> None:
    base, seen = server
    answer = send(f"{base}/{status}", "POST", {"messages": []}, key=KEY,
                  key_header="Ocp-Apim-Subscription-Key")
    assert answer.status == status and answer.headers["x-token-limit"] == "5"
    assert json.loads(answer.body) == {"statusCode": status, "message": "m"}
    assert answer.error is None and answer.latency_ms >= 0
    sent = seen[-1]
    assert sent["headers"]["Ocp-Apim-Subscription-Key"] == KEY and sent["headers"]["User-Agent"] == USER_AGENT
    assert sent["headers"]["Content-Type"] == "application/json"
    assert json.loads(sent["body"]) == {"messages": []}


def test_streamed_requests_accept_events_and_bodies_are_capped(server: Any) -> None:
    base, seen = server
    send(f"{base}/200", "POST", {"stream": True}, key=None)
    assert seen[-1]["headers"]["Accept"] == "text/event-stream" and "api-key" not in seen[-1]["headers"]
    big = send(f"{base}/big", "GET", None, key=None)
    assert big.status == 200 and len(big.body) == MAX_BODY


def test_a_redirect_is_the_answer_not_followed(server: Any) -> None:
    # The key is never sent on to where a redirect points.
    base, seen = server
    answer = send(f"{base}/moved", "GET", None, key=KEY)
    assert answer.status == 302 and [s["path"] for s in seen] == ["/moved"]


def test_no_answer_is_an_answer_without_status_and_without_the_key() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    answer = send(f"http://127.0.0.1:{port}/x", "GET", None, key=KEY, timeout=5)
    assert answer.status is None and answer.error is not None
    assert f"could not reach http://127.0.0.1:{port} (Connection refused)" in answer.error
    assert KEY not in answer.error


def test_loopback() -> None:
    assert is_loopback("http://localhost:1/") and is_loopback("http://127.0.0.2/") and is_loopback("http://[::1]/")
    assert not is_loopback("https://contoso.azure-api.net/") and not is_loopback("http://10.0.0.1/")
