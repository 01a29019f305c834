"""Each operation the project's documents add beyond Microsoft's (importer/openapi/additions.json) is
there because an SDK call needs it: make that call with the real SDK and see the gateway route it to
exactly that operation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from importer import openapi
from importer.model import Mode
from tests.clients import sdk
from tests.clients.conftest import Served, serve
from tests.fixtures.world import AOAI, FOUNDRY, World


def _file(client: Any, purpose: str = "batch") -> str:
    return str(client.files.create(file=("f.jsonl", b"{}\n"), purpose=purpose).id)


def _batch(client: Any) -> str:
    return str(client.batches.create(input_file_id=_file(client), endpoint="/chat/completions",
                                     completion_window="24h").id)


def _job(client: Any) -> str:
    training = _file(client, "fine-tune")
    return str(client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training).id)


def _conversation(client: Any) -> str:
    return str(client.conversations.create().id)


Call = Callable[[Any], object]
CALLS: dict[tuple[str, str, str], Call] = {
    ("azure-openai", "POST", "/deployments/{deployment-id}/images/edits"):
        lambda c: c.images.edit(model="dall-e-3", image=("i.png", sdk.PNG), prompt="x"),
    ("azure-openai", "POST", "/files"): _file,
    ("azure-openai", "GET", "/files"): lambda c: c.files.list(),
    ("azure-openai", "GET", "/files/{file_id}"): lambda c: c.files.retrieve(_file(c)),
    ("azure-openai", "DELETE", "/files/{file_id}"): lambda c: c.files.delete(_file(c)),
    ("azure-openai", "GET", "/files/{file_id}/content"): lambda c: c.files.content(_file(c)),
    ("azure-openai", "POST", "/batches"): _batch,
    ("azure-openai", "GET", "/batches"): lambda c: c.batches.list(),
    ("azure-openai", "GET", "/batches/{batch_id}"): lambda c: c.batches.retrieve(_batch(c)),
    ("azure-openai", "POST", "/batches/{batch_id}/cancel"): lambda c: c.batches.cancel(_batch(c)),
    ("azure-openai", "GET", "/models"): lambda c: c.models.list(),
    ("azure-openai", "GET", "/models/{model}"): lambda c: c.models.retrieve("gpt-4o"),
    ("azure-openai", "POST", "/fine_tuning/jobs"): _job,
    ("azure-openai", "GET", "/fine_tuning/jobs"): lambda c: c.fine_tuning.jobs.list(),
    ("azure-openai", "GET", "/fine_tuning/jobs/{fine_tuning_job_id}"):
        lambda c: c.fine_tuning.jobs.retrieve(_job(c)),
    ("azure-openai", "POST", "/fine_tuning/jobs/{fine_tuning_job_id}/cancel"):
        lambda c: c.fine_tuning.jobs.cancel(_job(c)),
    ("azure-openai", "GET", "/fine_tuning/jobs/{fine_tuning_job_id}/events"):
        lambda c: c.fine_tuning.jobs.list_events(_job(c)),
    ("azure-openai-v1", "POST", "/completions"): lambda c: c.completions.create(model="gpt-4o", prompt="x"),
    ("azure-openai-v1", "POST", "/batches"): _batch,
    ("azure-openai-v1", "GET", "/batches"): lambda c: c.batches.list(),
    ("azure-openai-v1", "GET", "/batches/{batch_id}"): lambda c: c.batches.retrieve(_batch(c)),
    ("azure-openai-v1", "POST", "/batches/{batch_id}/cancel"): lambda c: c.batches.cancel(_batch(c)),
    ("azure-openai-v1", "POST", "/images/generations"):
        lambda c: c.images.generate(model="dall-e-3", prompt="x"),
    ("azure-openai-v1", "POST", "/images/edits"):
        lambda c: c.images.edit(model="dall-e-3", image=("i.png", sdk.PNG), prompt="x"),
    ("azure-openai-v1", "POST", "/audio/transcriptions"):
        lambda c: c.audio.transcriptions.create(model="whisper", file=("a.wav", sdk.WAV)),
    ("azure-openai-v1", "POST", "/audio/translations"):
        lambda c: c.audio.translations.create(model="whisper", file=("a.wav", sdk.WAV)),
    ("azure-openai-v1", "POST", "/audio/speech"):
        lambda c: c.audio.speech.create(model="tts", voice="alloy", input="x"),
    ("azure-openai-v1", "POST", "/conversations"): _conversation,
    ("azure-openai-v1", "GET", "/conversations/{conversation_id}"):
        lambda c: c.conversations.retrieve(_conversation(c)),
    ("azure-openai-v1", "POST", "/conversations/{conversation_id}"):
        lambda c: c.conversations.update(_conversation(c), metadata={"a": "b"}),
    ("azure-openai-v1", "DELETE", "/conversations/{conversation_id}"):
        lambda c: c.conversations.delete(_conversation(c)),
    ("azure-openai-v1", "GET", "/conversations/{conversation_id}/items"):
        lambda c: c.conversations.items.list(_conversation(c)),
    ("azure-openai-v1", "POST", "/conversations/{conversation_id}/items"):
        lambda c: c.conversations.items.create(_conversation(c), items=[{"type": "message", "role": "user",
                                                                         "content": "x"}]),
}
ADDED = [(mode, e["method"], e["path"]) for mode, entries in openapi.additions().items() for e in entries]


def test_every_addition_has_an_sdk_call_here() -> None:
    assert sorted(CALLS) == sorted(ADDED)


def _template(mode: Mode, method: str, path: str) -> str:
    (template,) = [t for m, t in openapi.operations(openapi.document(mode)) if m == method
                   and t.partition("?")[0] == path]
    return f"{method} {template}"


@pytest.mark.parametrize(("mode", "method", "path"), ADDED, ids=[f"{m}-{x}-{p}" for m, x, p in ADDED])
def test_the_sdk_call_is_routed_to_the_added_operation(gateway_world: World, mode: str, method: str,
                                                       path: str) -> None:
    served: Served = serve(gateway_world, AOAI if mode != "azure-ai" else FOUNDRY, Mode(mode))
    client = sdk.azure_openai(served) if mode == "azure-openai" else sdk.openai_v1(served)
    CALLS[(mode, method, path)](client)
    want = _template(Mode(mode), method, path)
    routed = [s for s in served.seen if s.operation == want]
    seen = [(s.operation, s.status) for s in served.seen]
    assert routed and all(200 <= s.status < 300 for s in routed), seen
