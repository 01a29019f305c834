"""Adapter edge: azure-core exceptions → the importer's three kinds of error.

Transient (throttled, 5xx, network): retry later. Conflict (ETag moved, concurrent create): read
again and re-plan. Permanent (bad request, forbidden, missing): report, don't retry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from importer.model import ConflictError, ImporterError, NotFound, PermanentError, TransientError

T = TypeVar("T")

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def _code(exc: Exception) -> str:
    err = getattr(exc, "error", None)
    code = getattr(err, "code", None)
    return str(code) if code else ""


def network_reason(exc: BaseException) -> str:
    """"could not reach http://host:port (Connection refused)" from a transport error: the endpoint
    it could not reach, and the socket's reason without errno noise."""
    inner = getattr(exc, "inner_exception", None) or exc.__cause__ or exc
    conn = getattr(inner, "conn", None)
    request = getattr(inner, "request", None)
    endpoint = ""
    if conn is not None and getattr(conn, "host", None):
        scheme = "https" if "HTTPS" in type(conn).__name__ else "http"
        endpoint = f"{scheme}://{conn.host}:{conn.port}"
    elif request is not None and getattr(request, "url", None):
        from urllib.parse import urlsplit

        parts = urlsplit(str(request.url))
        endpoint = f"{parts.scheme}://{parts.netloc}"
    text = str(getattr(exc, "message", None) or exc).splitlines()[0] if str(exc) else type(exc).__name__
    reason = re.sub(r"^.*?: (?=[^:]*$)", "", text)  # the last clause: "Connection refused"
    reason = re.sub(r"\[Errno -?\d+\]\s*", "", reason).strip() or type(exc).__name__
    return f"could not reach {endpoint} ({reason})" if endpoint else f"{type(exc).__name__}: {text[:300]}"


def translate(exc: Exception, what: str) -> ImporterError:
    """Map an azure-core / transport exception raised while doing ``what`` to our error kinds."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, ResourceNotFoundError):
        code = _code(exc)
        if code in ("ResourceGroupNotFound", "SubscriptionNotFound"):
            message = getattr(getattr(exc, "error", None), "message", None) or code
            return NotFound(f"{what}: {message}", code)
        return NotFound(f"{what}: not found", code)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return TransientError(f"{what}: network error: {network_reason(exc)}")
    if isinstance(exc, ClientAuthenticationError):
        return PermanentError(f"{what}: authentication failed; check the importer's identity "
                              f"(status {getattr(exc, 'status_code', '?')})")
    if isinstance(exc, ResourceModifiedError):
        return ConflictError(f"{what}: changed concurrently (412); will re-read and re-plan")
    if isinstance(exc, ResourceExistsError):
        return ConflictError(f"{what}: conflict ({_code(exc) or 409})")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        code = _code(exc)
        if status in _TRANSIENT_STATUS or status >= 506:
            return TransientError(f"{what}: HTTP {status} {code}".rstrip())
        if status == 412:
            return ConflictError(f"{what}: changed concurrently (412); will re-read and re-plan")
        if status == 409:
            return ConflictError(f"{what}: conflict ({code or 409})")
        if status == 403:
            return PermanentError(f"{what}: forbidden ({code or 403}); the importer's identity lacks "
                                  "a role here (see docs/deploy.md, permissions)")
        message = getattr(getattr(exc, "error", None), "message", None) or exc.reason or ""
        return PermanentError(f"{what}: HTTP {status} {code}: {message}".strip())
    if isinstance(exc, ImporterError):
        return exc
    return PermanentError(f"{what}: {type(exc).__name__}: {exc}")


@contextmanager
def arm_call(what: str) -> Iterator[None]:
    """Run SDK calls, re-raising azure-core errors as importer errors (``raise … from exc``)."""
    from azure.core.exceptions import AzureError

    try:
        yield
    except AzureError as exc:
        raise translate(exc, what) from exc


def call(what: str, fn: Callable[[], T]) -> T:
    with arm_call(what):
        return fn()
