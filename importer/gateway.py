"""Adapter: one HTTP request to the APIM gateway (the data plane), timed.

I/O only, no decisions: importer/probe.py says what to send and what the answer means. The
subscription key travels in a request header only, never in a URL, a log line or an error text.
"""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from importer.probe import Answer

MAX_BODY = 64 * 1024
USER_AGENT = "apim-ai-importer-probe"


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _opener(url: str) -> urllib.request.OpenerDirector:
    if is_loopback(url):  # the local stand-in: never through a proxy from the environment
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def send(url: str, method: str, body: Mapping[str, Any] | None, *, key: str | None,
         key_header: str = "api-key", timeout: float = 30.0) -> Answer:
    """Send one JSON request; any HTTP status is an Answer, a transport failure an Answer without
    status. Never raises for what the network or the gateway does."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    streamed = body is not None and body.get("stream") is True
    headers = {"User-Agent": USER_AGENT, "Accept": "text/event-stream" if streamed else "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if key:
        headers[key_header] = key
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    start = time.perf_counter()
    try:
        with _opener(url).open(request, timeout=timeout) as response:
            status, raw, got = response.status, response.read(MAX_BODY), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(MAX_BODY) if exc.fp else b"", exc.headers
        exc.close()
    except (TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Answer(None, latency_ms=_ms(start), error=f"{type(exc).__name__}: {reason}")
    return Answer(status, {k.lower(): v for k, v in (got or {}).items()},
                  raw.decode("utf-8", errors="replace"), _ms(start))


def _ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)
