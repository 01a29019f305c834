"""The per-request context a handler sees (``Ctx``): the request, its arguments, its JSON body, and
helpers to answer like ARM, with paging through opaque ``$skipToken`` nextLinks.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import quote, urlencode

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from armsim.answers import ArmError, bad_request, json_response
from armsim.state import State
from armsim.store import Entity


def _encode_token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise bad_request(f"Invalid $skipToken {token!r}.", "InvalidSkipToken") from exc
    if not isinstance(data, dict):
        raise bad_request(f"Invalid $skipToken {token!r}.", "InvalidSkipToken")
    return data


class Ctx:
    """What a handler sees: the request, the shared state and helpers to answer like ARM."""

    def __init__(self, request: Request, path: str, state: State) -> None:
        self.request = request
        self.path = path
        self.state = state
        self.method = request.method.upper()
        args = MultiDict(request.args)
        self.offset = 0
        token = next((args[k] for k in list(args) if k.lower() == "$skiptoken"), None)
        if token:
            # Our nextLinks carry the original query inside an opaque token, so the SDK's
            # re-encoding of nextLink queries can never garble a $filter.
            payload = _decode_token(token)
            self.offset = int(payload.get("o", 0))
            for name, value in payload.get("q", {}).items():
                args[name] = value
        self.args = {k.lower(): v for k, v in args.items() if k.lower() != "$skiptoken"}
        self.api_version = self.args.get("api-version", "")

    def arg(self, name: str, default: str | None = None) -> str | None:
        return self.args.get(name.lower(), default)

    def body(self) -> dict[str, Any]:
        raw = self.request.get_data(as_text=True)
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise bad_request(f"The request content is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise bad_request("The request content must be a JSON object.")
        return data

    def url(self, path: str, **query: str) -> str:
        """Absolute URL on this server (ARM hands out absolute Location and nextLink URLs)."""
        query.setdefault("api-version", self.api_version)
        return self.request.host_url.rstrip("/") + quote(path) + "?" + urlencode(query)

    def entity(self, entity: Entity, status: int = 200, headers: dict[str, str] | None = None,
               body: dict[str, Any] | None = None) -> Response:
        response = json_response(entity.body if body is None else body, status, headers)
        response.headers["ETag"] = entity.etag
        return response

    def empty(self, status: int, headers: dict[str, str] | None = None) -> Response:
        response = Response(status=status, headers=headers)
        del response.headers["Content-Type"]
        return response

    def _int(self, name: str, default: int) -> int:
        raw = self.arg(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError as exc:
            raise bad_request(f"{name} must be an integer, not {raw!r}.") from exc

    def page(self, items: list[dict[str, Any]], *, count: bool = False) -> Response:
        """One page of ``items`` with a ``nextLink`` when more remain; ``$top``/``$skip`` honoured."""
        size = max(1, self._int("$top", self.state.options.page_size))
        start = self.offset or max(0, self._int("$skip", 0))
        chunk = items[start:start + size]
        body: dict[str, Any] = {"value": chunk}
        if count:  # APIM's collections carry a total and an empty nextLink on the last page
            body["count"] = len(items)
            body["nextLink"] = ""
        if start + size < len(items):
            carried = {k: v for k, v in self.args.items() if k not in ("api-version", "$skip")}
            token = _encode_token({"o": start + size, "q": carried})
            body["nextLink"] = self.url(self.path, **{"$skiptoken": token})
        return json_response(body)


def require_scope(ctx: Ctx, scope: str) -> None:
    """A listing under a resource group that doesn't exist: ARM's 404. (Every subscription exists:
    the stand-in keeps no subscription registry.)"""
    parts = scope.strip("/").split("/")
    if len(parts) >= 4 and not ctx.state.store.scope_exists(scope):
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{parts[3]}' could not be found.")
