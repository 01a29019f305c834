"""An optional stand-in for the APIM gateway: serves the imported APIs from the same store the ARM
surface writes, on its own port, with a fake model behind it.

Rule: a test double of what the importer's probes depend on, not a policy engine. It checks the
subscription key, routes by API path and operation template, applies the importer's allow-list
(read from the stored policy's literal ``ai-allowed-deployments`` value), counts tokens when a
token-limit statement is present, and answers for the backend like an OpenAI-format model. No
policy expression is evaluated; anything else in a policy is ignored. See docs/sandbox.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from armsim import apim, cognitive
from armsim.core import RESET, LogEntry, RequestLog, request_kind
from armsim.policyxml import Element, Text
from armsim.pools import PoolRouter, backend_fault

if TYPE_CHECKING:
    from armsim.server import Sim

logger = logging.getLogger(__name__)

ALLOWED_VARIABLE = "ai-allowed-deployments"
MISSING_KEY = ("Access denied due to missing subscription key. Make sure to include subscription key "
               "when making requests to an API.")
INVALID_KEY = ("Access denied due to invalid subscription key. Make sure to provide a valid key for an "
               "active subscription.")
DEFAULT_NOT_FOUND = {"error": {"code": "DeploymentNotFound", "message": "The deployment is not served."}}
MODEL_DEPLOYMENT_NOT_FOUND = ("The API deployment for this resource does not exist. If you created the "
                              "deployment within the last 5 minutes, please wait a moment and try again.")
_PARAM = re.compile(r"\{([^{}]+)\}")


def gateway_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """APIM's own error shape (the gateway, not the backend, answered)."""
    response = Response(json.dumps({"statusCode": status, "message": message}), status=status,
                        mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def model_error(status: int, code: str, message: str) -> Response:
    """The model endpoint's error shape."""
    return Response(json.dumps({"error": {"code": code, "message": message}}), status=status,
                    mimetype="application/json")


# ---------------------------------------------------------------------------------------------
# Routing


@dataclass(frozen=True)
class Match:
    api: Any  # armsim.core.Entity of the API
    operation: Any  # Entity of the operation
    params: dict[str, str]
    rest: str  # the path below the API's path


def _template_regex(template: str) -> tuple[re.Pattern[str], list[str], int]:
    """(regex of the path part, parameter names in order, literal length: the more, the more specific)."""
    names: list[str] = []
    parts: list[str] = []
    pos = 0
    for m in _PARAM.finditer(template):
        parts.append(re.escape(template[pos:m.start()]))
        parts.append("([^/]+)")
        names.append(m.group(1))
        pos = m.end()
    parts.append(re.escape(template[pos:]))
    literal = len(_PARAM.sub("", template))
    return re.compile("^" + "".join(parts) + "/?$", re.IGNORECASE), names, literal


def match_operation(operations: Iterable[Any], method: str, rest: str,
                    query: dict[str, str]) -> tuple[Any, dict[str, str]] | None:
    """The most specific operation whose method, path template and required query match."""
    best: tuple[int, Any, dict[str, str]] | None = None
    for op in operations:
        props = op.body.get("properties") or {}
        if str(props.get("method", "")).upper() != method.upper():
            continue
        template = str(props.get("urlTemplate") or "/")
        path_part, _, query_part = template.partition("?")
        regex, names, literal = _template_regex(path_part or "/")
        m = regex.match(rest or "/")
        if not m:
            continue
        params = dict(zip(names, m.groups(), strict=True))
        ok = True
        for key, value in parse_qsl(query_part, keep_blank_values=True):
            given = query.get(key)
            pm = _PARAM.fullmatch(value)
            if given is None or (pm is None and given != value):
                ok = False
                break
            if pm:
                params[pm.group(1)] = given
        if ok and (best is None or literal > best[0]):
            best = (literal, op, params)
    return None if best is None else (best[1], best[2])


# ---------------------------------------------------------------------------------------------
# Token counting (a token-limit statement, without evaluating its counter-key expression)


class TokenCounter:
    """Tokens per (API, subscription): this minute's and all-time (for a quota)."""

    def __init__(self) -> None:
        self._minute: dict[tuple[str, str, int], int] = {}
        self._total: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def used(self, api: str, sub: str) -> tuple[int, int]:
        window = int(time.time() // 60)
        with self._lock:
            return self._minute.get((api, sub, window), 0), self._total.get((api, sub), 0)

    def add(self, api: str, sub: str, tokens: int) -> tuple[int, int]:
        window = int(time.time() // 60)
        with self._lock:
            self._minute[(api, sub, window)] = self._minute.get((api, sub, window), 0) + tokens
            self._total[(api, sub)] = self._total.get((api, sub), 0) + tokens
            return self._minute[(api, sub, window)], self._total[(api, sub)]

    def clear(self) -> None:
        with self._lock:
            self._minute.clear()
            self._total.clear()


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None and not value.startswith("@") else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# The fake model


def _estimate(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            out += _texts(item.get("text") if isinstance(item, dict) else item)
        return out
    return []


def fake_model(operation: str, model: str, body: dict[str, Any]) -> Response:
    """An OpenAI-format answer with ``usage``; a chat model refuses embeddings and vice versa."""
    is_embedding_model = "embed" in model.lower()
    if operation == "chat" and is_embedding_model or operation == "embeddings" and not is_embedding_model:
        what = "chatCompletion" if operation == "chat" else "embeddings"
        return model_error(400, "OperationNotSupported", f"The {what} operation does not work with the "
                           f"specified model, {model}. Please choose different model and try again.")
    if operation == "chat":
        messages = body.get("messages")
        texts = [t for m in (messages if isinstance(messages, list) else []) if isinstance(m, dict)
                 for t in _texts(m.get("content"))]
        prompt = 8 + sum(_estimate(t) for t in texts)
        completion = 1  # "pong", whatever max_tokens allows
        reply = {"id": f"chatcmpl-armsim-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
                 "created": int(time.time()), "model": model,
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"},
                              "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}}
    else:
        inputs = _texts(body.get("input")) or [""]
        data = []
        for i, text in enumerate(inputs):
            digest = hashlib.sha256(text.encode()).digest()
            data.append({"object": "embedding", "index": i,
                         "embedding": [round(b / 255 - 0.5, 4) for b in digest[:8]]})
        tokens = sum(_estimate(t) for t in inputs)
        reply = {"object": "list", "data": data, "model": model,
                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return Response(json.dumps(reply), status=200, mimetype="application/json")


def _operation_kind(template: str) -> str | None:
    path = template.partition("?")[0].rstrip("/").lower()
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/embeddings") and not path.endswith("/images/embeddings"):
        return "embeddings"
    return None


# ---------------------------------------------------------------------------------------------
# The gateway


class _GatewayHandler(WSGIRequestHandler):
    """Logs the request line without its query: a key sent as a query parameter stays out of logs."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug('gateway "%s %s" %s', self.command, self.path.split("?", 1)[0], code)

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
        logger.debug(message, *args)


class Gateway:
    """The gateway of every APIM service in the stand-in: ``{url}/{service name}/{api path}/…``."""

    def __init__(self, sim: Sim, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self.log = RequestLog()
        self.tokens = TokenCounter()
        self.pools = PoolRouter()
        self._server: BaseWSGIServer = make_server(host, port, self, threaded=True,
                                                   request_handler=_GatewayHandler)
        self.host, self.port = host, self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> Gateway:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"armsim-gateway:{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def reset(self) -> None:
        self.log.clear()
        self.tokens.clear()
        self.pools.reset()

    def service_url(self, service_name: str) -> str:
        return f"{self.url}/{service_name}"

    # -- WSGI -----------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        started, clock = time.time(), time.monotonic()
        method, path = request.method.upper(), request.path
        fault: str | None = None
        delay = self.sim.faults.delay_for(method, path)
        if delay:
            time.sleep(delay)
        action = self.sim.faults.next_action(method, path)
        if action == RESET:
            self._log(request, 0, started, clock, "reset")
            from armsim.server import _reset

            _reset(environ)
        if action is not None:
            fault = "scripted"
            spec = {"status": action} if isinstance(action, int) else dict(action)
            status = int(spec.get("status", 500))
            headers = {"Retry-After": str(spec["retry_after"])} if spec.get("retry_after") else None
            response = gateway_error(status, str(spec.get("message") or f"armsim injected a {status} "
                                                                       "response."), headers)
        else:
            try:
                response = self.handle(request)
            except Exception as exc:  # a bug in the double: answer like the gateway, say so loudly
                logger.exception("armsim gateway failed for %s %s", method, path)
                response = gateway_error(500, f"armsim gateway error: {type(exc).__name__}")
        self._log(request, response.status_code, started, clock, fault)
        return response(environ, start_response)

    def _log(self, request: Request, status: int, started: float, clock: float, fault: str | None) -> None:
        query = urlencode([(k, "***" if "key" in k.lower() else v)
                           for k, v in request.args.items(multi=True)])
        self.log.append(LogEntry(request.method.upper(), request.path, query, status, started,
                                 time.monotonic() - clock, None, request_kind(request.method), fault))

    # -- one request ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        state = self.sim.state
        service_name, _, rest = request.path.lstrip("/").partition("/")
        with state.lock:
            svc = next((e for e in state.store.of_type(apim.SERVICE_TYPE)
                        if e.name.lower() == service_name.lower()), None)
            if svc is None:
                return gateway_error(404, "Resource not found")
            found = self._route(svc, "/" + rest, request)
            if isinstance(found, Response):
                return found
            denied = self._check_key(svc, found.api, request)
            if denied is not None:
                return denied
            policy = state.store.get(f"{found.api.id}/policies/policy")
            inbound = _inbound(policy.private.get("doc") if policy else None)
            body, bad = _json_body(request)
            requested = self._requested(found, request, body)
            if bad and requested is None and _allow_list(inbound) is not None:
                # The importer's expression reads the body as JSON: a body that does not parse fails it.
                return gateway_error(500, "Internal server error")
            refused = self._allow_list(inbound, requested)
            if refused is not None:
                return refused
            sub = self._subscription_id(svc, found.api, request)
            limit = _token_limit(inbound)
            if limit is not None:
                over = self._over_limit(found.api.id, sub, limit)
                if over is not None:
                    return over
            payload = body if isinstance(body, dict) else {}
            pool = self.pools.pool_for(state.store, svc, inbound, requested)
            if pool is not None:  # armsim/pools.py: members, breakers, the policy's retry
                doc = policy.private.get("doc") if policy else None
                backend_url, answer = self.pools.route(
                    self.sim, svc, pool, request.method, found.rest, doc,
                    lambda url: self._model(url, found, requested, payload))
            else:
                backend_url = self._backend_url(svc, found.api, inbound)
                answer = (backend_fault(self.sim, request.method, backend_url.rstrip("/") + found.rest)
                          or self._model(backend_url, found, requested, payload))
        answer.headers["x-armsim-backend-url"] = backend_url
        if limit is not None and answer.status_code == 200:
            self._count(found.api.id, sub, limit, answer)
        return answer

    def _route(self, svc: Any, path: str, request: Request) -> Match | Response:
        store = self.sim.state.store
        lowered = path.rstrip("/").lower() or "/"
        best: tuple[int, Any] | None = None
        for api in store.children(f"{svc.id}/apis"):
            if api.type != apim.API_TYPE:
                continue
            api_path = "/" + str(api.body["properties"].get("path", "")).strip("/").lower()
            if (lowered == api_path or lowered.startswith(api_path.rstrip("/") + "/")) and (
                    best is None or len(api_path) > best[0]):
                best = (len(api_path), api)
        if best is None:
            return gateway_error(404, "Resource not found")
        api = best[1]
        rest = path[best[0]:] if best[0] > 1 else path
        query = {k: v for k, v in request.args.items()}
        hit = match_operation(store.children(f"{api.id}/operations"), request.method, rest, query)
        if hit is None:
            return gateway_error(404, "Resource not found")
        return Match(api, hit[0], hit[1], rest)

    def _valid_subscriptions(self, svc: Any, api: Any) -> list[Any]:
        store = self.sim.state.store
        out = []
        for sub in store.children(f"{svc.id}/subscriptions"):
            props = sub.body.get("properties") or {}
            if str(props.get("state", "")).lower() != "active":
                continue
            scope = str(props.get("scope", "")).rstrip("/").lower()
            if scope == f"{svc.id}/apis".lower() or scope == api.id.lower():
                out.append(sub)
            elif scope.startswith(f"{svc.id}/products/".lower()):
                link = store.get(f"{scope}/apis/{api.name}")
                if link is not None and link.type == apim.LINK_TYPE:
                    out.append(sub)
        return out

    @staticmethod
    def _given_key(api: Any, request: Request) -> str | None:
        names = api.body["properties"].get("subscriptionKeyParameterNames") or {}
        for header in (names.get("header"), "Ocp-Apim-Subscription-Key"):
            if header and request.headers.get(header):
                return str(request.headers[header])
        query = names.get("query")
        if query and request.args.get(query):
            return str(request.args[query])
        return None

    def _check_key(self, svc: Any, api: Any, request: Request) -> Response | None:
        if api.body["properties"].get("subscriptionRequired", True) is False:
            return None
        given = self._given_key(api, request)
        if not given:
            return gateway_error(401, MISSING_KEY)
        if not any(given in (s.private.get("primaryKey"), s.private.get("secondaryKey"))
                   for s in self._valid_subscriptions(svc, api)):
            return gateway_error(401, INVALID_KEY)
        return None

    def _subscription_id(self, svc: Any, api: Any, request: Request) -> str:
        given = self._given_key(api, request)
        for sub in self._valid_subscriptions(svc, api):
            if given in (sub.private.get("primaryKey"), sub.private.get("secondaryKey")):
                return str(sub.name)
        return ""

    @staticmethod
    def _requested(found: Match, request: Request, body: Any) -> str | None:
        """The deployment a request names, read where the importer's expressions read it: the
        ``deployment-id`` path parameter, else a JSON POST body's top-level ``model`` (never under
        ``/fine_tuning/``, where ``model`` is a base model)."""
        if found.params.get("deployment-id"):
            return found.params["deployment-id"]
        is_json = "json" in (request.headers.get("Content-Type") or "").lower()
        if request.method.upper() == "POST" and is_json and "/fine_tuning/" not in request.path:
            if isinstance(body, dict) and body.get("model") is not None:
                return str(body["model"])
        return None

    def _allow_list(self, inbound: Element | None, requested: str | None) -> Response | None:
        allowed = _allow_list(inbound)
        if allowed is None or not requested:
            return None
        wanted = requested.lower()
        if "|" not in wanted and f"|{wanted}|" in allowed.lower():
            return None
        return _return_response(inbound)

    def _over_limit(self, api: str, sub: str, limit: dict[str, str]) -> Response | None:
        per_minute, total = self.tokens.used(api, sub)
        tpm, quota = _int(limit.get("tokens-per-minute")), _int(limit.get("token-quota"))
        retry = str(60 - int(time.time()) % 60)
        headers = {"Retry-After": retry}
        if limit.get("retry-after-header-name"):
            headers[limit["retry-after-header-name"]] = retry
        if tpm is not None and per_minute >= tpm:
            return gateway_error(429, f"Token limit is exceeded. Try again in {retry} seconds.", headers)
        if quota is not None and total >= quota:
            return gateway_error(403, "Token quota is exceeded. Try again after the quota period.")
        return None

    def _count(self, api: str, sub: str, limit: dict[str, str], answer: Response) -> None:
        try:
            usage = json.loads(answer.get_data(as_text=True)).get("usage") or {}
        except ValueError:
            return
        consumed = int(usage.get("total_tokens") or 0)
        per_minute, total = self.tokens.add(api, sub, consumed)
        tpm, quota = _int(limit.get("tokens-per-minute")), _int(limit.get("token-quota"))
        names = {"tokens-consumed-header-name": consumed,
                 "remaining-tokens-header-name": (max(0, tpm - per_minute) if tpm is not None
                                                  else max(0, (quota or 0) - total)),
                 "remaining-quota-tokens-header-name": max(0, (quota or 0) - total) if quota else None}
        for attr, value in names.items():
            if limit.get(attr) and value is not None:
                answer.headers[limit[attr]] = str(value)

    def _backend_url(self, svc: Any, api: Any, inbound: Element | None) -> str:
        for el in inbound.iter() if inbound is not None else ():
            if el.tag == "set-backend-service":
                attrs = dict(el.attrs)
                if attrs.get("base-url"):
                    return attrs["base-url"]
                backend = self.sim.state.store.get(f"{svc.id}/backends/{attrs.get('backend-id', '')}")
                if backend is not None:
                    return str(backend.body["properties"].get("url", ""))
        return str(api.body["properties"].get("serviceUrl", ""))

    def _model(self, backend_url: str, found: Match, requested: str | None, body: dict[str, Any]) -> Response:
        """Answer as the model endpoint at ``backend_url`` would (the account whose endpoint it is)."""
        store = self.sim.state.store
        endpoints = [(str(a.body["properties"].get("endpoint") or "").lower(), a)
                     for a in store.of_type(cognitive.ACCOUNT_TYPE)]
        account = next((a for e, a in endpoints if e and backend_url.lower().startswith(e)), None)
        if account is None:
            return gateway_error(500, f"Backend {backend_url} could not be reached (armsim knows no account "
                                      "with that endpoint).")
        kind = _operation_kind(str(found.operation.body["properties"].get("urlTemplate", "")))
        if kind is None:
            return model_error(400, "OperationNotSupported",
                               "armsim's fake model answers chat completions and embeddings only.")
        deployment = store.get(f"{account.id}/deployments/{requested}") if requested else None
        props = (deployment.body.get("properties") or {}) if deployment else {}
        if deployment is None or props.get("provisioningState") != "Succeeded":
            return model_error(404, "DeploymentNotFound", MODEL_DEPLOYMENT_NOT_FOUND)
        model = str((props.get("model") or {}).get("name") or deployment.name)
        return fake_model(kind, model, body)


def _inbound(doc: Any) -> Element | None:
    if doc is None:
        return None
    return next((c for c in doc.root.children if isinstance(c, Element) and c.tag == "inbound"), None)


def _allow_list(inbound: Element | None) -> str | None:
    """The literal value of ``set-variable name="ai-allowed-deployments"`` (an expression is not read)."""
    for el in inbound.iter() if inbound is not None else ():
        attrs = dict(el.attrs)
        if el.tag == "set-variable" and attrs.get("name") == ALLOWED_VARIABLE:
            value = attrs.get("value", "")
            return None if value.startswith("@") else value
    return None


def _return_response(inbound: Element | None) -> Response:
    """The first ``return-response`` of the policy, literally: status, headers and body."""
    el = next((e for e in inbound.iter() if e.tag == "return-response"), None) if inbound else None
    if el is None:
        return Response(json.dumps(DEFAULT_NOT_FOUND), status=404, mimetype="application/json")
    status, reason, body, headers = 404, None, "", {}
    for child in (c for c in el.children if isinstance(c, Element)):
        attrs = dict(child.attrs)
        if child.tag == "set-status":
            status, reason = int(attrs.get("code", "404")), attrs.get("reason")
        elif child.tag == "set-header" and attrs.get("name"):
            values = ["".join(child_text(v)) for v in child.children if isinstance(v, Element)]
            headers[attrs["name"]] = ",".join(values)
        elif child.tag == "set-body":
            body = "".join(child_text(child))
    response = Response(body, status=status)
    if reason:
        response.status = f"{status} {reason}"
    for name, value in headers.items():
        response.headers[name] = value
    return response


def child_text(el: Element) -> list[str]:
    return [c.value for c in el.children if isinstance(c, Text)]


def _token_limit(inbound: Element | None) -> dict[str, str] | None:
    for el in inbound.iter() if inbound is not None else ():
        if el.tag.endswith("-token-limit"):
            return dict(el.attrs)
    return None


def _json_body(request: Request) -> tuple[Any, bool]:
    """(the parsed JSON body or None, True when a JSON body does not parse)."""
    if "json" not in (request.headers.get("Content-Type") or "").lower():
        return None, False
    raw = request.get_data(as_text=True)
    if not raw.strip():
        return None, False
    try:
        return json.loads(raw), False
    except ValueError:
        return None, True
