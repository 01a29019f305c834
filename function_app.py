"""Azure Functions (Python v2) triggers: parse the binding, call importer.service, set outputs.

No Azure SDK imports here and no logic: heavy modules load on the first invocation, not at
indexing time. Queue messages are JSON ReconcileRequests, base64-encoded by the host (host.json).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from importer import service

app = func.FunctionApp()
logger = logging.getLogger("importer.functions")

QUEUE = service.QUEUE_NAME
CONNECTION = "AzureWebJobsStorage"


@app.function_name("on_resource_event")
@app.event_grid_trigger(arg_name="event")
@app.queue_output(arg_name="msg", queue_name=QUEUE, connection=CONNECTION)
def on_resource_event(event: func.EventGridEvent, msg: func.Out[str]) -> None:
    """Event Grid (Event Grid schema or CloudEvents) → one reconcile request. Never raises.

    An AI account or deployment change, or a hand edit of one of the importer's own objects; the
    importer's own writes are ignored (no loops)."""
    try:
        if isinstance(event, func.CloudEvent):
            payload = {"specversion": event.specversion, "id": event.id, "type": event.type,
                       "subject": event.subject, "source": event.source, "data": event.get_json()}
            text = service.on_trigger_event(payload, cloud=True)
        else:
            payload = {"id": event.id, "eventType": event.event_type, "subject": event.subject,
                       "data": event.get_json()}
            text = service.on_trigger_event(payload, cloud=False)
    except Exception:  # a raise would make Event Grid retry for 24 h
        logger.exception("event dropped: could not be read")
        return
    if text is not None:
        msg.set(text)


@app.function_name("reconcile_worker")
@app.queue_trigger(arg_name="message", queue_name=QUEUE, connection=CONNECTION)
@app.queue_output(arg_name="poison", queue_name=QUEUE + "-poison", connection=CONNECTION)
def reconcile_worker(message: func.QueueMessage, poison: func.Out[str]) -> None:
    """One account per message, under its lease lock. Transient failures raise (host retries);
    a message that is not a reconcile request goes to the poison queue at once, with its reason."""
    result = service.on_queue_message(service.get_service(), message.get_body(),
                                      dequeue_count=message.dequeue_count or 1)
    if result.get("poison"):
        poison.set(result["poison"])


@app.function_name("drift_timer")
@app.timer_trigger(arg_name="timer", schedule="%IMPORTER_TIMER_SCHEDULE%", run_on_startup=False)
@app.queue_output(arg_name="msgs", queue_name=QUEUE, connection=CONNECTION)
def drift_timer(timer: func.TimerRequest, msgs: func.Out[list[str]]) -> None:
    """The safety net: every watched account and every orphaned owner, spread through the queue."""
    msgs.set(service.on_timer(service.get_service()))


def _json(status: int, body: dict[str, Any]) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


@app.function_name("http_imports")
@app.route(route="imports", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def http_imports(req: func.HttpRequest) -> func.HttpResponse:
    return _json(*service.http_import(service.get_service(), req.get_body()))


@app.function_name("http_runs")
@app.route(route="runs", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def http_runs(req: func.HttpRequest) -> func.HttpResponse:
    return _json(*service.http_runs(service.get_service(), req.params.get("account")))


@app.function_name("http_run")
@app.route(route="runs/{run_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def http_run(req: func.HttpRequest) -> func.HttpResponse:
    return _json(*service.http_run(service.get_service(), req.route_params.get("run_id", "")))


@app.function_name("http_health")
@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def http_health(req: func.HttpRequest) -> func.HttpResponse:
    return _json(200, {"status": "ok"})


@app.function_name("http_doctor")
@app.route(route="doctor", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def http_doctor(req: func.HttpRequest) -> func.HttpResponse:
    """The preflight (python -m importer doctor), read-only: 200 pass or warnings, 503 any failure."""
    return _json(*service.http_doctor())
