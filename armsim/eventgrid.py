"""Microsoft.EventGrid: system topics and their event subscriptions, stored and listed (no delivery).

Rule: enough of the control plane for a reader to find a subscription's system topic and the event
subscriptions on it (what the postdeploy hook creates); events themselves are the EventLog's business.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from armsim.answers import ArmError, bad_request, json_response, system_data
from armsim.context import Ctx, require_scope
from armsim.routing import Route

TOPIC_TYPE = "Microsoft.EventGrid/systemTopics"
SUBSCRIPTION_TYPE = "Microsoft.EventGrid/systemTopics/eventSubscriptions"
TOPIC = "/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.EventGrid/systemTopics/<topic>"


def _topic_id(path: str) -> str:
    marker = "/eventsubscriptions"
    lowered = path.lower()
    return path[:lowered.index(marker)] if marker in lowered else path


def _require_topic(ctx: Ctx) -> None:
    if ctx.state.store.get(_topic_id(ctx.path)) is None:
        name = _topic_id(ctx.path).rsplit("/", 1)[-1]
        raise ArmError(404, "ResourceNotFound", f"The Resource 'Microsoft.EventGrid/systemTopics/{name}' "
                       "was not found.")


def _put(ctx: Ctx, resource_type: str, extra: dict[str, Any]) -> Response:
    request = ctx.body()
    props = request.get("properties")
    if not isinstance(props, dict):
        raise bad_request("The request is missing 'properties'.")
    existing = ctx.state.store.get(ctx.path)
    body: dict[str, Any] = {
        "id": ctx.path, "name": ctx.path.rsplit("/", 1)[-1], "type": resource_type,
        "properties": {**props, **extra, "provisioningState": "Succeeded"},
        "systemData": system_data(existing.body if existing else None),
    }
    for key in ("location", "tags", "identity"):
        if key in request:
            body[key] = request[key]
    entity, created = ctx.state.store.put(ctx.path, body)
    return json_response(entity.body, 201 if created else 200)


def topic_put(ctx: Ctx, **_: str) -> Response:
    props = ctx.body().get("properties") or {}
    if not props.get("source") or not props.get("topicType"):
        raise bad_request("A system topic needs properties.source and properties.topicType.")
    return _put(ctx, TOPIC_TYPE, {"metricResourceId": "00000000-0000-0000-0000-000000000e6d"})


def subscription_put(ctx: Ctx, **_: str) -> Response:
    _require_topic(ctx)
    return _put(ctx, SUBSCRIPTION_TYPE, {"topic": _topic_id(ctx.path)})


def get(ctx: Ctx, **_: str) -> Response:
    if "/eventsubscriptions/" in ctx.path.lower():
        _require_topic(ctx)
    entity = ctx.state.store.get(ctx.path)
    if entity is None:
        name = ctx.path.rsplit("/", 1)[-1]
        raise ArmError(404, "ResourceNotFound", f"The Resource '{name}' was not found.")
    return json_response(entity.body)


def delete(ctx: Ctx, **_: str) -> Response:
    entity = ctx.state.store.get(ctx.path)
    if entity is None:
        return ctx.empty(204)
    ctx.state.store.delete(entity.id)
    return ctx.empty(200)


def topic_list(ctx: Ctx, **_: str) -> Response:
    under = ctx.path.rsplit("/providers/", 1)[0]
    require_scope(ctx, under)
    return ctx.page([e.body for e in ctx.state.store.of_type(TOPIC_TYPE, under)])


def subscription_list(ctx: Ctx, **_: str) -> Response:
    _require_topic(ctx)
    return ctx.page([e.body for e in ctx.state.store.children(ctx.path)])


ROUTES: list[Route] = [
    Route("/subscriptions/<sub>/providers/Microsoft.EventGrid/systemTopics", get=topic_list),
    Route(TOPIC.rsplit("/", 1)[0], get=topic_list),
    Route(TOPIC, get=get, put=topic_put, delete=delete),
    Route(f"{TOPIC}/eventSubscriptions", get=subscription_list),
    Route(f"{TOPIC}/eventSubscriptions/<name>", get=get, put=subscription_put, delete=delete),
]
