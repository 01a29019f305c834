"""Plain HTTP on azure-core's pipeline: the document fetch and the gateway probe send through here.

One transport for every adapter: azure-core's RequestsTransport, with its RedirectPolicy and
RetryPolicy and the transport's connection and read timeouts, as the Azure SDK clients use for ARM,
storage and Event Grid. No logging policy: a header (a subscription key) is never logged.

Neither caller retries a request: a failed download fails the run as transient (its trigger retries
it, and the fetch caches the failure briefly), and the probe must see each answer (it retries the
gateway's "not there yet" answers itself). So the RetryPolicy is azure-core's with no retries.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from azure.core import PipelineClient
from azure.core.pipeline.policies import RedirectPolicy, RetryPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest, HttpResponse


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Web:
    """A pipeline client for absolute URLs. ``redirects`` is the redirect policy (None: none followed);
    ``env_proxies`` uses the proxy settings of the environment (never for the local stand-in)."""

    def __init__(self, redirects: RedirectPolicy[HttpRequest, HttpResponse] | None = None, *,
                 env_proxies: bool = True) -> None:
        self._client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(
            "", policies=[redirects or RedirectPolicy.no_redirects(), RetryPolicy.no_retries()],
            transport=RequestsTransport(use_env_settings=env_proxies))

    def __enter__(self) -> Web:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def send(self, request: HttpRequest, *, timeout: float, **kwargs: Any) -> HttpResponse:
        """Send ``request`` and return the response with its body unread (``read_at_most``)."""
        return self._client.send_request(request, stream=True, connection_timeout=timeout,
                                         read_timeout=timeout, **kwargs)


def read_at_most(response: HttpResponse, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body (more are left unread), then the connection is closed."""
    body = bytearray()
    try:
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= limit:
                break
    finally:
        response.close()
    return bytes(body[:limit])
