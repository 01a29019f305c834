"""Adapter: one HTTP request to the APIM gateway (the data plane), timed.

I/O only, no decisions: importer/probe_rules.py says what to send and what the answer means. HTTP on
azure-core's pipeline (importer/azure/web.py), redirects not followed, no retries (the prober retries
the gateway's "not there yet" answers itself). The subscription key travels in a request header only,
never in a URL, a log line or an error text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import AzureError
from azure.core.rest import HttpRequest

from importer.azure.errors import network_reason
from importer.azure.web import Web, is_loopback, read_at_most
from importer.probe_rules import Answer

__all__ = ["MAX_BODY", "USER_AGENT", "is_loopback", "send"]

MAX_BODY = 64 * 1024
USER_AGENT = "apim-ai-importer-probe"


def _request(url: str, method: str, body: Mapping[str, Any] | None, key: str | None,
             key_header: str) -> HttpRequest:
    streamed = body is not None and body.get("stream") is True
    headers = {"User-Agent": USER_AGENT, "Accept": "text/event-stream" if streamed else "application/json"}
    if key:
        headers[key_header] = key
    if body is None:
        return HttpRequest(method, url, headers=headers)
    headers["Content-Type"] = "application/json"
    return HttpRequest(method, url, headers=headers, content=json.dumps(body).encode("utf-8"))


def send(url: str, method: str, body: Mapping[str, Any] | None, *, key: str | None,
         key_header: str = "api-key", timeout: float = 30.0) -> Answer:
    """Send one JSON request; any HTTP status is an Answer, a transport failure an Answer without
    status. Never raises for what the network or the gateway does."""
    request = _request(url, method, body, key, key_header)
    start = time.perf_counter()
    try:
        # the local stand-in: never through a proxy from the environment
        with Web(env_proxies=not is_loopback(url)) as web:
            response = web.send(request, timeout=timeout)
            status, headers = response.status_code, dict(response.headers)
            raw = read_at_most(response, MAX_BODY)
    except AzureError as exc:
        return Answer(None, latency_ms=_ms(start), error=f"{type(exc).__name__}: {network_reason(exc)}")
    return Answer(status, {k.lower(): v for k, v in headers.items()},
                  raw.decode("utf-8", errors="replace"), _ms(start))


def _ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)
