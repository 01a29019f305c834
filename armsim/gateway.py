"""An optional stand-in for the APIM gateway: serves the imported APIs from the same store the ARM
surface writes, on its own port, with a fake model behind it.

Rule: a test double of what the importer's probes depend on, not a policy engine. It checks the
subscription key, routes by API path and operation template, applies the importer's allow-list
(read from the stored policy's literal ``ai-allowed-deployments`` value), counts tokens when a
token-limit statement is present, and answers for the backend like an OpenAI-format model
(armsim/fakemodel.py). The allow-list's decision is re-implemented here, and tests/expressions checks
it against the importer's expressions compiled and run; of the other policy expressions only the
return-response's string expressions are evaluated (armsim/expressions.py). Anything else in a
policy is ignored. See docs/sandbox.md.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from armsim import apim, authorization, cognitive
from armsim.expressions import evaluate
from armsim.fakemodel import (
    Call,
    Deployment,
    FakeModel,
    estimate,
    model_error,
    stream_deltas,
    texts,
    usage_of,
)
from armsim.faults import RESET, Faults, reset_connection
from armsim.policyxml import Element, Text
from armsim.pools import PoolRouter, backend_fault
from armsim.requestlog import LogEntry, RequestLog, request_kind
from armsim.state import State


class Host(Protocol):
    """What the gateway needs of the running stand-in (``armsim.server.Sim``): its faults and its state.
    A protocol, so that the gateway never imports the server that starts it (no import cycle)."""

    faults: Faults
    state: State

logger = logging.getLogger(__name__)

ALLOWED_VARIABLE = "ai-allowed-deployments"
REQUESTED_VARIABLE = "ai-requested-deployment"
INVALID_JSON = "!InvalidJson"  # what the importer's expression yields for a body that is not JSON
_JSON_WHITESPACE = " \t\r\n"
JSON_MAX_DEPTH = 64  # Newtonsoft.Json's reader (13.0.1 on) refuses deeper nesting
MISSING_KEY = ("Access denied due to missing subscription key. Make sure to include subscription key "
               "when making requests to an API.")
INVALID_KEY = ("Access denied due to invalid subscription key. Make sure to provide a valid key for an "
               "active subscription.")
DEFAULT_NOT_FOUND = {"error": {"code": "DeploymentNotFound", "message": "The deployment is not served."}}
_PARAM = re.compile(r"\{([^{}]+)\}")
_NAME_CHARACTERS = re.compile(r"[A-Za-z0-9._-]*")

# Data-plane auth (docs/sandbox.md): a model or Content Safety endpoint answers only calls that carry
# a managed-identity token, for Cognitive Services, of a principal holding a role with the data
# actions the call needs, at the resource's scope or above.
COGNITIVE_AUDIENCES = ("https://cognitiveservices.azure.com", "https://cognitiveservices.azure.com/")
ROLE_OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
ROLE_OPENAI_CONTRIBUTOR = "a001fd3d-188f-4b5d-821b-7da978bf7442"
ROLE_COGNITIVE_SERVICES_USER = "a97b65f3-24c7-4388-baec-2e87135dc908"
# Roles whose data actions allow inference: the OpenAI roles cover only the OpenAI routes; the Azure
# AI model inference route (/models) and Content Safety need Cognitive Services User.
INFERENCE_ROLES = {
    "openai": (ROLE_OPENAI_USER, ROLE_OPENAI_CONTRIBUTOR, ROLE_COGNITIVE_SERVICES_USER),
    "models": (ROLE_COGNITIVE_SERVICES_USER,),
    "contentsafety": (ROLE_COGNITIVE_SERVICES_USER,),
}
NO_TOKEN = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
            "valid key for an active subscription and use a correct regional API endpoint for your "
            "resource.")
# The importer's vary-by on the requested deployment (importer/render.py VARY_BY_DEPLOYMENT).
VARY_BY_REQUESTED = '@(context.Variables.GetValueOrDefault<string>("ai-requested-deployment", ""))'
# Text that armsim's Content Safety rates severity 6 in every category (tests send it).
UNSAFE_MARKER = "armsim-unsafe"


def gateway_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """APIM's own error shape (the gateway, not the backend, answered)."""
    response = Response(json.dumps({"statusCode": status, "message": message}), status=status,
                        mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


# ---------------------------------------------------------------------------------------------
# Routing


@dataclass(frozen=True)
class Match:
    api: Any  # armsim.store.Entity of the API
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
# The gateway


# APIM's built-in health endpoint on every gateway: 200 with an empty body while the gateway serves.
STATUS_PATH = "status-0123456789abcdef"


class _GatewayHandler(WSGIRequestHandler):
    """Logs the request line without its query: a key sent as a query parameter stays out of logs."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug('gateway "%s %s" %s', self.command, self.path.split("?", 1)[0], code)

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
        logger.debug(message, *args)


class Gateway:
    """The gateway of every APIM service in the stand-in: ``{url}/{service name}/{api path}/…``."""

    def __init__(self, sim: Host, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self.log = RequestLog()
        self.tokens = TokenCounter()
        self.model = FakeModel()
        self.metrics: list[dict[str, Any]] = []  # what llm-emit-token-metric sent to App Insights
        # The semantic cache: key → (expires at, body, mimetype).
        self.cache: dict[tuple[str, ...], tuple[float, bytes, str]] = {}
        self._cache_lock = threading.Lock()
        self.pools = PoolRouter()
        self._server: BaseWSGIServer = make_server(host, port, self, threaded=True,
                                                   request_handler=_GatewayHandler)
        self.host, self.port = host, self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None
        # Down: every connection is dropped unanswered (what an unreachable gateway looks like to a
        # client), until set back or reset. Tests and /_armsim/gateway set it.
        self.down = False

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
        self.model.clear()
        self.down = False
        self.metrics.clear()
        with self._cache_lock:
            self.cache.clear()
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
        action = self.sim.faults.next_action(method, path) if not self.down else None
        if self.down or action == RESET:
            self._log(request, 0, started, clock, "reset")
            reset_connection(environ)
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
            if rest.rstrip("/").lower() == STATUS_PATH and request.method.upper() in ("GET", "HEAD"):
                return Response(status=200)  # APIM's gateway health endpoint: no key, no API
            found = self._route(svc, "/" + rest, request)
            if isinstance(found, Response):
                return found
            denied = self._check_key(svc, found.api, request)
            if denied is not None:
                return denied
            policy = state.store.get(f"{found.api.id}/policies/policy")
            inbound = _inbound(policy.private.get("doc") if policy else None)
            body = _json_body(request)
            requested = self._requested(found, request)
            refused = self._allow_list(inbound, requested)
            if refused is not None:
                return refused
            blocked = self._content_safety(svc, inbound, body)
            if blocked is not None:
                return blocked
            sub = self._subscription_id(svc, found.api, request)
            limit = _token_limit(inbound)
            lookup = _statement(inbound, "-semantic-cache-lookup")
            cache_key: tuple[str, ...] | None = None
            if lookup is not None:
                looked = self._cache_key(svc, found.api, lookup, sub, requested, body)
                if isinstance(looked, Response):
                    return looked
                cache_key = looked
            # Statements in the policy's order: a lookup before the limit answers hits for free.
            for step in _ordered(inbound, ("-semantic-cache-lookup", "-token-limit")):
                if step == "-token-limit" and limit is not None:
                    over = self._over_limit(found.api.id, sub, limit)
                    if over is not None:
                        return over
                elif step == "-semantic-cache-lookup" and cache_key is not None:
                    hit = self._cache_hit(cache_key)
                    if hit is not None:
                        return hit
            body = body if isinstance(body, dict) else {}
            pool = self.pools.pool_for(state.store, svc, inbound, requested)
            if pool is not None:  # armsim/pools.py: members, breakers, the policy's retry
                # Each member call carries the token a single-backend call would (policy or backend).
                backend_url, answer = self.pools.route(
                    self.sim, svc, pool, request.method, found.rest,
                    policy.private.get("doc") if policy else None,
                    lambda url, member: self._model(url, found, request, requested, body,
                                                    self._token(svc, inbound, member)))
            else:
                backend_url, backend = self._backend(svc, found.api, inbound)
                token = self._token(svc, inbound, backend)
                answer = (backend_fault(self.sim, request.method, backend_url.rstrip("/") + found.rest)
                          or self._model(backend_url, found, request, requested, body, token))
            if answer.status_code == 200:
                self._emit_metrics(svc, found.api, inbound, answer)
                store = _statement(_section(policy.private.get("doc") if policy else None, "outbound"),
                                   "-semantic-cache-store")
                if cache_key is not None and store is not None:
                    self._cache_store(cache_key, store, answer)
        answer.headers["x-armsim-backend-url"] = backend_url
        props = found.operation.body["properties"]
        answer.headers["x-armsim-operation"] = f"{str(props.get('method')).upper()} " \
                                               f"{props.get('urlTemplate')}"
        if limit is not None and answer.status_code == 200:
            self._count(found.api.id, sub, limit, answer, body)
        return answer

    # -- managed identity and data-plane roles ---------------------------------------------------

    @staticmethod
    def _principal(svc: Any) -> str | None:
        identity = svc.body.get("identity") or {}
        if "systemassigned" not in str(identity.get("type", "")).replace(" ", "").lower():
            return None
        return str(identity.get("principalId") or "") or None

    def _token(self, svc: Any, inbound: Element | None, backend: Any) -> tuple[str, str] | None:
        """(principal, audience) of the token the gateway attaches to the backend call: from the
        policy's ``authentication-managed-identity`` or the backend's ``credentials.managedIdentity``;
        None when the call goes without one. Only the system-assigned identity is modelled."""
        principal = self._principal(svc)
        for el in inbound.iter() if inbound is not None else ():
            if el.tag == "authentication-managed-identity":
                attrs = dict(el.attrs)
                if attrs.get("client-id"):
                    return None
                return (principal, attrs.get("resource", "")) if principal else None
        return self._backend_token(svc, backend)

    def _backend_token(self, svc: Any, backend: Any) -> tuple[str, str] | None:
        principal = self._principal(svc)
        props = (backend.body.get("properties") or {}) if backend is not None else {}
        identity = ((props.get("credentials") or {}).get("managedIdentity") or {})
        if not identity.get("resource") or identity.get("clientId") or principal is None:
            return None
        return principal, str(identity["resource"])

    def _denied(self, token: tuple[str, str] | None, resource: Any, route: str,
                action: str) -> Response | None:
        """The resource's own 401 unless the token's principal holds an inference role on it."""
        if token is None or token[1] not in COGNITIVE_AUDIENCES:
            return model_error(401, "401", NO_TOKEN)
        principal = token[0].lower()
        scope = resource.id.lower()
        for assignment in self.sim.state.store.of_type(authorization.ASSIGNMENT_TYPE):
            props = assignment.body.get("properties") or {}
            at = str(props.get("scope", "")).rstrip("/").lower()
            role = str(props.get("roleDefinitionId", "")).rstrip("/").rsplit("/", 1)[-1].lower()
            if (str(props.get("principalId", "")).lower() == principal and role in INFERENCE_ROLES[route]
                    and (scope == at or scope.startswith(at + "/"))):
                return None
        return model_error(401, "PermissionDenied", f"The principal `{token[0]}` lacks the required data "
                           f"action `{action}` to perform this operation.")

    def _resource_at(self, url: str) -> tuple[Any, str] | None:
        """The Cognitive Services account whose endpoint ``url`` starts with, and the rest of it."""
        for account in self.sim.state.store.of_type(cognitive.ACCOUNT_TYPE):
            props = account.body.get("properties") or {}
            for endpoint in (props.get("endpoint"), *(props.get("endpoints") or {}).values()):
                endpoint = str(endpoint or "").lower()
                if endpoint and url.lower().startswith(endpoint):
                    return account, url[len(endpoint):]
        return None

    # -- llm-content-safety ------------------------------------------------------------------------

    def _content_safety(self, svc: Any, inbound: Element | None, body: Any) -> Response | None:
        """Call the statement's backend with the backend's credentials, as the policy does: a
        missing backend, token or role fails the request; a prompt rated at or above a category's
        threshold is blocked with 403."""
        el = next((e for e in inbound.iter() if e.tag == "llm-content-safety"), None) if inbound else None
        if el is None:
            return None
        backend_id = dict(el.attrs).get("backend-id", "")
        backend = self.sim.state.store.get(f"{svc.id}/backends/{backend_id}")
        if backend is None:
            return gateway_error(500, f"llm-content-safety: backend '{backend_id}' was not found.")
        url = str((backend.body.get("properties") or {}).get("url") or "")
        found = self._resource_at(url)
        if found is None:
            return gateway_error(500, f"llm-content-safety: backend {url} could not be reached (armsim "
                                      "knows no resource with that endpoint).")
        denied = self._denied(self._backend_token(svc, backend), found[0], "contentsafety",
                              "Microsoft.CognitiveServices/accounts/ContentSafety/text:analyze/action")
        if denied is not None:
            said = json.loads(denied.get_data(as_text=True))["error"]["message"]
            return gateway_error(500, "llm-content-safety: the Content Safety backend answered "
                                      f"{denied.status_code}: {said}")
        texts = _prompt_texts(body)
        if any(UNSAFE_MARKER in t for t in texts):
            return gateway_error(403, "Request failed content safety check.")
        return None

    # -- semantic cache ----------------------------------------------------------------------------

    def _cache_key(self, svc: Any, api: Any, lookup: Element, sub: str, requested: str | None,
                   body: Any) -> tuple[str, ...] | Response | None:
        """The cache entry a request looks up: the API, each ``vary-by`` value and the prompt. Only
        the two fixed expressions the importer writes are evaluated (the subscription, the requested
        deployment); any other expression is taken as one constant, so it varies nothing
        (pessimistic). The embeddings call authenticates like any backend call. Similarity is exact
        text equality: ``score-threshold`` is not modelled. None: no external cache, no lookup."""
        store = self.sim.state.store
        if not store.children(f"{svc.id}/caches"):
            return None
        attrs = dict(lookup.attrs)
        backend = store.get(f"{svc.id}/backends/{attrs.get('embeddings-backend-id', '')}")
        if backend is None:
            return gateway_error(500, "semantic cache lookup: embeddings backend not found.")
        url = str((backend.body.get("properties") or {}).get("url") or "")
        at = self._resource_at(url)
        if at is None:
            return gateway_error(500, f"semantic cache lookup: embeddings backend {url} could not be "
                                      "reached.")
        principal = self._principal(svc)
        token = ((principal, COGNITIVE_AUDIENCES[0]) if principal and attrs.get("embeddings-backend-auth")
                 == "system-assigned" else self._backend_token(svc, backend))
        denied = self._denied(token, at[0], "openai",
                              "Microsoft.CognitiveServices/accounts/OpenAI/deployments/embeddings/action")
        if denied is not None:
            return gateway_error(500, f"semantic cache lookup: the embeddings backend answered "
                                      f"{denied.status_code}.")
        varies = []
        for el in lookup.children:
            if isinstance(el, Element) and el.tag == "vary-by":
                text = "".join(child_text(el)).strip()
                if text == "@(context.Subscription.Id)":
                    varies.append(sub)
                elif text == VARY_BY_REQUESTED:
                    varies.append((requested or "").lower())
                else:
                    varies.append("" if text.startswith("@") else text)
        return (api.id.lower(), *varies, json.dumps(_prompt_texts(body)))

    def _cache_hit(self, key: tuple[str, ...]) -> Response | None:
        with self._cache_lock:
            entry = self.cache.get(key)
            if entry is None or entry[0] < time.time():
                return None
            body, mimetype = entry[1], entry[2]
        response = Response(body, status=200, mimetype=mimetype)
        response.headers["x-armsim-cache"] = "hit"
        return response

    def _cache_store(self, key: tuple[str, ...], store: Element, answer: Response) -> None:
        duration = _int(dict(store.attrs).get("duration")) or 0
        with self._cache_lock:
            self.cache[key] = (time.time() + duration, answer.get_data(),
                               answer.mimetype or "application/json")

    # -- llm-emit-token-metric -------------------------------------------------------------------

    def _emit_metrics(self, svc: Any, api: Any, inbound: Element | None, answer: Response) -> None:
        """Record the statement's metrics only where APIM would send them: an ``applicationinsights``
        diagnostic (the API's, else the service's) with metrics on, on an applicationInsights logger."""
        el = next((e for e in inbound.iter() if e.tag.endswith("-emit-token-metric")),
                  None) if inbound else None
        if el is None:
            return
        store = self.sim.state.store
        diag = store.get(f"{api.id}/diagnostics/applicationinsights") or store.get(
            f"{svc.id}/diagnostics/applicationinsights")
        props = (diag.body.get("properties") or {}) if diag is not None else {}
        logger = store.get(str(props.get("loggerId", ""))) if props.get("loggerId") else None
        logger_type = str(((logger.body.get("properties") or {}) if logger else {}).get("loggerType", ""))
        if not props.get("metrics") or logger_type != "applicationInsights":
            return
        try:
            usage = json.loads(answer.get_data(as_text=True)).get("usage") or {}
        except ValueError:
            return
        dims = [dict(d.attrs).get("name", "") for d in el.children
                if isinstance(d, Element) and d.tag == "dimension"]
        self.metrics.append({"namespace": dict(el.attrs).get("namespace", ""), "api": api.name,
                             "logger": logger.name if logger else "", "dimensions": dims,
                             "prompt": usage.get("prompt_tokens"),
                             "completion": usage.get("completion_tokens"),
                             "total": usage.get("total_tokens")})

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
        """The key where the API says it is: its header name (Ocp-Apim-Subscription-Key unless
        renamed), its query name, and ``Authorization: Bearer`` only when ``bearer`` is enabled."""
        names = api.body["properties"].get("subscriptionKeyParameterNames") or {}
        header = names.get("header") or "Ocp-Apim-Subscription-Key"
        if request.headers.get(header):
            return str(request.headers[header])
        query = names.get("query") or "subscription-key"
        if request.args.get(query):
            return str(request.args[query])
        if str(names.get("bearer") or "").lower() == "enabled":
            scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
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
    def _requested(found: Match, request: Request) -> str:
        """The deployment a request names, lower-cased, read as the importer's expression reads it
        (importer.render.REQUESTED_EXPRESSION): the ``deployment-id`` path parameter, else the
        top-level ``model`` of the body of a POST whose Content-Type says JSON in any case (never
        under ``/fine_tuning/``, where ``model`` is a base model). "" when it names none; "||" for a
        ``model`` that is not a string, "|" + the name for a name with a character outside
        ``[A-Za-z0-9._-]``;
        INVALID_JSON for a body that does not parse (or nests deeper than Newtonsoft reads)."""
        name = found.params.get("deployment-id") or ""
        is_json = "json" in (request.headers.get("Content-Type") or "").lower()
        if not name and request.method == "POST" and is_json and "/fine_tuning/" not in request.path:
            raw = request.get_data(as_text=True)
            if raw.strip(_JSON_WHITESPACE):
                try:
                    body = json.loads(raw)
                except (ValueError, RecursionError):
                    return INVALID_JSON
                if _depth(body) > JSON_MAX_DEPTH:
                    return INVALID_JSON
                model = body.get("model") if isinstance(body, dict) else None
                name = "" if model is None else model if isinstance(model, str) else "|"
        return name.lower() if _NAME_CHARACTERS.fullmatch(name) else "|" + name

    def _allow_list(self, inbound: Element | None, requested: str) -> Response | None:
        """The policy's choice: its 400 for a body that is not JSON, its 404 for a name not on the
        list (the first ``when`` that holds, as APIM's ``choose`` takes it)."""
        allowed = _allow_list(inbound)
        if allowed is None or not requested:
            return None
        if requested == INVALID_JSON:
            # A policy without the 400 (rendered before it existed) had an expression that threw.
            return (_return_response(inbound, 400, {REQUESTED_VARIABLE: requested})
                    or gateway_error(500, "Internal server error"))
        if "|" not in requested and f"|{requested}|" in allowed:
            return None
        found = _return_response(inbound, 404, {ALLOWED_VARIABLE: allowed, REQUESTED_VARIABLE: requested})
        return found or Response(json.dumps(DEFAULT_NOT_FOUND), status=404, mimetype="application/json")

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

    def _count(self, api: str, sub: str, limit: dict[str, str], answer: Response,
               body: dict[str, Any]) -> None:
        """Count the answer's tokens: its usage, or for a stream without one (no
        ``stream_options.include_usage``) the prompt's estimate plus one token per streamed piece."""
        usage = usage_of(answer)
        if usage is None and answer.mimetype != "text/event-stream":
            return
        if usage is None:
            prompt = sum(estimate(t) for t in texts(body.get("messages") or body.get("input")))
            usage = {"total_tokens": prompt + stream_deltas(answer)}
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

    def _backend(self, svc: Any, api: Any, inbound: Element | None) -> tuple[str, Any]:
        """The backend call's base URL and the backend entity it comes from (None: a base-url or
        the API's serviceUrl)."""
        for el in inbound.iter() if inbound is not None else ():
            if el.tag == "set-backend-service":
                attrs = dict(el.attrs)
                if attrs.get("base-url"):
                    return attrs["base-url"], None
                backend = self.sim.state.store.get(f"{svc.id}/backends/{attrs.get('backend-id', '')}")
                if backend is not None:
                    return str(backend.body["properties"].get("url", "")), backend
        return str(api.body["properties"].get("serviceUrl", "")), None

    def _model(self, backend_url: str, found: Match, request: Request, requested: str | None,
               body: dict[str, Any], token: tuple[str, str] | None = None) -> Response:
        """Answer as the model endpoint at ``backend_url`` would (the account whose endpoint it is),
        after checking the call's token like the endpoint does."""
        store = self.sim.state.store
        at = self._resource_at(backend_url)
        if at is None:
            return gateway_error(500, f"Backend {backend_url} could not be reached (armsim knows no account "
                                      "with that endpoint).")
        account, below = at
        route = "models" if below.lower().startswith("models") else "openai"
        action = ("Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"
                  if route == "openai" else "Microsoft.CognitiveServices/accounts/MaaS/*")
        denied = self._denied(token, account, route, action)
        if denied is not None:
            return denied
        deployments = {}
        for d in store.children(f"{account.id}/deployments"):
            props = d.body.get("properties") or {}
            if props.get("provisioningState") == "Succeeded":
                model = props.get("model") or {}
                deployments[d.name.lower()] = Deployment(d.name, str(model.get("name") or d.name),
                                                         str(model.get("format") or "OpenAI"))
        props = found.operation.body["properties"]
        return self.model.answer(Call(account.id, request.method.upper(), str(props.get("urlTemplate", "")),
                                      found.rest, request, body, deployments, requested))


def _inbound(doc: Any) -> Element | None:
    return _section(doc, "inbound")


def _section(doc: Any, name: str) -> Element | None:
    if doc is None:
        return None
    return next((c for c in doc.root.children if isinstance(c, Element) and c.tag == name), None)


def _statement(section: Element | None, suffix: str) -> Element | None:
    """The first statement of a section whose tag ends with ``suffix`` (either policy family)."""
    return next((e for e in section.iter() if e.tag.endswith(suffix)), None) if section else None


def _ordered(section: Element | None, suffixes: tuple[str, ...]) -> list[str]:
    """Which of ``suffixes`` the section's statements end with, in the section's order."""
    out: list[str] = []
    for e in section.iter() if section is not None else ():
        for suffix in suffixes:
            if e.tag.endswith(suffix) and suffix not in out:
                out.append(suffix)
    return out


def _allow_list(inbound: Element | None) -> str | None:
    """The literal value of ``set-variable name="ai-allowed-deployments"`` (an expression is not read)."""
    for el in inbound.iter() if inbound is not None else ():
        attrs = dict(el.attrs)
        if el.tag == "set-variable" and attrs.get("name") == ALLOWED_VARIABLE:
            value = attrs.get("value", "")
            return None if value.startswith("@") else value
    return None


def _status_of(el: Element) -> int | None:
    for child in (c for c in el.children if isinstance(c, Element) and c.tag == "set-status"):
        code = dict(child.attrs).get("code", "")
        return int(code) if code.isdigit() else None
    return None


def _return_response(inbound: Element | None, status: int, variables: dict[str, str]) -> Response | None:
    """The policy's ``return-response`` with status ``status``: status, headers and body, each literal
    or a string expression the small evaluator reads (armsim/expressions.py) with ``variables`` set;
    None when it has none."""
    el = next((e for e in inbound.iter() if e.tag == "return-response" and _status_of(e) == status),
              None) if inbound else None
    if el is None:
        return None
    reason, body, headers = None, "", {}
    for child in (c for c in el.children if isinstance(c, Element)):
        attrs = dict(child.attrs)
        if child.tag == "set-status":
            reason = attrs.get("reason")
        elif child.tag == "set-header" and attrs.get("name"):
            values = [evaluate("".join(child_text(v)), variables) for v in child.children
                      if isinstance(v, Element)]
            headers[attrs["name"]] = ",".join(values)
        elif child.tag == "set-body":
            body = evaluate("".join(child_text(child)), variables)
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


def _depth(value: Any) -> int:
    """How deeply objects and arrays nest in a parsed JSON value (a scalar is 0)."""
    depth, level = 0, [(value, 1)]
    while level:
        item, d = level.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            depth = max(depth, d)
            level += [(c, d + 1) for c in children]
    return depth


def _prompt_texts(body: Any) -> list[str]:
    """The texts a prompt carries: chat messages, ``input`` (embeddings, responses), ``prompt``."""
    if not isinstance(body, dict):
        return []
    out: list[str] = []
    messages = body.get("messages")
    for m in messages if isinstance(messages, list) else []:
        if isinstance(m, dict):
            out += texts(m.get("content"))
    out += texts(body.get("input")) + texts(body.get("prompt"))
    return out


def _json_body(request: Request) -> Any:
    """The parsed JSON body the fake model reads, or None."""
    if "json" not in (request.headers.get("Content-Type") or "").lower():
        return None
    try:
        return json.loads(request.get_data(as_text=True))
    except (ValueError, RecursionError):
        return None
