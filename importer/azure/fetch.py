"""Fetch: the linked (official) OpenAPI document, so the importer knows the operations APIM will make.

Adapter, called by reconcile so that render (and ``importer/openapi/``) stay pure; HTTP on azure-core's
pipeline (importer/azure/web.py). JSON only, at most 5 MB, 15 s timeout. The Reconciler holds one Cache:
a document is kept an hour (the default link is pinned to a commit, so it never changes), a failure
briefly, and concurrent runs share one download. Network errors and the adapters' transient statuses
(importer.azure.errors.is_transient_status) are transient; other answers, oversize and unparsable
documents permanent.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit

from azure.core.exceptions import AzureError, HttpResponseError, TooManyRedirectsError
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import RedirectPolicy
from azure.core.rest import HttpRequest, HttpResponse

from importer import openapi
from importer.azure.errors import is_transient_status, network_reason
from importer.azure.web import Web, read_at_most
from importer.model import ImporterError, LinkedDocument, PermanentError, TransientError

logger = logging.getLogger(__name__)

TIMEOUT_S = 15.0
MAX_BYTES = 5 * 1024 * 1024
TTL_S = 3600.0
PERMANENT_FAILURE_TTL_S = 60.0  # a fleet pass with a bad link asks once, not once per account
TRANSIENT_FAILURE_TTL_S = 5.0
_FIX = ("check IMPORTER_OPENAPI_BASE_URL, or import the bundled document (IMPORTER_OPENAPI=bundled, "
        "tag apim-importer-openapi=bundled)")


def _where(url: str) -> str:
    return f"official OpenAPI document {url} (setting IMPORTER_OPENAPI_BASE_URL)"


def _allowed(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http"
                                       and parts.hostname in ("127.0.0.1", "localhost"))


class RedirectRefused(PermanentError):
    """A redirect to where a base URL may not point."""


class _Redirects(RedirectPolicy[HttpRequest, HttpResponse]):
    """Follow redirects only to where a base URL may point: https, or http to the local stand-in."""

    def get_redirect_location(self, response: PipelineResponse[Any, Any]) -> str | None | Literal[False]:
        location = super().get_redirect_location(response)
        if location and urlsplit(location).netloc and not _allowed(location):
            status = response.http_response.status_code
            raise RedirectRefused(f"HTTP {status} redirect to {location} refused (not https)")
        return location


def _get(url: str, where: str) -> bytes:
    """The body (at most MAX_BYTES + 1 bytes) of a 2xx answer, or the error its answer means."""
    request = HttpRequest("GET", url, headers={"Accept": "application/json",
                                                "User-Agent": "apim-ai-importer"})
    try:
        with Web(_Redirects(redirect_max=10)) as web:
            return _body(web.send(request, timeout=TIMEOUT_S), where)
    except RedirectRefused as exc:
        raise PermanentError(f"{where}: {exc}: {_FIX}") from exc
    except TooManyRedirectsError as exc:
        raise PermanentError(f"{where}: too many redirects: {_FIX}") from exc
    except HttpResponseError as exc:  # the body broke off (IncompleteReadError, DecodeError)
        raise TransientError(f"{where}: network error: {_reason(exc)}") from exc
    except AzureError as exc:  # ServiceRequestError, ServiceResponseError (timeouts included)
        raise TransientError(f"{where}: network error: {_reason(exc)}") from exc


def _body(response: HttpResponse, where: str) -> bytes:
    status = response.status_code
    if status >= 300:
        response.close()
        reason = f"HTTP {status} {response.reason}"
        if is_transient_status(status):
            raise TransientError(f"{where}: {reason}")
        raise PermanentError(f"{where}: {reason}: {_FIX}")
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_BYTES:
        response.close()
        raise PermanentError(f"{where}: {length} bytes, over the limit of {MAX_BYTES}: {_FIX}")
    return read_at_most(response, MAX_BYTES + 1)


def _reason(exc: AzureError) -> str:
    """"could not reach it (Connection refused)": the URL is named already."""
    text = network_reason(exc)
    return "could not reach it " + text.split(" ", 4)[-1] if text.startswith("could not reach ") else text


def download(url: str) -> LinkedDocument:
    """GET ``url``, parse it as an OpenAPI 3 JSON document, derive its operations (no cache)."""
    where = _where(url)
    body = _get(url, where)
    if len(body) > MAX_BYTES:
        raise PermanentError(f"{where}: over the limit of {MAX_BYTES} bytes: {_FIX}")
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise PermanentError(f"{where}: not JSON ({exc}); documents are read as JSON only: {_FIX}") from exc
    if (not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict)
            or not str(doc.get("openapi", "")).startswith("3.")):
        raise PermanentError(f"{where}: not an OpenAPI 3 document (needs 'openapi': '3.x' and 'paths'): "
                             f"{_FIX}")
    operations = openapi.operations(doc)
    if not operations:
        raise PermanentError(f"{where}: the document has no operations: {_FIX}")
    logger.info("fetched %s: %d operations", url, len(operations))
    info = doc.get("info")
    description = info.get("description") if isinstance(info, dict) else None
    return LinkedDocument(url, operations, description if isinstance(description, str) else "")


class Cache:
    """Documents by URL for ``ttl_s``, failures for less; one download per URL at a time."""

    def __init__(self, load: Callable[[str], LinkedDocument] = download,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._clock = clock
        self._lock = threading.Lock()
        self._url_locks: dict[str, threading.Lock] = {}
        self._entries: dict[str, tuple[float, LinkedDocument | ImporterError]] = {}

    def get(self, url: str) -> LinkedDocument:
        with self._lock:
            url_lock = self._url_locks.setdefault(url, threading.Lock())
        with url_lock:
            with self._lock:
                hit = self._entries.get(url)
            if hit is not None and self._clock() < hit[0]:
                value = hit[1]
            else:
                value = self._fetch(url)
        if isinstance(value, ImporterError):
            raise type(value)(str(value))  # a fresh exception per caller: tracebacks are per thread
        return value

    def _fetch(self, url: str) -> LinkedDocument | ImporterError:
        value: LinkedDocument | ImporterError
        try:
            value, ttl = self._load(url), TTL_S
        except ImporterError as exc:
            value = exc
            ttl = TRANSIENT_FAILURE_TTL_S if exc.kind == "transient" else PERMANENT_FAILURE_TTL_S
        with self._lock:
            self._entries[url] = (self._clock() + ttl, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
