"""Fetch: the linked (official) OpenAPI document, so the importer knows the operations APIM will make.

I/O edge, called by reconcile so that render (and ``importer/openapi/``) stay pure. JSON only, at most
5 MB, 15 s timeout. One download per URL per process: a document is kept an hour (the default link is
pinned to a commit, so it never changes), a failure briefly, and concurrent runs share one download.
Network errors, 408/429 and 5xx are transient; other 4xx, oversize and unparsable documents permanent.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from importer import openapi
from importer.model import ImporterError, LinkedDocument, PermanentError, TransientError

logger = logging.getLogger(__name__)

TIMEOUT_S = 15.0
MAX_BYTES = 5 * 1024 * 1024
TTL_S = 3600.0
PERMANENT_FAILURE_TTL_S = 60.0  # a fleet pass with a bad link asks once, not once per account
TRANSIENT_FAILURE_TTL_S = 5.0
_TRANSIENT_STATUS = {408, 425, 429}
_FIX = ("check IMPORTER_OPENAPI_BASE_URL, or import the bundled document (IMPORTER_OPENAPI=bundled, "
        "tag apim-importer-openapi=bundled)")


def _where(url: str) -> str:
    return f"official OpenAPI document {url} (setting IMPORTER_OPENAPI_BASE_URL)"


def _allowed(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http"
                                       and parts.hostname in ("127.0.0.1", "localhost"))


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to where a base URL may point: https, or http to the local stand-in."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> Any:
        if not _allowed(newurl):
            raise urllib.error.HTTPError(newurl, code, f"redirect to {newurl} refused (not https)",
                                         headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_Redirects())


def download(url: str) -> LinkedDocument:
    """GET ``url``, parse it as an OpenAPI 3 JSON document, derive its operations (no cache)."""
    where = _where(url)
    request = urllib.request.Request(url, headers={"Accept": "application/json",
                                                   "User-Agent": "apim-ai-importer"})
    try:
        with _opener.open(request, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > MAX_BYTES:
                raise PermanentError(f"{where}: {length} bytes, over the limit of {MAX_BYTES}: {_FIX}")
            body: bytes = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        if exc.code in _TRANSIENT_STATUS or exc.code >= 500:
            raise TransientError(f"{where}: HTTP {exc.code} {exc.reason}") from exc
        raise PermanentError(f"{where}: HTTP {exc.code} {exc.reason}: {_FIX}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise TransientError(f"{where}: network error: could not reach it ({reason})") from exc
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


_cache = Cache()


def linked_document(url: str) -> LinkedDocument:
    """The document at ``url`` with its operations, from this process's cache or downloaded."""
    return _cache.get(url)


def clear_cache() -> None:
    """Forget every cached document and failure (tests; a changed mirror)."""
    _cache.clear()
