"""The function app, hosted the way the Functions host hosts it, over Azurite and the stand-in.

``host`` turns what a function set on its output binding into a queue message on Azurite (base64,
as the host writes it) and feeds queue messages back to the worker as ``func.QueueMessage``, through
devhost.host (the one emulation of the host, shared with the demo).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
import pytest

from devhost.host import deliver, fire_timer, user_function, work
from devhost.queues import RequestQueue
from importer import service
from importer.reconcile import build_reconciler
from importer.settings import Settings
from tests.fixtures.world import SUB, World


@dataclass
class Host:
    world: World
    state: Any
    queue: RequestQueue  # the host's: the product never touches it
    settings: Settings
    raised: list[str] = field(default_factory=list)

    def deliver(self, event: dict[str, Any], *, cloud: bool = False) -> str | None:
        """One Event Grid delivery → on_resource_event; its output message goes on the queue."""
        return deliver(event, self.queue, cloud=cloud)

    def timer(self) -> int:
        return fire_timer(self.queue)

    def pump(self, workers: int = 1, max_rounds: int = 400) -> None:
        """Run the queue trigger until the queue is empty, on ``workers`` threads, like the host:
        success deletes the message, an exception makes it visible again (then poison)."""
        lock = threading.Lock()

        def loop() -> None:
            idle = 0
            for _ in range(max_rounds):
                batch = self.queue.receive(1, visibility_timeout_s=30)
                if not batch:
                    idle += 1
                    if idle > 3:
                        return
                    continue
                idle = 0
                handle, request = batch[0]
                raised = work(self.queue, handle, request)
                if raised is not None:
                    with lock:
                        self.raised.append(f"{type(raised).__name__}: {raised}")

        threads = [threading.Thread(target=loop) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def http(self, name: str, *, method: str = "GET", body: bytes = b"", params: dict[str, str] | None = None,
             route_params: dict[str, str] | None = None) -> tuple[int, Any]:
        import json

        req = func.HttpRequest(method=method, url=f"http://localhost/api/{name}", body=body,
                               params=params or {}, route_params=route_params or {})
        resp = user_function(name)(req)
        return resp.status_code, json.loads(resp.get_body() or b"null")


def make_host(world: World, state: Any, queue: RequestQueue, monkeypatch: pytest.MonkeyPatch,
              **extra: str) -> Host:
    """Install the product's service (settings from the environment, as the host gives them: the
    stand-in, its APIM, the subscription, and ``extra``) over ``state``; ``queue`` is the host's."""
    env = {"IMPORTER_ARM_ENDPOINT": world.sim.url, "IMPORTER_APIM_ID": world.apim,
           "IMPORTER_SCOPES": f"/subscriptions/{SUB}", **extra}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = Settings.from_env(env)
    rec = build_reconciler(settings, state=state, apim_ttl_s=0)
    service.install(service.Service(settings, rec, state))
    return Host(world, state, queue, settings)


@contextmanager
def hosted(world: World, state: Any, queue: RequestQueue, monkeypatch: pytest.MonkeyPatch,
           **extra: str) -> Iterator[Host]:
    """``make_host``, and the service uninstalled on the way out (whatever happened inside)."""
    host = make_host(world, state, queue, monkeypatch, **extra)
    try:
        yield host
    finally:
        service.reset_service()


@pytest.fixture
def host(world: World, storage_state: Any, storage_queue: RequestQueue,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    with hosted(world, storage_state, storage_queue, monkeypatch) as h:
        yield h
