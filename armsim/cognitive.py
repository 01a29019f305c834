"""Microsoft.CognitiveServices: AI accounts and their model deployments.

Rule: deployments provision asynchronously (201 + Azure-AsyncOperation, provisioningState Creating
until the operation ends), and every successful write or delete of an account or deployment is also
recorded as the Event Grid event the subscription's system topic would deliver.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from typing import Any

from werkzeug.wrappers import Response

from armsim.answers import ArmError, bad_request, json_response, system_data, utcnow
from armsim.context import Ctx, require_scope
from armsim.routing import Route
from armsim.store import Entity, check_if_match

PROVIDER = "Microsoft.CognitiveServices"
ACCOUNT_TYPE = f"{PROVIDER}/accounts"
DEPLOYMENT_TYPE = f"{PROVIDER}/accounts/deployments"
ACC = "/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.CognitiveServices/accounts/<account>"


def _not_found(resource_type: str, name: str, group: str) -> ArmError:
    return ArmError(404, "ResourceNotFound",
                    f"The Resource '{resource_type}/{name}' under resource group '{group}' was not found.")


def _account_id(path: str) -> str:
    return "/".join(path.split("/")[:9])


def _require_account(ctx: Ctx) -> Entity:
    account_id = _account_id(ctx.path)
    entity = ctx.state.store.get(account_id)
    if entity is None:
        parts = account_id.split("/")
        raise _not_found(ACCOUNT_TYPE, parts[8], parts[4])
    return entity


def _location(value: str) -> str:
    return value.replace(" ", "").lower()


def _status_url(ctx: Ctx, location: str, op_id: str) -> str:
    sub = ctx.path.split("/")[2]
    return ctx.url(f"/subscriptions/{sub}/providers/{PROVIDER}/locations/{_location(location)}"
                   f"/operationResults/{op_id}")


def operation_status(ctx: Ctx, op: str, **_: str) -> Response:
    return json_response(ctx.state.poll(op).body())


def _set_state(entity: Entity, state: str) -> None:
    entity.body["properties"]["provisioningState"] = state


# ---------------------------------------------------------------------------------------------
# Accounts


def _endpoints(kind: str, subdomain: str | None, location: str) -> tuple[str, dict[str, str]]:
    """``properties.endpoint`` and ``properties.endpoints`` as the service shows them per kind."""
    if not subdomain:
        endpoint = f"https://{_location(location)}.api.cognitive.microsoft.com/"
        return endpoint, {"OpenAI Language Model Instance API": endpoint} if kind == "OpenAI" else {}
    openai = f"https://{subdomain}.openai.azure.com/"
    if kind == "OpenAI":
        return openai, {"OpenAI Language Model Instance API": openai, "OpenAI Dall-E API": openai,
                        "OpenAI Whisper API": openai, "OpenAI Realtime API": openai,
                        "Token Provider": f"https://{subdomain}.openai.azure.com/"}
    cognitive = f"https://{subdomain}.cognitiveservices.azure.com/"
    endpoints = {"Cognitive Services": cognitive, "Content Safety": cognitive}
    if kind == "AIServices":
        services = f"https://{subdomain}.services.ai.azure.com/"
        endpoints.update({"OpenAI Language Model Instance API": openai, "OpenAI Dall-E API": openai,
                          "OpenAI Whisper API": openai, "OpenAI Realtime API": openai,
                          "Azure AI Model Inference API": services, "AI Foundry API": services})
    return cognitive, endpoints


def _account_body(ctx: Ctx, rid: str, request: dict[str, Any], previous: dict[str, Any] | None,
                  ) -> dict[str, Any]:
    if not request.get("location"):
        raise bad_request("The 'location' property is required.", "LocationRequired")
    kind = request.get("kind")
    if not kind:
        raise bad_request("The 'kind' property is required.", "InvalidParameter")
    props = dict(request.get("properties") or {})
    subdomain = props.get("customSubDomainName")
    if subdomain:
        for other in ctx.state.store.of_type(ACCOUNT_TYPE):
            same = str(other.body["properties"].get("customSubDomainName", "")).lower() == subdomain.lower()
            if same and other.id.lower() != rid.lower():
                raise ArmError(409, "CustomDomainInUse",
                               f"Custom domain name '{subdomain}' is already used by another account.")
    endpoint, endpoints = _endpoints(kind, subdomain, request["location"])
    old = (previous or {}).get("properties", {})
    props.update({"endpoint": endpoint, "endpoints": endpoints,
                  "internalId": old.get("internalId", secrets.token_hex(16)),
                  "dateCreated": old.get("dateCreated", utcnow()),
                  "provisioningState": "Succeeded", "publicNetworkAccess": props.get("publicNetworkAccess",
                                                                                     "Enabled")})
    body: dict[str, Any] = {"id": rid, "name": rid.rsplit("/", 1)[-1], "type": ACCOUNT_TYPE,
                            "location": request["location"], "sku": request.get("sku") or {"name": "S0"},
                            "kind": kind, "tags": request.get("tags") or {}, "etag": "", "properties": props}
    identity = request.get("identity")
    if isinstance(identity, dict) and str(identity.get("type", "None")).lower() != "none":
        prior = (previous or {}).get("identity") or {}
        principal = prior.get("principalId") or str(uuid.uuid4())
        body["identity"] = {"type": identity["type"], "principalId": principal,
                            "tenantId": ctx.state.options.tenant_id}
    body["systemData"] = system_data(previous)
    return body


def _store(ctx: Ctx, rid: str, body: dict[str, Any]) -> tuple[Entity, bool]:
    entity, created = ctx.state.store.put(rid, body)
    entity.body["etag"] = entity.etag
    return entity, created


def account_put(ctx: Ctx, **_: str) -> Response:
    existing = ctx.state.store.get(ctx.path)
    check_if_match(ctx.request, existing)
    body = _account_body(ctx, ctx.path, ctx.body(), existing.body if existing else None)
    body["properties"]["provisioningState"] = "Creating" if existing is None else "Updating"
    entity, created = _store(ctx, ctx.path, body)
    ctx.state.event(ctx, entity.id, ACCOUNT_TYPE, "write")
    op = ctx.state.begin(ctx, entity.id, on_done=lambda outcome: _set_state(entity, outcome))
    headers = {"Azure-AsyncOperation": _status_url(ctx, body["location"], op.id)}
    return ctx.entity(entity, 201 if created else 200, headers)


def account_get(ctx: Ctx, **_: str) -> Response:
    return ctx.entity(_require_account(ctx))


def account_patch(ctx: Ctx, **_: str) -> Response:
    entity = _require_account(ctx)
    check_if_match(ctx.request, entity)
    patch = ctx.body()
    merged = copy.deepcopy(entity.body)
    merged["properties"].update(patch.get("properties") or {})
    for key in ("tags", "sku", "identity"):
        if key in patch:
            merged[key] = patch[key]
    body = _account_body(ctx, entity.id, merged, entity.body)
    entity, _created = _store(ctx, entity.id, body)
    ctx.state.event(ctx, entity.id, ACCOUNT_TYPE, "write")
    return ctx.entity(entity)


def account_delete(ctx: Ctx, **_: str) -> Response:
    entity = ctx.state.store.get(ctx.path)
    if entity is None or entity.type != ACCOUNT_TYPE:
        return ctx.empty(204)
    check_if_match(ctx.request, entity)
    return _async_delete(ctx, entity, ACCOUNT_TYPE)


def _async_delete(ctx: Ctx, entity: Entity, resource_type: str) -> Response:
    """200 when gone at once; with a slow-LRO fault, 202 + Azure-AsyncOperation and state Deleting."""
    location = ctx.state.store.get(_account_id(entity.id))
    region = (location.body if location else entity.body).get("location", "global")
    ctx.state.event(ctx, entity.id, resource_type, "delete")

    def done(outcome: str) -> None:
        if outcome == "Succeeded":
            ctx.state.store.delete(entity.id)
        else:
            _set_state(entity, "Failed")

    op = ctx.state.begin(ctx, entity.id, on_done=done)
    if op.status == "Succeeded":
        return ctx.empty(200)
    _set_state(entity, "Deleting")
    url = _status_url(ctx, region, op.id)
    return ctx.empty(202, {"Azure-AsyncOperation": url, "Location": url})


def account_list(ctx: Ctx, **_: str) -> Response:
    under = ctx.path.rsplit("/providers/", 1)[0]
    require_scope(ctx, under)
    return ctx.page([e.body for e in ctx.state.store.of_type(ACCOUNT_TYPE, under)])


def account_keys(ctx: Ctx, **_: str) -> Response:
    entity = _require_account(ctx)
    keys = entity.private.setdefault("keys", {"key1": secrets.token_hex(16), "key2": secrets.token_hex(16)})
    return json_response(keys)


# ---------------------------------------------------------------------------------------------
# Deployments


def _deployment_body(rid: str, request: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    props = dict((previous or {}).get("properties") or {})
    props.update(request.get("properties") or {})
    model = props.get("model")
    if not isinstance(model, dict) or not model.get("name") or not model.get("format"):
        raise bad_request("properties.model with 'format' and 'name' is required.",
                          "InvalidResourceProperties")
    sku = request.get("sku") or (previous or {}).get("sku")
    if not isinstance(sku, dict) or not sku.get("name"):
        raise bad_request("sku with 'name' is required.", "InvalidResourceProperties")
    capacity = sku.get("capacity", 1)
    props.setdefault("versionUpgradeOption", "OnceNewDefaultVersionAvailable")
    props["currentCapacity"] = capacity
    props["rateLimits"] = [{"key": "request", "renewalPeriod": 10, "count": capacity},
                           {"key": "token", "renewalPeriod": 60, "count": capacity * 1000}]
    props["capabilities"] = props.get("capabilities") or {"chatCompletion": "true"}
    body: dict[str, Any] = {"id": rid, "name": rid.rsplit("/", 1)[-1], "type": DEPLOYMENT_TYPE,
                            "sku": {**sku, "capacity": capacity}, "etag": "", "properties": props}
    if request.get("tags") is not None:
        body["tags"] = request["tags"]
    body["systemData"] = system_data(previous)
    return body


def deployment_put(ctx: Ctx, **_: str) -> Response:
    account = _require_account(ctx)
    existing = ctx.state.store.get(ctx.path)
    check_if_match(ctx.request, existing)
    body = _deployment_body(ctx.path, ctx.body(), existing.body if existing else None)
    body["properties"]["provisioningState"] = "Creating" if existing is None else "Updating"
    entity, created = _store(ctx, ctx.path, body)
    ctx.state.event(ctx, entity.id, DEPLOYMENT_TYPE, "write")
    op = ctx.state.begin(ctx, entity.id, on_done=lambda outcome: _set_state(entity, outcome))
    headers = {"Azure-AsyncOperation": _status_url(ctx, account.body["location"], op.id)}
    return ctx.entity(entity, 201 if created else 200, headers)


def deployment_patch(ctx: Ctx, **_: str) -> Response:
    _require_account(ctx)
    entity = ctx.state.store.get(ctx.path)
    if entity is None:
        parts = ctx.path.split("/")
        raise _not_found(DEPLOYMENT_TYPE, f"{parts[8]}/{parts[10]}", parts[4])
    check_if_match(ctx.request, entity)
    patch = ctx.body()
    merged = {"sku": {**entity.body["sku"], **(patch.get("sku") or {})},
              "tags": patch.get("tags", entity.body.get("tags"))}
    entity, _created = _store(ctx, entity.id, _deployment_body(entity.id, merged, entity.body))
    ctx.state.event(ctx, entity.id, DEPLOYMENT_TYPE, "write")
    return ctx.entity(entity)


def deployment_get(ctx: Ctx, **_: str) -> Response:
    _require_account(ctx)
    entity = ctx.state.store.get(ctx.path)
    if entity is None:
        parts = ctx.path.split("/")
        raise _not_found(DEPLOYMENT_TYPE, f"{parts[8]}/{parts[10]}", parts[4])
    return ctx.entity(entity)


def deployment_delete(ctx: Ctx, **_: str) -> Response:
    _require_account(ctx)
    entity = ctx.state.store.get(ctx.path)
    if entity is None:
        return ctx.empty(204)
    check_if_match(ctx.request, entity)
    return _async_delete(ctx, entity, DEPLOYMENT_TYPE)


def deployment_list(ctx: Ctx, **_: str) -> Response:
    _require_account(ctx)
    return ctx.page([e.body for e in ctx.state.store.children(ctx.path)])


ROUTES: list[Route] = [
    Route("/subscriptions/<sub>/providers/Microsoft.CognitiveServices/accounts", get=account_list),
    Route("/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.CognitiveServices/accounts",
          get=account_list),
    Route(ACC, get=account_get, put=account_put, patch=account_patch, delete=account_delete),
    Route(f"{ACC}/listKeys", post=account_keys),
    Route(f"{ACC}/deployments", get=deployment_list),
    Route(f"{ACC}/deployments/<deployment>", get=deployment_get, put=deployment_put, patch=deployment_patch,
          delete=deployment_delete),
    Route("/subscriptions/<sub>/providers/Microsoft.CognitiveServices/locations/<location>/operationResults/<op>",
          get=operation_status),
]
