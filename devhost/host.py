"""Host emulation: what the Functions host does around the function app, played locally.

Indexes function_app once, as the host does (``get_functions()`` may be built only once per app, so
every caller in the process shares this index), and carries a trigger's output binding to the queue:
an Event Grid delivery or a timer tick becomes queue messages; the queue trigger deletes a message on
success, rejects what the worker set as poison, and makes the message visible again when it raises.
Used by the demo, the tests and the benchmarks; never by the product.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devhost.queues import MessageHandle, RequestQueue
    from importer.state.ports import ReconcileRequest


@functools.cache
def indexed() -> dict[str, Any]:
    import function_app

    return {str(f.get_function_name()): f for f in function_app.app.get_functions()}


def bindings(name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(indexed()[name].get_function_json())["bindings"]
    return out


def user_function(name: str) -> Callable[..., Any]:
    fn: Callable[..., Any] = indexed()[name].get_user_function()
    return fn


class Out:
    """A func.Out[T] twin: the function sets, the host reads what it set."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


def event_binding(event: Mapping[str, Any], *, cloud: bool = False) -> Any:
    """A recorded event (Event Grid schema, or CloudEvents with ``cloud``) as the host binds it."""
    import azure.functions as func

    if cloud:
        return func.CloudEvent(id=event["id"], source=event["source"], type=event["type"],
                               specversion=event["specversion"], data=event.get("data"),
                               subject=event.get("subject"))
    return func.EventGridEvent(id=event["id"], data=event["data"], topic=event.get("topic", ""),
                               subject=event.get("subject", ""), event_type=event["eventType"],
                               event_time=None, data_version=event.get("dataVersion", "2"))


def deliver(event: Mapping[str, Any], queue: RequestQueue, *, cloud: bool = False) -> str | None:
    """One Event Grid delivery → on_resource_event; its output message goes on the queue."""
    from importer.state.ports import ReconcileRequest

    out = Out()
    user_function("on_resource_event")(event_binding(event, cloud=cloud), out)
    if out.value:
        queue.send(ReconcileRequest.from_json(out.value))
    return out.value  # type: ignore[no-any-return]


def fire_timer(queue: RequestQueue) -> int:
    """One drift_timer tick; every message it set goes on the queue. Returns how many."""
    from azure.functions.timer import TimerRequest

    from importer.state.ports import ReconcileRequest

    out = Out()
    user_function("drift_timer")(TimerRequest(past_due=False), out)
    for text in out.value or []:
        queue.send(ReconcileRequest.from_json(text))
    return len(out.value or [])


def work(queue: RequestQueue, handle: MessageHandle, request: ReconcileRequest, *,
         retry_delay_s: float = 0) -> Exception | None:
    """One queue-trigger invocation of reconcile_worker on a received message, as the host runs it:
    success deletes the message (after rejecting what the worker set as poison); an exception makes
    it visible again after ``retry_delay_s`` (its dequeue count grows) and is returned."""
    import azure.functions as func

    poison = Out()
    try:
        user_function("reconcile_worker")(func.QueueMessage(id=handle.message_id,
                                                            body=request.to_json().encode()), poison)
        if poison.value:
            queue.reject(poison.value)
        queue.delete(handle)
    except Exception as exc:  # the host: visible again, then poison after max dequeue count
        queue.release(handle, delay_s=retry_delay_s)
        return exc
    return None
