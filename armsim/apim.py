"""Microsoft.ApiManagement: the service and every piece an AI-gateway import touches.

Rule: answer like the service on the wire (status codes, LRO headers, re-serialised policies,
cascading deletes) and refuse what APIM refuses (path clashes, dangling backend, fragment or named
value references), so an importer's mistakes show up here before they reach Azure.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from werkzeug.wrappers import Response

from armsim import policyxml
from armsim.answers import ArmError, bad_request, json_response, system_data, utcnow, validation_error
from armsim.context import Ctx
from armsim.odata import field_getter, odata_filter
from armsim.routing import Route
from armsim.store import Entity, check_if_match

PROVIDER = "Microsoft.ApiManagement"
SERVICE_TYPE = f"{PROVIDER}/service"
SVC = "/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ApiManagement/service/<svc>"
_SVC_RE = re.compile(
    r"^(/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ApiManagement/service/[^/]+)",
    re.IGNORECASE)

INLINE_FORMATS = ("openapi+json", "openapi", "swagger-json")
LINK_FORMATS = ("openapi+json-link", "openapi-link", "swagger-link-json")
LINK_TYPE = "armsim/link"  # product-API and API-tag links: stored, but never listed as APIs or tags
SENDER_EMAIL = "apimgmt-noreply@mail.windowsazure.com"


def service_id(path: str) -> str:
    match = _SVC_RE.match(path)
    if not match:
        raise ArmError(400, "InvalidResourceId", f"{path} is not below an API Management service.")
    return match.group(1)


def _not_found(label: str) -> ArmError:
    return ArmError(404, "ResourceNotFound", f"{label} not found.")


def _require(ctx: Ctx, resource_id: str, label: str) -> Entity:
    entity = ctx.state.store.get(resource_id)
    if entity is None or entity.type == LINK_TYPE:
        raise _not_found(label)
    return entity


def _require_service(ctx: Ctx) -> Entity:
    svc = service_id(ctx.path)
    entity = ctx.state.store.get(svc)
    if entity is None:
        name = svc.rsplit("/", 1)[-1]
        group = svc.split("/")[4]
        raise ArmError(404, "ResourceNotFound",
                       f"The Resource '{SERVICE_TYPE}/{name}' under resource group '{group}' was not found.")
    return entity


def _body(resource_id: str, resource_type: str, props: dict[str, Any]) -> dict[str, Any]:
    name = resource_id.rsplit("/", 1)[-1]
    return {"id": resource_id, "type": resource_type, "name": name, "properties": props}


def _properties(ctx: Ctx) -> dict[str, Any]:
    props = ctx.body().get("properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise bad_request("'properties' must be an object.")
    return dict(props)


def _lro_headers(ctx: Ctx, resource_id: str, op_id: str, status: int) -> dict[str, str]:
    """What APIM sends for an async PUT: a tenant operation to poll and the entity to GET after."""
    svc = service_id(resource_id)
    return {"Azure-AsyncOperation": ctx.url(f"{svc}/tenant/operationResults/{op_id}"),
            "Location": ctx.url(resource_id, asyncId=op_id, asyncCode=str(status))}


def _async_put(ctx: Ctx, resource_id: str, preview: dict[str, Any], apply: Callable[[], None],
               created: bool, error: dict[str, Any] | None = None) -> Response:
    """Accept an async PUT: ``apply`` runs when the operation succeeds (at once unless a fault delays it)."""
    status = 201 if created else 200
    def done(outcome: str) -> None:
        if outcome == "Succeeded":
            apply()

    op = ctx.state.begin(ctx, resource_id, on_done=done, error=error)
    body = copy.deepcopy(preview)
    body["properties"]["provisioningState"] = "InProgress"
    return json_response(body, status, _lro_headers(ctx, resource_id, op.id, status))


def operation_status(ctx: Ctx, op: str, **_: str) -> Response:
    return json_response(ctx.state.poll(op).body())


# ---------------------------------------------------------------------------------------------
# Service


def _identity(ctx: Ctx, requested: Any, previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """SystemAssigned gets a principal (kept while it stays on); type None removes the identity."""
    if not isinstance(requested, dict):
        return None
    kind = str(requested.get("type") or "None")
    flat = kind.replace(" ", "").lower()
    if flat == "none":
        return None
    identity: dict[str, Any] = {"type": kind}
    if "systemassigned" in flat:
        keep = previous and "systemassigned" in str(previous.get("type", "")).replace(" ", "").lower()
        identity["principalId"] = previous["principalId"] if keep and previous else str(uuid.uuid4())
        identity["tenantId"] = ctx.state.options.tenant_id
    if "userassigned" in flat:
        identity["userAssignedIdentities"] = {
            uid: {"principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, uid.lower())),
                  "clientId": str(uuid.uuid5(uuid.NAMESPACE_DNS, uid.lower()))}
            for uid in (requested.get("userAssignedIdentities") or {})}
    return identity


def _service_body(ctx: Ctx, resource_id: str, request: dict[str, Any], previous: dict[str, Any] | None,
                  ) -> dict[str, Any]:
    name = resource_id.rsplit("/", 1)[-1]
    props = dict(request.get("properties") or {})
    for required in ("publisherEmail", "publisherName"):
        if not props.get(required):
            raise bad_request(f"properties.{required} is required.", "InvalidParameter")
    if not request.get("location") or not (request.get("sku") or {}).get("name"):
        raise bad_request("location and sku.name are required.", "InvalidParameter")
    host = f"{name}.azure-api.net"  # the examples keep the service name's case
    old = (previous or {}).get("properties", {})
    props.update({
        "notificationSenderEmail": props.get("notificationSenderEmail", SENDER_EMAIL),
        "provisioningState": "Succeeded",
        "targetProvisioningState": "",
        "createdAtUtc": old.get("createdAtUtc", utcnow()),
        # With the local gateway on (Sim(gateway=True)), the service's gateway is served by it.
        "gatewayUrl": (f"{ctx.state.options.gateway_url}/{name}" if ctx.state.options.gateway_url
                       else f"https://{host}"),
        "gatewayRegionalUrl": f"https://{name.lower()}-{_loc(request['location'])}-01.regional.azure-api.net",
        "portalUrl": f"https://{name.lower()}.portal.azure-api.net",
        "developerPortalUrl": f"https://{name.lower()}.developer.azure-api.net",
        "managementApiUrl": f"https://{name.lower()}.management.azure-api.net",
        "scmUrl": f"https://{name.lower()}.scm.azure-api.net",
        "hostnameConfigurations": props.get("hostnameConfigurations") or [
            {"type": "Proxy", "hostName": host, "negotiateClientCertificate": False,
             "defaultSslBinding": True, "certificateSource": "BuiltIn"}],
        "virtualNetworkType": props.get("virtualNetworkType", "None"),
        "publicNetworkAccess": props.get("publicNetworkAccess", "Enabled"),
        "enableClientCertificate": bool(props.get("enableClientCertificate", False)),
        "platformVersion": "stv2",
    })
    body: dict[str, Any] = {
        "id": resource_id, "name": name, "type": SERVICE_TYPE, "tags": request.get("tags") or {},
        "location": request["location"], "etag": "", "properties": props, "sku": request["sku"],
    }
    identity = _identity(ctx, request.get("identity"), (previous or {}).get("identity"))
    if identity:
        body["identity"] = identity
    body["systemData"] = system_data(previous)
    return body


def _loc(location: str) -> str:
    return location.replace(" ", "").lower()


def _store_service(ctx: Ctx, resource_id: str, body: dict[str, Any]) -> Entity:
    entity, _created = ctx.state.store.put(resource_id, body)
    entity.body["etag"] = entity.etag
    return entity


def service_put(ctx: Ctx, **_: str) -> Response:
    store = ctx.state.store
    existing = store.get(ctx.path)
    check_if_match(ctx.request, existing)
    body = _service_body(ctx, ctx.path, ctx.body(), existing.body if existing else None)
    body["properties"]["provisioningState"] = "Activating" if existing is None else "Updating"
    entity = _store_service(ctx, ctx.path, body)
    if existing is None:
        # Every instance has the built-in Azure Monitor logger (diagnostics' loggerId
        # /loggers/azuremonitor); its resource logs go where the service's diagnostic settings say.
        rid = f"{ctx.path}/loggers/azuremonitor"
        store.put(rid, _body(rid, LOGGERS.type, {"loggerType": "azureMonitor", "isBuffered": True}))

    def done(outcome: str) -> None:
        entity.body["properties"]["provisioningState"] = "Succeeded" if outcome == "Succeeded" else "Failed"

    op = ctx.state.begin(ctx, ctx.path, on_done=done)
    url = ctx.url(f"{ctx.path}/operationresults/{op.id}")
    status = 201 if existing is None else 200
    return ctx.entity(entity, status, {"Azure-AsyncOperation": url, "Location": url})


def service_get(ctx: Ctx, **_: str) -> Response:
    entity = _require_service(ctx)
    return ctx.entity(entity)


def service_patch(ctx: Ctx, **_: str) -> Response:
    entity = _require_service(ctx)
    check_if_match(ctx.request, entity)
    patch = ctx.body()
    merged = copy.deepcopy(entity.body)
    merged["properties"].update(patch.get("properties") or {})
    for key in ("tags", "sku"):
        if key in patch:
            merged[key] = patch[key]
    merged["identity"] = patch["identity"] if "identity" in patch else entity.body.get("identity")
    body = _service_body(ctx, entity.id, merged, entity.body)
    return ctx.entity(_store_service(ctx, entity.id, body))


def service_delete(ctx: Ctx, **_: str) -> Response:
    entity = ctx.state.store.get(ctx.path)
    if entity is None:
        return ctx.empty(204)
    check_if_match(ctx.request, entity)
    ctx.state.store.delete(entity.id)
    return ctx.empty(200)


def service_list(ctx: Ctx, **_: str) -> Response:
    under = ctx.path.rsplit("/providers/", 1)[0]
    return ctx.page([e.body for e in ctx.state.store.of_type(SERVICE_TYPE, under)])


# ---------------------------------------------------------------------------------------------
# Generic child entities (tags, named values, caches, loggers, diagnostics, products, backends, ...)


Build = Callable[[Ctx, str, dict[str, Any], Entity | None], dict[str, Any]]
View = Callable[[Ctx, Entity], dict[str, Any]]


@dataclass(frozen=True)
class Kind:
    collection: str
    type: str
    label: str
    required: tuple[str, ...] = ()
    build: Build | None = None  # validate and fill defaults; returns the stored properties
    view: View | None = None  # what GET shows (e.g. secrets hidden)
    async_put: bool = False  # APIM answers PUT with an operation to poll


def _view(ctx: Ctx, kind: Kind, entity: Entity) -> dict[str, Any]:
    return kind.view(ctx, entity) if kind.view else entity.body


def _parent_of(ctx: Ctx) -> str:
    parent = ctx.path.rsplit("/", 2)[0]
    if parent.lower() != service_id(ctx.path).lower():
        label = parent.split("/")[-2].rstrip("s").capitalize()
        _require(ctx, parent, label)
    else:
        _require_service(ctx)
    return parent


def child_list(ctx: Ctx, kind: Kind, **_: str) -> Response:
    collection = ctx.path
    parent = collection.rsplit("/", 1)[0]
    if parent.lower() == service_id(ctx.path).lower():
        _require_service(ctx)
    else:
        _require(ctx, parent, "Parent entity")
    keep = odata_filter(ctx.arg("$filter"), field_getter)
    items = [_view(ctx, kind, e) for e in ctx.state.store.children(collection) if e.type != LINK_TYPE]
    return ctx.page([b for b in items if keep(b)], count=True)


def child_get(ctx: Ctx, kind: Kind, **_: str) -> Response:
    _parent_of(ctx)
    entity = _require(ctx, ctx.path, kind.label)
    return ctx.entity(entity, body=_view(ctx, kind, entity))


def child_put(ctx: Ctx, kind: Kind, **_: str) -> Response:
    _parent_of(ctx)
    store = ctx.state.store
    existing = store.get(ctx.path)
    check_if_match(ctx.request, existing)
    props = _properties(ctx)
    missing = [r for r in kind.required if props.get(r) in (None, "")]
    if missing:
        raise validation_error(f"'{missing[0]}' is required.", missing[0])
    stored = kind.build(ctx, ctx.path, props, existing) if kind.build else props
    body = _body(ctx.path, kind.type, stored)
    if kind.async_put:
        rid = ctx.path

        def apply() -> None:
            store.put(rid, body)

        preview = _view(ctx, kind, Entity(rid, body, ""))
        return _async_put(ctx, rid, preview, apply, existing is None)
    entity, created = store.put(ctx.path, body)
    return ctx.entity(entity, 201 if created else 200, body=_view(ctx, kind, entity))


def child_patch(ctx: Ctx, kind: Kind, **_: str) -> Response:
    _parent_of(ctx)
    entity = _require(ctx, ctx.path, kind.label)
    check_if_match(ctx.request, entity)
    props = {**entity.body["properties"], **_properties(ctx)}
    stored = kind.build(ctx, ctx.path, props, entity) if kind.build else props
    entity, _created = ctx.state.store.put(entity.id, _body(entity.id, kind.type, stored), entity.private)
    return ctx.entity(entity, body=_view(ctx, kind, entity))


def child_delete(ctx: Ctx, kind: Kind, **_: str) -> Response:
    return entity_delete(ctx)


def entity_delete(ctx: Ctx, **_: str) -> Response:
    """DELETE with If-Match; 200 when deleted, 204 when already gone (ARM's rule)."""
    entity = ctx.state.store.get(ctx.path)
    if entity is None:
        return ctx.empty(204)
    check_if_match(ctx.request, entity)
    _cascade(ctx, entity)
    ctx.state.store.delete(entity.id)
    return ctx.empty(200)


def _cascade(ctx: Ctx, entity: Entity) -> None:
    """Links that point at a deleted entity go with it (its own children go with the subtree)."""
    store = ctx.state.store
    svc = service_id(entity.id)
    if entity.type == f"{SERVICE_TYPE}/tags":
        for api in store.children(f"{svc}/apis"):
            store.delete(f"{api.id}/tags/{entity.name}")
    if entity.type == f"{SERVICE_TYPE}/apis":
        for product in store.children(f"{svc}/products"):
            store.delete(f"{product.id}/apis/{entity.name}")


def child_routes(prefix: str, kind: Kind, id_name: str) -> list[Route]:
    def bind(fn: Callable[..., Response]) -> Callable[..., Response]:
        def handler(ctx: Ctx, **values: str) -> Response:
            return fn(ctx, kind, **values)
        return handler

    collection = f"{prefix}/{kind.collection}"
    return [
        Route(collection, get=bind(child_list)),
        Route(f"{collection}/<{id_name}>", get=bind(child_get), put=bind(child_put), patch=bind(child_patch),
              delete=bind(child_delete)),
    ]


def _mask(entity_id: str, salt: str) -> str:
    return "{{" + uuid.uuid5(uuid.NAMESPACE_URL, entity_id.lower() + salt).hex[:24] + "}}"


def _build_named_value(ctx: Ctx, rid: str, props: dict[str, Any], _existing: Entity | None) -> dict[str, Any]:
    if not re.match(r"^[A-Za-z0-9._-]+$", str(props.get("displayName", ""))):
        raise validation_error("displayName may contain only letters, digits, '.', '-' and '_'.",
                               "displayName")
    if props.get("value") in (None, "") and not props.get("keyVault"):
        raise validation_error("'value' is required unless keyVault is given.", "value")
    return {"displayName": props["displayName"], "value": props.get("value"), "tags": props.get("tags") or [],
            "secret": bool(props.get("secret", False)), **({"keyVault": props["keyVault"]}
                                                            if props.get("keyVault") else {})}


def _view_named_value(_ctx: Ctx, entity: Entity) -> dict[str, Any]:
    body = copy.deepcopy(entity.body)
    if body["properties"].get("secret"):
        body["properties"].pop("value", None)
    return body


def _view_cache(_ctx: Ctx, entity: Entity) -> dict[str, Any]:
    body = copy.deepcopy(entity.body)
    body["properties"]["connectionString"] = _mask(entity.id, "cache")
    return body


def _view_logger(_ctx: Ctx, entity: Entity) -> dict[str, Any]:
    body = copy.deepcopy(entity.body)
    creds = body["properties"].get("credentials")
    if isinstance(creds, dict):
        body["properties"]["credentials"] = {k: "{{Logger-Credentials--" + _mask(entity.id, k)[2:26] + "}}"
                                             for k in creds}
    return body


def _build_logger(_ctx: Ctx, _rid: str, props: dict[str, Any], _e: Entity | None) -> dict[str, Any]:
    if props["loggerType"] not in ("applicationInsights", "azureEventHub", "azureMonitor"):
        raise validation_error(f"Unknown loggerType {props['loggerType']!r}.", "loggerType")
    return {"isBuffered": True, **props}


def _build_diagnostic(ctx: Ctx, rid: str, props: dict[str, Any], _e: Entity | None) -> dict[str, Any]:
    if not newer_version(ctx):
        props = {k: v for k, v in props.items() if k != "largeLanguageModel"}
    logger = str(props["loggerId"]).rstrip("/").rsplit("/", 1)[-1]
    svc = service_id(rid)
    if ctx.state.store.get(f"{svc}/loggers/{logger}") is None:
        raise validation_error(f"Logger entity with id '{logger}' was not found.", "loggerId")
    return {**props, "loggerId": f"{svc}/loggers/{logger}"}


def _build_product(_ctx: Ctx, _rid: str, props: dict[str, Any], _e: Entity | None) -> dict[str, Any]:
    out = {"displayName": props["displayName"],
           "subscriptionRequired": props.get("subscriptionRequired", True),
           "state": props.get("state", "notPublished")}
    for key in ("description", "terms", "approvalRequired", "subscriptionsLimit"):
        if key in props:
            out[key] = props[key]
    return out


# Fields of newer api-versions (2024-06-01-preview on): an older version's request can't carry them,
# so the service ignores them there. armsim drops them from such a request (pessimistic), and keeps
# every other field it does not interpret.
NEWER_FIELDS_SINCE = "2024-06-01-preview"


def newer_version(ctx: Ctx) -> bool:
    return ctx.api_version >= NEWER_FIELDS_SINCE


def _build_backend(ctx: Ctx, rid: str, props: dict[str, Any], _e: Entity | None) -> dict[str, Any]:
    creds = props.get("credentials")
    if isinstance(creds, dict) and "managedIdentity" in creds and not newer_version(ctx):
        props = {**props, "credentials": {k: v for k, v in creds.items() if k != "managedIdentity"}}
    identity = (props.get("credentials") or {}).get("managedIdentity")
    if identity is not None and (not isinstance(identity, dict) or not identity.get("resource")):
        raise validation_error("credentials.managedIdentity.resource is required.",
                               "credentials.managedIdentity")
    kind = str(props.get("type") or "Single")
    if kind.lower() == "pool":
        services = (props.get("pool") or {}).get("services") or []
        if not services:
            raise validation_error("A Pool backend needs at least one entry in pool.services.", "pool")
        svc = service_id(rid)
        for member in services:
            name = str(member.get("id", "")).rstrip("/").rsplit("/", 1)[-1]
            target = ctx.state.store.get(f"{svc}/backends/{name}")
            if target is None:
                raise validation_error(f"Backend with id '{name}' in pool.services was not found.", "pool")
            if str(target.body["properties"].get("type", "")).lower() == "pool":
                raise validation_error(f"Backend '{name}' is a pool; pools cannot contain pools.", "pool")
        return {"title": None, "url": None, "protocol": None, **props, "type": "Pool"}
    for required in ("url", "protocol"):
        if not props.get(required):
            raise validation_error(f"'{required}' is required for a Single backend.", required)
    if props["protocol"] not in ("http", "soap"):
        raise validation_error("protocol must be 'http' or 'soap'.", "protocol")
    return props


TAGS = Kind("tags", f"{SERVICE_TYPE}/tags", "Tag", ("displayName",))
NAMED_VALUES = Kind("namedValues", f"{SERVICE_TYPE}/namedValues", "NamedValue", ("displayName",),
                    _build_named_value, _view_named_value, async_put=True)
CACHES = Kind("caches", f"{SERVICE_TYPE}/caches", "Cache", ("connectionString", "useFromLocation"),
              view=_view_cache)
LOGGERS = Kind("loggers", f"{SERVICE_TYPE}/loggers", "Logger", ("loggerType",), _build_logger, _view_logger)
DIAGNOSTICS = Kind("diagnostics", f"{SERVICE_TYPE}/diagnostics", "Diagnostic", ("loggerId",),
                   _build_diagnostic)
API_DIAGNOSTICS = Kind("diagnostics", f"{SERVICE_TYPE}/apis/diagnostics", "Diagnostic", ("loggerId",),
                       _build_diagnostic)
PRODUCTS = Kind("products", f"{SERVICE_TYPE}/products", "Product", ("displayName",), _build_product)
BACKENDS = Kind("backends", f"{SERVICE_TYPE}/backends", "Backend", (), _build_backend)


def named_value_list_value(ctx: Ctx, **_: str) -> Response:
    entity = _require(ctx, ctx.path.rsplit("/", 1)[0], "NamedValue")
    return json_response({"value": entity.body["properties"].get("value")})


# ---------------------------------------------------------------------------------------------
# APIs and their import


def _fetch_link(ctx: Ctx, link: str) -> tuple[str | None, dict[str, Any] | None]:
    """Links are fetched only from file:// or from this stand-in's /_armsim/files (no network)."""
    parsed = urlparse(link)
    try:
        if parsed.scheme == "file":
            return Path(url2pathname(unquote(parsed.path))).read_text(encoding="utf-8"), None
        if parsed.scheme in ("http", "https") and _is_self(ctx, parsed.netloc):
            name = parsed.path.removeprefix("/_armsim/files/")
            if name != parsed.path and name in ctx.state.files:
                return ctx.state.files[name][1], None
            return None, {"code": "ValidationError", "message": f"armsim serves no document at {link}."}
    except OSError as exc:
        return None, {"code": "ValidationError", "message": f"armsim could not read {link}: {exc}"}
    return None, {"code": "ValidationError",
                  "message": f"armsim cannot fetch {link}: it has no network access. Link a file:// URL "
                             f"or a document uploaded to this stand-in "
                             f"({ctx.request.host_url}_armsim/files/<name>)."}


def _is_self(ctx: Ctx, netloc: str) -> bool:
    host, _, port = netloc.lower().rpartition(":")
    own_host, _, own_port = ctx.request.host.lower().rpartition(":")
    local = {"127.0.0.1", "localhost", own_host}
    return port == own_port and host in local


def _parse_document(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            import yaml
        except ImportError as exc:
            raise ValueError("armsim reads OpenAPI documents as JSON (YAML needs PyYAML installed)") from exc
        doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        raise ValueError("the document has no 'paths' object")
    if "openapi" not in doc and "swagger" not in doc:
        raise ValueError("the document is neither OpenAPI 3 ('openapi') nor Swagger 2 ('swagger')")
    return doc


def _resolve(doc: dict[str, Any], item: Any) -> dict[str, Any]:
    ref = item.get("$ref") if isinstance(item, dict) else None
    if not ref:
        return item if isinstance(item, dict) else {}
    node: Any = doc
    for part in ref.lstrip("#/").split("/"):
        node = node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, dict) else {}
    return _resolve(doc, node) if isinstance(node, dict) and "$ref" in node else node


def _param_type(param: dict[str, Any]) -> str:
    return str((param.get("schema") or {}).get("type") or param.get("type") or "string")


def _template(name: str, param: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "type": _param_type(param), "required": True, "values": []}


_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def operation_name(operation_id: str | None, method: str, path: str) -> str:
    """APIM keeps the operationId as the name, minus characters it does not allow; else method-path."""
    if operation_id:
        name = re.sub(r"[^A-Za-z0-9._~-]+", "-", operation_id).strip("-")
    else:
        name = re.sub(r"[^a-z0-9]+", "-", f"{method}-{path}".lower()).strip("-")
    return name[:80] or method


def derive_operations(doc: dict[str, Any], translate: str = "template") -> list[tuple[str, dict[str, Any]]]:
    """Each path+method becomes an operation; required query parameters join the URL template."""
    result: list[tuple[str, dict[str, Any]]] = []
    used: set[str] = set()
    for path, item in doc["paths"].items():
        if not isinstance(item, dict):
            continue
        shared = [_resolve(doc, p) for p in item.get("parameters", [])]
        for method in _METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            params: dict[tuple[str, str], dict[str, Any]] = {}
            for param in shared + [_resolve(doc, p) for p in op.get("parameters", [])]:
                if param.get("name") and param.get("in"):
                    params[(param["name"], param["in"])] = param
            declared_path = {name: p for (name, where), p in params.items() if where == "path"}
            template = [_template(n, declared_path.get(n, {})) for n in re.findall(r"\{([^}]+)\}", path)]
            required_query = [p for (_, where), p in params.items() if where == "query" and p.get("required")]
            url = path
            if translate != "query" and required_query:
                url += "?" + "&".join(f"{p['name']}={{{p['name']}}}" for p in required_query)
                template += [_template(p["name"], p) for p in required_query]
            optional_query = [p for (_, where), p in params.items() if where == "query"
                              and (translate == "query" or not p.get("required"))]
            name = base = operation_name(op.get("operationId"), method, path)
            suffix = 1
            while name.lower() in used:
                suffix += 1
                name = f"{base[:76]}-{suffix}"
            used.add(name.lower())
            props: dict[str, Any] = {
                "displayName": str(op.get("summary") or op.get("operationId") or name)[:300],
                "method": method.upper(),
                "urlTemplate": url,
                "templateParameters": template,
                "description": op.get("description", ""),
                "request": {
                    "queryParameters": [{"name": p["name"], "type": _param_type(p),
                                         "required": bool(p.get("required")), "values": []}
                                        for p in optional_query],
                    "headers": [{"name": p["name"], "type": _param_type(p),
                                 "required": bool(p.get("required")), "values": []}
                                for (_, where), p in params.items() if where == "header"],
                    "representations": [],
                },
                "responses": [],
            }
            result.append((name, props))
    return result


def _document_defaults(doc: dict[str, Any]) -> dict[str, Any]:
    info = doc.get("info") or {}
    out: dict[str, Any] = {}
    if info.get("title"):
        out["displayName"] = info["title"]
    if info.get("description"):
        out["description"] = info["description"]
    servers = doc.get("servers") or []
    absolute = [s["url"] for s in servers if isinstance(s, dict) and isinstance(s.get("url"), str)
                and s["url"].lower().startswith(("http://", "https://"))]
    if absolute:  # the first absolute one: a relative server URL is relative to the document's
        out["serviceUrl"] = absolute[0]
    elif doc.get("host"):
        scheme = (doc.get("schemes") or ["https"])[0]
        out["serviceUrl"] = f"{scheme}://{doc['host']}{doc.get('basePath', '')}"
    return out


_IMPORT_ONLY = ("format", "value", "wsdlSelector", "translateRequiredQueryParameters", "apiType")


def _api_properties(props: dict[str, Any], defaults: dict[str, Any], *,
                    imported: bool = False) -> dict[str, Any]:
    """The API contract a PUT leaves. ``imported`` (the PUT carried format + value): modelled on the
    pessimistic reading of real APIM (azure-cli #20812, azure-powershell, Terraform azurerm's
    import-then-update): the description is the document's ``info.description`` (none without
    one) whatever the PUT said, and the service URL the document's first absolute ``servers`` URL
    unless the PUT gives one."""
    given = {k: v for k, v in props.items() if k not in _IMPORT_ONLY and k != "provisioningState"}
    out: dict[str, Any] = {
        "displayName": given.pop("displayName", None) or defaults.get("displayName"),
        "apiRevision": given.pop("apiRevision", "1"),
    }
    said = given.pop("description", None)
    description = defaults.get("description") if imported else said or defaults.get("description")
    if description:
        out["description"] = description
    out["subscriptionRequired"] = given.pop("subscriptionRequired", True)
    service_url = given.pop("serviceUrl", None) or defaults.get("serviceUrl")
    if service_url:
        out["serviceUrl"] = service_url
    out["path"] = given.pop("path", None)
    out["protocols"] = given.pop("protocols", None) or ["https"]
    out["subscriptionKeyParameterNames"] = given.pop("subscriptionKeyParameterNames", None) or {
        "header": "Ocp-Apim-Subscription-Key", "query": "subscription-key"}
    bearer = out["subscriptionKeyParameterNames"].get("bearer")
    if bearer is not None and str(bearer).lower() not in ("enabled", "disabled"):
        raise validation_error("subscriptionKeyParameterNames.bearer must be 'enabled' or 'disabled'.",
                               "subscriptionKeyParameterNames")
    out["type"] = given.pop("type", None) or "http"
    out["isCurrent"] = given.pop("isCurrent", True)
    out.update(given)
    return out


def _api_fields(ctx: Ctx, props: dict[str, Any]) -> dict[str, Any]:
    """``subscriptionKeyParameterNames.bearer`` exists from 2024-06-01-preview on (see NEWER_FIELDS_SINCE)."""
    keys = props.get("subscriptionKeyParameterNames")
    if isinstance(keys, dict) and "bearer" in keys and not newer_version(ctx):
        props = {**props, "subscriptionKeyParameterNames": {k: v for k, v in keys.items() if k != "bearer"}}
    return props


def _check_path(ctx: Ctx, api_id: str, props: dict[str, Any]) -> None:
    if props.get("path") is None:
        raise validation_error("'path' is required.", "path")
    if not props.get("displayName"):
        raise validation_error("'displayName' is required.", "displayName")
    path = str(props["path"]).strip("/").lower()
    for other in ctx.state.store.children(f"{service_id(api_id)}/apis"):
        if other.id.lower() == api_id.lower():
            continue
        same_set = props.get("apiVersionSetId") and (
            other.body["properties"].get("apiVersionSetId") == props.get("apiVersionSetId"))
        if str(other.body["properties"].get("path", "")).strip("/").lower() == path and not same_set:
            raise validation_error(f"Cannot create API '{api_id.rsplit('/', 1)[-1]}' with the same Path "
                                   f"'{props['path']}' as API '{other.name}'  unless it's a part of the same "
                                   f"version set", "path")


API_TYPE = f"{SERVICE_TYPE}/apis"
OPERATION_TYPE = f"{SERVICE_TYPE}/apis/operations"


def api_put(ctx: Ctx, **_: str) -> Response:
    _require_service(ctx)
    store = ctx.state.store
    rid = ctx.path
    existing = store.get(rid)
    check_if_match(ctx.request, existing)
    props = _api_fields(ctx, _properties(ctx))
    fmt, value = props.get("format"), props.get("value")
    translate = str(props.get("translateRequiredQueryParameters") or "template")
    if value is None:
        contract = _api_properties(props, {})
        _check_path(ctx, rid, contract)
        entity, created = store.put(rid, _body(rid, API_TYPE, contract))
        return ctx.entity(entity, 201 if created else 200)

    doc: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    if fmt in LINK_FORMATS:
        text, error = _fetch_link(ctx, str(value))
        if text is not None:
            try:
                doc = _parse_document(text)
            except ValueError as exc:
                error = {"code": "ValidationError", "message": f"Parsing error(s): {exc}"}
    elif fmt in INLINE_FORMATS:
        try:
            doc = _parse_document(str(value))
        except ValueError as exc:
            raise validation_error(f"Parsing error(s): {exc}", "value") from exc
    else:
        raise validation_error(f"armsim imports only OpenAPI/Swagger documents (formats "
                               f"{', '.join(INLINE_FORMATS + LINK_FORMATS)}), not {fmt!r}.", "format")

    defaults = _document_defaults(doc) if doc else {}
    if ctx.state.options.import_metadata == "document":
        props = {**props, **defaults}  # the document's title and server win too (doctor's probe)
    contract = _api_properties(props, defaults, imported=True)
    contract["displayName"] = contract.get("displayName") or rid.rsplit("/", 1)[-1]
    _check_path(ctx, rid, contract)
    body = _body(rid, API_TYPE, contract)
    operations = derive_operations(doc, translate) if doc else []

    def apply() -> None:
        store.put(rid, body)
        for old in store.children(f"{rid}/operations"):
            store.delete(old.id)
        for name, op_props in operations:
            store.put(f"{rid}/operations/{name}", _body(f"{rid}/operations/{name}", OPERATION_TYPE, op_props))

    return _async_put(ctx, rid, body, apply, existing is None, error)


def api_get(ctx: Ctx, **_: str) -> Response:
    _require_service(ctx)
    return ctx.entity(_require(ctx, ctx.path, "Api"))


def api_patch(ctx: Ctx, **_: str) -> Response:
    _require_service(ctx)
    entity = _require(ctx, ctx.path, "Api")
    check_if_match(ctx.request, entity)
    props = {**entity.body["properties"], **_api_fields(ctx, _properties(ctx))}
    contract = _api_properties(props, {})
    _check_path(ctx, entity.id, contract)
    entity, _created = ctx.state.store.put(entity.id, _body(entity.id, API_TYPE, contract))
    return ctx.entity(entity)


def api_delete(ctx: Ctx, **_: str) -> Response:
    entity = ctx.state.store.get(ctx.path)
    if entity is None or entity.type != API_TYPE:
        return ctx.empty(204)
    check_if_match(ctx.request, entity)
    _cascade(ctx, entity)
    ctx.state.store.delete(entity.id)
    return ctx.empty(204)  # the SDK's begin_delete accepts only 202 and 204


def api_list(ctx: Ctx, **_: str) -> Response:
    _require_service(ctx)
    keep = odata_filter(ctx.arg("$filter"), field_getter)
    apis = [e.body for e in ctx.state.store.children(ctx.path) if e.type == API_TYPE]
    return ctx.page([b for b in apis if keep(b)], count=True)


def api_products(ctx: Ctx, api: str, **_: str) -> Response:
    svc = service_id(ctx.path)
    _require(ctx, f"{svc}/apis/{api}", "Api")
    store = ctx.state.store
    linked = [p.body for p in store.children(f"{svc}/products") if store.get(f"{p.id}/apis/{api}")]
    return ctx.page(linked, count=True)


# ---------------------------------------------------------------------------------------------
# Links: product ⇄ API and API ⇄ tag


def _link_put(ctx: Ctx, target: Entity, response_body: dict[str, Any]) -> Response:
    existing = ctx.state.store.get(ctx.path)
    ctx.state.store.put(ctx.path, {"id": ctx.path, "type": LINK_TYPE}, {"target": target.id})
    response = json_response(response_body, 200 if existing else 201)
    response.headers["ETag"] = target.etag
    return response


def _link_exists(ctx: Ctx) -> Entity:
    link = ctx.state.store.get(ctx.path)
    if link is None or link.type != LINK_TYPE:
        raise _not_found("Entity")
    return link


def link_delete(ctx: Ctx, **_: str) -> Response:
    link = ctx.state.store.get(ctx.path)
    if link is None or link.type != LINK_TYPE:
        return ctx.empty(204)
    ctx.state.store.delete(link.id)
    return ctx.empty(200)


def _links(ctx: Ctx) -> list[dict[str, Any]]:
    store = ctx.state.store
    bodies = []
    for link in store.children(ctx.path):
        target = store.get(link.private.get("target", "")) if link.type == LINK_TYPE else None
        if target is not None:
            bodies.append(target.body)
    return bodies


def product_api_put(ctx: Ctx, product: str, api: str, **_: str) -> Response:
    svc = service_id(ctx.path)
    _require(ctx, f"{svc}/products/{product}", "Product")
    target = _require(ctx, f"{svc}/apis/{api}", "Api")
    return _link_put(ctx, target, target.body)


def product_api_head(ctx: Ctx, **_: str) -> Response:
    _link_exists(ctx)
    return ctx.empty(204)


def product_apis(ctx: Ctx, product: str, **_: str) -> Response:
    _require(ctx, f"{service_id(ctx.path)}/products/{product}", "Product")
    return ctx.page(_links(ctx), count=True)


def api_tag_put(ctx: Ctx, api: str, tag: str, **_: str) -> Response:
    svc = service_id(ctx.path)
    _require(ctx, f"{svc}/apis/{api}", "Api")
    target = _require(ctx, f"{svc}/tags/{tag}", "Tag")
    return _link_put(ctx, target, target.body)


def api_tag_get(ctx: Ctx, **_: str) -> Response:
    link = _link_exists(ctx)
    target = _require(ctx, link.private["target"], "Tag")
    return ctx.entity(target)


def api_tags(ctx: Ctx, api: str, **_: str) -> Response:
    _require(ctx, f"{service_id(ctx.path)}/apis/{api}", "Api")
    return ctx.page(_links(ctx), count=True)


# ---------------------------------------------------------------------------------------------
# Policies (service, API, operation and product scope) and policy fragments


def _policy_doc(ctx: Ctx, props: dict[str, Any], root: str) -> policyxml.Document:
    fmt = str(props.get("format") or "xml")
    if fmt not in policyxml.FORMATS:
        raise validation_error(f"armsim accepts policy formats xml and rawxml, not {fmt!r}.", "format")
    if not props.get("value"):
        raise validation_error("'value' is required.", "value")
    try:
        doc = policyxml.parse(str(props["value"]), fmt)
    except policyxml.PolicyError as exc:
        raise validation_error(str(exc), "value") from exc
    if doc.root.tag != root:
        raise validation_error(f"The root element must be <{root}>, not <{doc.root.tag}>.", "value")
    _check_references(ctx, doc)
    return doc


def _check_references(ctx: Ctx, doc: policyxml.Document) -> None:
    """APIM refuses a policy that names a backend, fragment, logger or named value that does not exist."""
    store = ctx.state.store
    svc = service_id(ctx.path)
    wanted = {"backend-id": ("backends", "Backend"), "embeddings-backend-id": ("backends", "Backend"),
              "fragment-id": ("policyFragments", "Policy fragment"), "logger-id": ("loggers", "Logger")}
    values: list[str] = list(doc.root.texts())
    for element in doc.root.iter():
        for attr, value in element.attrs:
            values.append(value)
            if attr in wanted and not value.startswith("@"):
                collection, label = wanted[attr]
                if store.get(f"{svc}/{collection}/{value}") is None:
                    raise validation_error(
                        f"{label} with id '{value}' referenced in <{element.tag}> was not found.", "value")
    _check_inbound_dimensions(doc)
    named = store.children(f"{svc}/namedValues")
    names = {e.name.lower() for e in named}
    names |= {str(e.body["properties"].get("displayName")).lower() for e in named}
    for value in values:
        for ref in re.findall(r"\{\{([^{}]+)\}\}", value):
            if ref.lower() not in names:
                raise validation_error(
                    f"Cannot find a property '{ref}' (named value) referenced in the policy.", "value")


# Built-in token-metric dimensions that exist only once a backend is chosen (the llm-emit-token-metric
# reference: "Backend ID" only in outbound). Refused in inbound (pessimistic: APIM's own check is not
# documented; a dimension it can't fill would at best be empty).
OUTBOUND_ONLY_DIMENSIONS = ("backend id",)


def _check_inbound_dimensions(doc: policyxml.Document) -> None:
    inbound = next((c for c in doc.root.children if isinstance(c, policyxml.Element) and c.tag == "inbound"),
                   None)
    for element in inbound.iter() if inbound is not None else ():
        if not element.tag.endswith("-emit-token-metric"):
            continue
        for child in element.children:
            if isinstance(child, policyxml.Element) and child.tag == "dimension" and str(
                    dict(child.attrs).get("name", "")).strip().lower() in OUTBOUND_ONLY_DIMENSIONS:
                raise validation_error(f"Dimension '{dict(child.attrs)['name']}' of <{element.tag}> is "
                                       "available only in the outbound section.", "value")


def _policy_type(path: str) -> str:
    scope = path.rsplit("/policies/", 1)[0]
    kinds = [seg for seg in scope[len(service_id(path)):].split("/")[1::2]]
    return "/".join([SERVICE_TYPE, *kinds, "policies"])


def _policy_parent(ctx: Ctx) -> str:
    parent = ctx.path.rsplit("/policies", 1)[0]
    if parent.lower() == service_id(ctx.path).lower():
        _require_service(ctx)
    else:
        _require_service(ctx)
        _require(ctx, parent, parent.split("/")[-2].rstrip("s").capitalize())
    return parent


def _policy_view(ctx: Ctx, entity: Entity, fmt: str) -> dict[str, Any]:
    if fmt not in policyxml.FORMATS:
        raise bad_request(f"armsim exports policies as xml or rawxml, not {fmt!r}.")
    body = copy.deepcopy(entity.body)
    indent = ctx.state.options.policy_indent
    body["properties"]["value"] = policyxml.serialize(entity.private["doc"], fmt, indent)
    return body


def policy_put(ctx: Ctx, policy: str, **_: str) -> Response:
    _policy_parent(ctx)
    if policy != "policy":
        raise validation_error("The policy identifier must be 'policy'.", "policyId")
    existing = ctx.state.store.get(ctx.path)
    check_if_match(ctx.request, existing)
    doc = _policy_doc(ctx, _properties(ctx), "policies")
    body = _body(ctx.path, _policy_type(ctx.path), {"value": ""})
    entity, created = ctx.state.store.put(ctx.path, body, {"doc": doc})
    entity.body["properties"]["value"] = policyxml.serialize(doc, "xml", ctx.state.options.policy_indent)
    return ctx.entity(entity, 201 if created else 200)


def policy_get(ctx: Ctx, **_: str) -> Response:
    _policy_parent(ctx)
    entity = _require(ctx, ctx.path, "Policy")
    return ctx.entity(entity, body=_policy_view(ctx, entity, ctx.arg("format") or "xml"))


def policy_list(ctx: Ctx, **_: str) -> Response:
    _policy_parent(ctx)
    items = [_policy_view(ctx, e, "xml") for e in ctx.state.store.children(ctx.path)]
    return ctx.page(items, count=True)


FRAGMENT_TYPE = f"{SERVICE_TYPE}/policyFragments"


def fragment_put(ctx: Ctx, **_: str) -> Response:
    _require_service(ctx)
    store = ctx.state.store
    rid = ctx.path
    existing = store.get(rid)
    check_if_match(ctx.request, existing)
    props = _properties(ctx)
    doc = _policy_doc(ctx, props, "fragment")
    indent = ctx.state.options.policy_indent
    stored = {"format": "xml", "value": policyxml.serialize(doc, "xml", indent)}
    if props.get("description"):
        stored["description"] = props["description"]
    body = _body(rid, FRAGMENT_TYPE, stored)

    def apply() -> None:
        entity, _created = store.put(rid, copy.deepcopy(body), {"doc": doc})
        entity.body["properties"]["provisioningState"] = "Succeeded"

    return _async_put(ctx, rid, body, apply, existing is None)


def fragment_get(ctx: Ctx, **_: str) -> Response:
    _require_service(ctx)
    entity = _require(ctx, ctx.path, "Policy fragment")
    fmt = ctx.arg("format") or "xml"
    body = _policy_view(ctx, entity, fmt)
    body["properties"]["format"] = fmt
    return ctx.entity(entity, body=body)


def fragment_list(ctx: Ctx, **_: str) -> Response:
    _require_service(ctx)
    return ctx.page([e.body for e in ctx.state.store.children(ctx.path)], count=True)


# ---------------------------------------------------------------------------------------------
# API operations


def operation_list(ctx: Ctx, api: str, **_: str) -> Response:
    _require(ctx, f"{service_id(ctx.path)}/apis/{api}", "Api")
    keep = odata_filter(ctx.arg("$filter"), field_getter)
    return ctx.page([e.body for e in ctx.state.store.children(ctx.path) if keep(e.body)], count=True)


def operation_get(ctx: Ctx, api: str, **_: str) -> Response:
    _require(ctx, f"{service_id(ctx.path)}/apis/{api}", "Api")
    return ctx.entity(_require(ctx, ctx.path, "Operation"))


def operation_put(ctx: Ctx, api: str, **_: str) -> Response:
    _require(ctx, f"{service_id(ctx.path)}/apis/{api}", "Api")
    existing = ctx.state.store.get(ctx.path)
    check_if_match(ctx.request, existing)
    props = _properties(ctx)
    for required in ("displayName", "method", "urlTemplate"):
        if not props.get(required):
            raise validation_error(f"'{required}' is required.", required)
    props.setdefault("templateParameters", [])
    props.setdefault("responses", [])
    entity, created = ctx.state.store.put(ctx.path, _body(ctx.path, OPERATION_TYPE, props))
    return ctx.entity(entity, 201 if created else 200)


def operation_patch(ctx: Ctx, api: str, **_: str) -> Response:
    _require(ctx, f"{service_id(ctx.path)}/apis/{api}", "Api")
    entity = _require(ctx, ctx.path, "Operation")
    check_if_match(ctx.request, entity)
    props = {**entity.body["properties"], **_properties(ctx)}
    entity, _created = ctx.state.store.put(entity.id, _body(entity.id, OPERATION_TYPE, props))
    return ctx.entity(entity)


# ---------------------------------------------------------------------------------------------
# Subscriptions (keys)

SUBSCRIPTION_TYPE = f"{SERVICE_TYPE}/subscriptions"


def _subscription_scope(ctx: Ctx, scope: str) -> str:
    svc = service_id(ctx.path)
    relative = scope[len(svc):] if scope.lower().startswith(svc.lower()) else scope
    if relative.rstrip("/").lower() == "/apis":
        return svc + "/apis"
    match = re.match(r"^/(apis|products)/([^/]+)$", relative.rstrip("/"), re.IGNORECASE)
    if not match:
        raise validation_error(f"Subscription scope {scope!r} must be /apis, /apis/{{apiId}} or "
                               f"/products/{{productId}}.", "scope")
    target = f"{svc}/{match.group(1).lower()}/{match.group(2)}"
    if ctx.state.store.get(target) is None:
        raise validation_error(f"Subscription scope {scope!r} does not exist.", "scope")
    return target


def subscription_put(ctx: Ctx, **_: str) -> Response:
    _require_service(ctx)
    store = ctx.state.store
    existing = store.get(ctx.path)
    check_if_match(ctx.request, existing)
    props = _properties(ctx)
    for required in ("scope", "displayName"):
        if not props.get(required):
            raise validation_error(f"'{required}' is required.", required)
    previous = existing.body["properties"] if existing else {}
    keys = dict(existing.private) if existing else {}
    for key in ("primaryKey", "secondaryKey"):
        keys[key] = props.get(key) or keys.get(key) or secrets.token_hex(16)
    stored = {"scope": _subscription_scope(ctx, str(props["scope"])), "displayName": props["displayName"],
              "state": props.get("state") or previous.get("state") or "submitted",
              "createdDate": previous.get("createdDate", utcnow()),
              "allowTracing": bool(props.get("allowTracing", False))}
    if props.get("ownerId"):
        stored["ownerId"] = props["ownerId"]
    entity, created = store.put(ctx.path, _body(ctx.path, SUBSCRIPTION_TYPE, stored), keys)
    return ctx.entity(entity, 201 if created else 200)


def subscription_patch(ctx: Ctx, **_: str) -> Response:
    entity = _require(ctx, ctx.path, "Subscription")
    check_if_match(ctx.request, entity)
    props = _properties(ctx)
    stored = dict(entity.body["properties"])
    for key in ("displayName", "state", "allowTracing", "ownerId", "expirationDate"):
        if key in props:
            stored[key] = props[key]
    if "scope" in props:
        stored["scope"] = _subscription_scope(ctx, str(props["scope"]))
    keys = dict(entity.private)
    keys.update({k: props[k] for k in ("primaryKey", "secondaryKey") if props.get(k)})
    entity, _created = ctx.state.store.put(entity.id, _body(entity.id, SUBSCRIPTION_TYPE, stored), keys)
    return ctx.entity(entity)


def subscription_get(ctx: Ctx, **_: str) -> Response:
    _require_service(ctx)
    return ctx.entity(_require(ctx, ctx.path, "Subscription"))


def subscription_list(ctx: Ctx, **_: str) -> Response:
    _require_service(ctx)
    keep = odata_filter(ctx.arg("$filter"), field_getter)
    return ctx.page([e.body for e in ctx.state.store.children(ctx.path) if keep(e.body)], count=True)


def subscription_secrets(ctx: Ctx, **_: str) -> Response:
    entity = _require(ctx, ctx.path.rsplit("/", 1)[0], "Subscription")
    response = json_response({"primaryKey": entity.private["primaryKey"],
                              "secondaryKey": entity.private["secondaryKey"]})
    response.headers["ETag"] = entity.etag
    return response


def subscription_regenerate(ctx: Ctx, **_: str) -> Response:
    entity = _require(ctx, ctx.path.rsplit("/", 1)[0], "Subscription")
    key = "primaryKey" if ctx.path.lower().endswith("primarykey") else "secondaryKey"
    entity.private[key] = secrets.token_hex(16)
    return ctx.empty(204)


# ---------------------------------------------------------------------------------------------
# Route table


def _policy_routes(prefix: str) -> list[Route]:
    return [Route(f"{prefix}/policies", get=policy_list),
            Route(f"{prefix}/policies/<policy>", get=policy_get, put=policy_put, delete=entity_delete)]


ROUTES: list[Route] = [
    Route("/subscriptions/<sub>/providers/Microsoft.ApiManagement/service", get=service_list),
    Route("/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ApiManagement/service",
          get=service_list),
    Route(SVC, get=service_get, put=service_put, patch=service_patch, delete=service_delete),
    Route(f"{SVC}/operationresults/<op>", get=operation_status),
    Route(f"{SVC}/tenant/operationResults/<op>", get=operation_status),
    Route(f"{SVC}/apis", get=api_list),
    Route(f"{SVC}/apis/<api>", get=api_get, put=api_put, patch=api_patch, delete=api_delete),
    Route(f"{SVC}/apis/<api>/operations", get=operation_list),
    Route(f"{SVC}/apis/<api>/operations/<operation>", get=operation_get, put=operation_put,
          patch=operation_patch, delete=entity_delete),
    Route(f"{SVC}/apis/<api>/products", get=api_products),
    Route(f"{SVC}/apis/<api>/tags", get=api_tags),
    Route(f"{SVC}/apis/<api>/tags/<tag>", get=api_tag_get, put=api_tag_put, delete=link_delete),
    Route(f"{SVC}/products/<product>/apis", get=product_apis),
    Route(f"{SVC}/products/<product>/apis/<api>", put=product_api_put, head=product_api_head,
          delete=link_delete),
    Route(f"{SVC}/namedValues/<nv>/listValue", post=named_value_list_value),
    Route(f"{SVC}/policyFragments", get=fragment_list),
    Route(f"{SVC}/policyFragments/<fragment>", get=fragment_get, put=fragment_put, delete=entity_delete),
    Route(f"{SVC}/subscriptions", get=subscription_list),
    Route(f"{SVC}/subscriptions/<sid>", get=subscription_get, put=subscription_put, patch=subscription_patch,
          delete=entity_delete),
    Route(f"{SVC}/subscriptions/<sid>/listSecrets", post=subscription_secrets),
    Route(f"{SVC}/subscriptions/<sid>/regeneratePrimaryKey", post=subscription_regenerate),
    Route(f"{SVC}/subscriptions/<sid>/regenerateSecondaryKey", post=subscription_regenerate),
    *_policy_routes(SVC),
    *_policy_routes(f"{SVC}/apis/<api>"),
    *_policy_routes(f"{SVC}/apis/<api>/operations/<operation>"),
    *_policy_routes(f"{SVC}/products/<product>"),
    *child_routes(SVC, TAGS, "tag"),
    *child_routes(SVC, NAMED_VALUES, "nv"),
    *child_routes(SVC, CACHES, "cache"),
    *child_routes(SVC, LOGGERS, "logger"),
    *child_routes(SVC, DIAGNOSTICS, "diagnostic"),
    *child_routes(f"{SVC}/apis/<api>", API_DIAGNOSTICS, "diagnostic"),
    *child_routes(SVC, PRODUCTS, "product"),
    *child_routes(SVC, BACKENDS, "backend"),
]
