"""What the Functions host will index from function_app.py, pinned so a typo cannot reach Azure."""

from __future__ import annotations

import json

import function_app
from devhost import host
from devhost.host import bindings
from devhost.queues import QueueConfig

EXPECTED = {
    "on_resource_event": [
        {"direction": "OUT", "type": "queue", "name": "msg", "queueName": "reconcile-requests",
         "connection": "AzureWebJobsStorage"},
        {"direction": "IN", "type": "eventGridTrigger", "name": "event"},
    ],
    "reconcile_worker": [
        {"direction": "OUT", "type": "queue", "name": "poison", "queueName": "reconcile-requests-poison",
         "connection": "AzureWebJobsStorage"},
        {"direction": "IN", "type": "queueTrigger", "name": "message", "queueName": "reconcile-requests",
         "connection": "AzureWebJobsStorage"},
    ],
    "drift_timer": [
        {"direction": "OUT", "type": "queue", "name": "msgs", "queueName": "reconcile-requests",
         "connection": "AzureWebJobsStorage"},
        {"direction": "IN", "type": "timerTrigger", "name": "timer",
         "schedule": "%IMPORTER_TIMER_SCHEDULE%", "runOnStartup": False},
    ],
}
ROUTES = {
    "http_imports": ("imports", ["POST"]),
    "http_runs": ("runs", ["GET"]),
    "http_run": ("runs/{run_id}", ["GET"]),
    "http_health": ("health", ["GET"]),
    "http_doctor": ("doctor", ["GET"]),
}


def _indexed() -> dict[str, list[dict]]:
    return {name: bindings(name) for name in host.indexed()}


def test_exactly_these_functions_are_indexed() -> None:
    assert sorted(_indexed()) == sorted([*EXPECTED, *ROUTES])


def test_trigger_and_queue_bindings() -> None:
    indexed = _indexed()
    for name, want in EXPECTED.items():
        key = lambda b: b["name"]  # noqa: E731
        assert sorted(indexed[name], key=key) == sorted(want, key=key), name


def test_http_routes_use_function_keys() -> None:
    indexed = _indexed()
    for name, (route, methods) in ROUTES.items():
        trigger = next(b for b in indexed[name] if b["type"] == "httpTrigger")
        assert trigger["route"] == route
        assert trigger["methods"] == methods
        assert trigger["authLevel"] == "FUNCTION"


def test_host_json_matches_the_worker_retry_plan() -> None:
    from pathlib import Path

    host = json.loads((Path(function_app.__file__).parent / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle",
                                       "version": "[4.*, 5.0.0)"}
    queues = host["extensions"]["queues"]
    # The host's own output bindings base64-encode, and so does its emulation's queue (devhost.queues):
    # the trigger must decode the same way.
    assert queues["messageEncoding"] == "base64"
    # The emulation's queue has the host's names and poisons after as many tries as the host does.
    config = QueueConfig()
    assert queues["maxDequeueCount"] == config.max_dequeue_count == 5
    assert (config.queue, config.poison) == (function_app.QUEUE, function_app.QUEUE + "-poison")
