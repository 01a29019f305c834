"""Adapter edge: azure-core exceptions → the importer's three kinds of error.

Transient (throttled, 5xx, network): retry later. Conflict (ETag moved, concurrent create): read
again and re-plan. Permanent (bad request, forbidden, missing): report, don't retry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from importer.model import ConflictError, ImporterError, NotFound, PermanentError, TransientError

T = TypeVar("T")

# The one transient-status table of every adapter (ARM, storage, the document fetch): the statuses
# azure-core's RetryPolicy retries (408, 429, 500, 502-504 and 506 up), plus 425 Too Early. 501 and 505
# (not implemented, HTTP version) and every other 4xx are permanent: asking again gets the same answer.
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_transient_status(status: int) -> bool:
    """An HTTP status worth asking again later (throttled, busy, a timeout, a server failure)."""
    return status in TRANSIENT_STATUS or status >= 506


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


def _message(exc: Exception, default: str = "") -> str:
    return getattr(getattr(exc, "error", None), "message", None) or default


def _not_found(exc: Exception, what: str) -> ImporterError:
    code = _code(exc)
    if code in ("ResourceGroupNotFound", "SubscriptionNotFound"):
        return NotFound(f"{what}: {_message(exc, code)}", code)
    return NotFound(f"{what}: not found", code)


def _modified(what: str) -> ImporterError:
    return ConflictError(f"{what}: changed concurrently (412); will re-read and re-plan")


def _exists(exc: Exception, what: str) -> ImporterError:
    return ConflictError(f"{what}: conflict ({_code(exc) or 409})")


def _by_status(exc: HttpResponseError, what: str) -> ImporterError:
    """An HTTP answer without a more precise azure-core type: decided by its status."""
    status = exc.status_code or 0
    code = _code(exc)
    if is_transient_status(status):
        return TransientError(f"{what}: HTTP {status} {code}".rstrip())
    if status == 412:
        return _modified(what)
    if status == 409:
        return _exists(exc, what)
    if status == 403:
        return PermanentError(f"{what}: forbidden ({code or 403}); the importer's identity lacks "
                              "a role here (see docs/deploy.md, permissions)")
    return PermanentError(f"{what}: HTTP {status} {code}: {_message(exc, exc.reason or '')}".strip())


def _network(exc: Exception, what: str) -> ImporterError:
    return TransientError(f"{what}: network error: {network_reason(exc)}")


def _authentication(exc: Exception, what: str) -> ImporterError:
    return PermanentError(f"{what}: authentication failed; check the importer's identity "
                          f"(status {getattr(exc, 'status_code', '?')})")


# The azure-core exception types, most precise first (ResourceNotFoundError is an HttpResponseError).
_BY_TYPE: tuple[tuple[type[Exception], Callable[[Any, str], ImporterError]], ...] = (
    (ResourceNotFoundError, _not_found),
    (ServiceRequestError, _network),
    (ServiceResponseError, _network),
    (ClientAuthenticationError, _authentication),
    (ResourceModifiedError, lambda exc, what: _modified(what)),
    (ResourceExistsError, _exists),
    (HttpResponseError, _by_status),
)


def translate(exc: Exception, what: str) -> ImporterError:
    """Map an azure-core / transport exception raised while doing ``what`` to our error kinds."""
    for kind, make in _BY_TYPE:
        if isinstance(exc, kind):
            return make(exc, what)
    if isinstance(exc, ImporterError):
        return exc
    return PermanentError(f"{what}: {type(exc).__name__}: {exc}")


@contextmanager
def arm_call(what: str) -> Iterator[None]:
    """Run SDK calls, re-raising azure-core errors as importer errors (``raise … from exc``)."""
    try:
        yield
    except AzureError as exc:
        raise translate(exc, what) from exc


def call(what: str, fn: Callable[[], T]) -> T:
    with arm_call(what):
        return fn()
