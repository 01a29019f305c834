"""Outcome events reach an Event Grid topic (a local HTTP capture) through the real azure-eventgrid client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from importer.azure.outcomes import OutcomePublisher
from importer.identity import api_id
from importer.model import AccountRef
from tests.fixtures.world import AOAI, SUB, World


@pytest.fixture
def topic() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    @Request.application  # type: ignore[misc]
    def app(request: Request) -> Response:
        received.append({"headers": dict(request.headers), "body": json.loads(request.get_data())})
        return Response(status=200)

    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api/events", received
    server.shutdown()


def test_onboarded_drift_corrected_offboarded_failed_and_nothing_for_noops(
        world: World, topic: tuple[str, list[dict[str, Any]]]) -> None:
    from azure.core.credentials import AzureKeyCredential
    from azure.mgmt.cognitiveservices import models

    endpoint, received = topic
    rec = world.reconciler()
    rec.publish = OutcomePublisher(endpoint, AzureKeyCredential("local-test-key"))
    ref = AccountRef.parse(AOAI)

    def types() -> list[str]:
        return [e["eventType"] for r in received for e in r["body"]]

    rec.reconcile(ref)
    rec.reconcile(ref)  # noop: nothing published
    rec.reconcile(ref, dry_run=True)  # dry run: nothing published
    assert types() == ["ApimAiImporter.Onboarded"]
    world.apim_client().api_policy.delete(world.rg, world.svc, api_id(ref), "policy", if_match="*")
    rec.reconcile(ref)
    world.clients.cognitive(SUB).accounts.begin_update(
        "rg-ai", ref.name, models.Account(tags={"apim-importer-tpm": "nope"})).result()
    rec.reconcile(ref)
    world.clients.cognitive(SUB).accounts.begin_update(
        "rg-ai", ref.name, models.Account(tags={"apim-importer": "disabled"})).result()
    rec.reconcile(ref)
    assert types() == ["ApimAiImporter.Onboarded", "ApimAiImporter.DriftCorrected",
                       "ApimAiImporter.Failed", "ApimAiImporter.Offboarded"]
    first = received[0]["body"][0]
    assert first["subject"] == ref.id and first["dataVersion"] == "1.0"
    assert first["data"]["outcome"] == "applied" and first["data"]["writes"] == 4
    assert "local-test-key" not in json.dumps([r["body"] for r in received])
