"""The stand-in as a running server: WSGI app assembly, the /_armsim admin surface and ``start()``.

Rule: every ARM request takes the same path (latency → throttle → scripted fault → handler → log),
handlers run one at a time, and everything a test or sandbox can change is reachable both from
Python (``Sim``) and over HTTP (``/_armsim/...``) for out-of-process use.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from armsim import apim, authorization, cognitive, eventgrid
from armsim.answers import ArmError, json_response
from armsim.changes import CORRELATION, to_cloudevent
from armsim.context import Ctx, require_scope
from armsim.faults import RESET, Faults, fault_response, reset_connection
from armsim.gateway import Gateway
from armsim.ids import resource_group_of, resource_type_of, subscription_of
from armsim.requestlog import LogEntry, RequestLog, request_kind
from armsim.routing import Route, literal_segments
from armsim.state import Options, State
from armsim.throttle import Throttle, ThrottleConfig

logger = logging.getLogger(__name__)

ROUTES: list[Route] = [*apim.ROUTES, *cognitive.ROUTES, *authorization.ROUTES, *eventgrid.ROUTES]
_WRITES = ("PUT", "PATCH", "DELETE")
_THROTTLE_FIELDS = {f.name for f in dataclasses.fields(ThrottleConfig)} - {"enabled"}


class App:
    """The WSGI application. One instance per ``Sim``."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.map = Map([Rule(r.pattern, endpoint=r) for r in ROUTES], strict_slashes=False,
                       merge_slashes=False)
        self.literals = literal_segments(ROUTES)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        path = re.sub(r"/{2,}", "/", request.path)
        if path.startswith("/_armsim"):
            return self.sim.admin(request, path)(environ, start_response)
        response = self._arm(request, path, environ)
        return response(environ, start_response)

    def _arm(self, request: Request, path: str, environ: dict[str, Any]) -> Response:
        sim = self.sim
        method = request.method.upper()
        request.environ[CORRELATION] = request.headers.get("x-ms-correlation-request-id") or str(uuid.uuid4())
        started, clock = time.time(), time.monotonic()
        subscription = subscription_of(path)
        kind = request_kind(method)
        fault: str | None = None
        delay = sim.faults.delay_for(method, path)
        if delay:
            time.sleep(delay)
        response: Response | None = None
        wait, remaining = sim.throttle.take(subscription, kind) if subscription else (0.0, None)
        if wait:
            fault = "throttled"
            response = json_response(
                {"error": {"code": "TooManyRequests",
                           "message": f"Number of {kind} requests for subscription '{subscription}' exceeded "
                                      f"the limit. Please try again after {wait:.3f} seconds."}},
                429, {"Retry-After": sim.throttle.retry_after(wait)})
        else:
            action = sim.faults.next_action(method, path)
            if action == RESET:
                self._log(request, path, 0, started, clock, subscription, kind, "reset")
                reset_connection(environ)
            if action is not None:
                fault = "scripted"
                response = fault_response(action)
        if response is None:
            response = self._dispatch(request, path)
        response.headers["x-ms-request-id"] = str(uuid.uuid4())
        response.headers["x-ms-correlation-request-id"] = request.environ[CORRELATION]
        if remaining is not None:
            response.headers[f"x-ms-ratelimit-remaining-subscription-{kind}s"] = str(remaining)
        self._log(request, path, response.status_code, started, clock, subscription, kind, fault)
        return response

    def _log(self, request: Request, path: str, status: int, started: float, clock: float,
             subscription: str | None, kind: str, fault: str | None) -> None:
        query = request.query_string.decode()
        self.sim.log.append(LogEntry(request.method.upper(), path, query, status, started,
                                     time.monotonic() - clock, subscription, kind, fault))

    def _match(self, path: str, method: str) -> tuple[Route, dict[str, Any], str]:
        adapter = self.map.bind("armsim")
        try:
            route, values = adapter.match(path, method="GET")
            return route, dict(values), path
        except NotFound:
            # ARM matches literal segments case-insensitively: retry with their canonical spelling.
            canonical = "/".join(self.literals.get(s.lower(), s) for s in path.split("/"))
            try:
                route, values = adapter.match(canonical, method="GET")
            except NotFound:
                raise ArmError(501, "ArmsimNotImplemented",
                               f"armsim does not emulate {method} {path}.") from None
            return route, dict(values), canonical

    def _dispatch(self, request: Request, path: str) -> Response:
        state = self.sim.state
        method = request.method.upper()
        try:
            route, values, path = self._match(path, method)
            handler = route.handler(method)
            head_as_get = handler is None and method == "HEAD"
            if head_as_get:  # ARM answers HEAD like GET, without the body
                handler = route.handler("GET")
            if handler is None:
                raise ArmError(405, "MethodNotAllowed", f"armsim does not support {method} on {path}.")
            with state.lock:
                ctx = Ctx(request, path, state)
                self._require_api_version(ctx)
                if method == "GET":
                    state.touch(path)
                self._require_group(ctx, method)
                existed = state.store.get(path) is not None
                recorded = state.events.count()
                response = handler(ctx, **values)
                if method in _WRITES and state.events.count() == recorded:
                    self._event(ctx, method, response.status_code, existed)
            if head_as_get:
                response.set_data(b"")
            return response
        except ArmError as exc:
            return json_response(exc.body(), exc.status, exc.headers)
        except Exception as exc:  # a bug in armsim: answer like ARM would, and say so loudly
            logger.exception("armsim handler failed for %s %s", method, path)
            return json_response({"error": {"code": "ArmsimInternalError", "message": repr(exc)}}, 500)

    @staticmethod
    def _require_group(ctx: Ctx, method: str) -> None:
        """ARM answers a read below a resource group that does not exist with 404
        ResourceGroupNotFound, whatever the resource (a PUT creates the group here: see Store)."""
        group = resource_group_of(ctx.path)
        if group is not None and method in ("GET", "HEAD"):
            require_scope(ctx, group)

    @staticmethod
    def _event(ctx: Ctx, method: str, status: int, existed: bool) -> None:
        """Every write the stand-in serves raises its ARM event, as ARM does (handlers that record
        their own, the Cognitive Services ones, keep theirs): a PUT/PATCH that succeeded, a DELETE
        that removed something (a 204 for an absent resource raises nothing)."""
        if not 200 <= status < 300:
            return
        gone = ctx.state.store.get(ctx.path) is None
        if method == "DELETE" and not (existed and gone):
            return
        resource_type = resource_type_of(ctx.path)
        if resource_type:
            ctx.state.event(ctx, ctx.path, resource_type, "delete" if method == "DELETE" else "write")

    @staticmethod
    def _require_api_version(ctx: Ctx) -> None:
        if not ctx.api_version:
            raise ArmError(400, "MissingApiVersionParameter",
                           "The api-version query parameter (?api-version=) is required for all requests.")


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
        logger.debug(message, *args)


class Sim:
    """A running stand-in. Use as a context manager or call ``stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, page_size: int = 100,
                 tenant_id: str | None = None, lro_polls: int = 0, policy_indent: str = "  ",
                 latency: float = 0.0, faults: Iterable[dict[str, Any]] = (), throttling: bool = False,
                 gateway: bool = False, gateway_port: int = 0, **throttle: Any) -> None:
        unknown = set(throttle) - _THROTTLE_FIELDS
        if unknown:
            raise TypeError(f"unknown armsim option(s): {', '.join(sorted(unknown))}")
        options = Options(page_size=page_size, lro_polls=lro_polls, policy_indent=policy_indent)
        if tenant_id:
            options.tenant_id = tenant_id
        # The optional data plane: serves the imported APIs on its own port (armsim/gateway.py).
        self.gateway: Gateway | None = Gateway(self, host, gateway_port) if gateway else None
        if self.gateway is not None:
            options.gateway_url = self.gateway.url
        self._initial = (dataclasses.replace(options), list(faults), latency,
                         ThrottleConfig(enabled=throttling, **throttle))
        self.faults = Faults()
        self.log = RequestLog()
        self.throttle = Throttle(dataclasses.replace(self._initial[3]))
        self.state = State(options, self.faults)
        self._apply_initial_faults()
        self._server: BaseWSGIServer = make_server(host, port, App(self), threaded=True,
                                                   request_handler=_QuietHandler)
        self.host, self.port = host, self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Sim:
        if self.gateway is not None:
            self.gateway.start()
        if self._thread is None:
            # A short poll interval makes stop() quick; idle cost is negligible.
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"armsim:{self.port}", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        if self.gateway is not None:
            self.gateway.start()
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.gateway is not None:
            self.gateway.stop()

    def __enter__(self) -> Sim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget everything: resources, log, events, faults, and options/throttling back to the start."""
        options, _, _, throttle = self._initial
        with self.state.lock:
            self.state.clear()
            self.state.options = dataclasses.replace(options)
            self.faults.clear()
            self.log.clear()
            self.throttle.config = dataclasses.replace(throttle)
            self.throttle.configure()
            self._apply_initial_faults()
            if self.gateway is not None:
                self.gateway.reset()

    def _apply_initial_faults(self) -> None:
        _, faults, latency, _ = self._initial
        if latency:
            self.faults.latency(latency)
        for spec in faults:
            self.faults.add(spec)

    # -- inspection and control ---------------------------------------------------------------

    @property
    def options(self) -> Options:
        return self.state.options

    def set_options(self, **changes: Any) -> Options:
        for name, value in changes.items():
            if not hasattr(self.state.options, name):
                raise TypeError(f"unknown armsim option {name!r}")
            setattr(self.state.options, name, value)
        return self.state.options

    def events(self) -> list[dict[str, Any]]:
        """Event Grid events (Event Grid schema), oldest first."""
        return self.state.events.all()

    def cloud_events(self) -> list[dict[str, Any]]:
        """The same events as CloudEvents 1.0."""
        return [to_cloudevent(e) for e in self.events()]

    def clear_events(self) -> None:
        self.state.events.clear()

    def resource(self, resource_id: str) -> dict[str, Any] | None:
        """The stored body of a resource (a copy), or None."""
        with self.state.lock:
            entity = self.state.store.get(resource_id)
            return copy.deepcopy(entity.body) if entity else None

    def ids(self, resource_type: str | None = None) -> list[str]:
        """Ids of everything stored, or of one ARM type (``Microsoft.CognitiveServices/accounts``)."""
        with self.state.lock:
            entities = self.state.store.of_type(resource_type) if resource_type else self.state.store.all()
            return [e.id for e in entities if e.type != apim.LINK_TYPE]

    def add_file(self, name: str, text: str, content_type: str = "application/json") -> str:
        """Serve a document at ``{url}/_armsim/files/{name}``; returns that URL (for link imports)."""
        self.state.files[name] = (content_type, text)
        return f"{self.url}/_armsim/files/{name}"

    # -- admin HTTP surface -------------------------------------------------------------------

    def admin(self, request: Request, path: str) -> Response:
        try:
            return self._admin(request, path)
        except (ValueError, TypeError, KeyError) as exc:
            return json_response({"error": {"code": "ArmsimAdminError", "message": str(exc)}}, 400)

    def _admin(self, request: Request, path: str) -> Response:
        method = request.method.upper()
        route = path.removeprefix("/_armsim").strip("/")
        body = request.get_json(silent=True) or {}
        if route == "health":
            return json_response({"status": "ok", "url": self.url,
                                  "gateway": self.gateway.url if self.gateway else None})
        if route == "reset" and method == "POST":
            self.reset()
            return json_response({"status": "reset"})
        if route == "log":
            if method == "DELETE":
                self.log.clear()
                return Response(status=204)
            return json_response(self.log.as_dicts())
        if route == "events":
            if method == "DELETE":
                self.clear_events()
                return Response(status=204)
            schema = request.args.get("schema", "eventgrid")
            return json_response(self.cloud_events() if schema == "cloudevents" else self.events())
        if route == "faults":
            if method == "POST":
                for spec in body if isinstance(body, list) else [body]:
                    self.faults.add(spec)
            elif method == "DELETE":
                self.faults.clear()
            return json_response(self.faults.specs())
        if route == "throttle":
            if method in ("PUT", "POST", "PATCH"):
                self.throttle.configure(**body)
            return json_response(dataclasses.asdict(self.throttle.config))
        if route == "options":
            if method in ("PUT", "POST", "PATCH"):
                self.set_options(**body)
            return json_response(dataclasses.asdict(self.state.options))
        if route == "gateway" and self.gateway is not None:
            if method in ("PUT", "POST", "PATCH") and "down" in body:
                self.gateway.down = bool(body["down"])
            return json_response({"url": self.gateway.url, "down": self.gateway.down})
        if route == "state":
            with self.state.lock:
                entities = self.state.store.all()
                return json_response({e.id: e.body for e in entities if e.type != apim.LINK_TYPE})
        if route.startswith("files/"):
            name = route.removeprefix("files/")
            if method == "PUT":
                self.add_file(name, request.get_data(as_text=True), request.mimetype or "application/json")
                return json_response({"url": f"{self.url}/_armsim/files/{name}"}, 201)
            if name in self.state.files:
                content_type, text = self.state.files[name]
                return Response(text, content_type=content_type)
        error = {"code": "NotFound", "message": f"no admin route {method} {path}"}
        return json_response({"error": error}, 404)


def start(port: int = 0, host: str = "127.0.0.1", **options: Any) -> Sim:
    """Start a stand-in in a background thread; ``port=0`` picks a free port (see ``sim.url``)."""
    return Sim(host, port, **options).start()


def serve_forever(port: int, host: str = "127.0.0.1", **options: Any) -> None:
    """Serve in the foreground until Ctrl-C (``python -m armsim``, ``importer sandbox``)."""
    sim = Sim(host, port, **options)
    print(f"armsim listening on {sim.url}", flush=True)
    if sim.gateway is not None:
        print(f"armsim gateway on {sim.gateway.url}/{{APIM service name}}", flush=True)
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sim._server.server_close()
        if sim.gateway is not None:
            sim.gateway.stop()
