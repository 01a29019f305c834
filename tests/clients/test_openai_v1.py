"""Mode azure-openai-v1 through the real ``openai.OpenAI`` client (base_url …/openai/v1): every call the
matrix in docs/clients.md lists, through the stand-in's gateway."""

from __future__ import annotations

import json

import openai
import pytest

from importer.render import not_found_body
from tests.clients import sdk
from tests.clients.conftest import Served

HELLO = [{"role": "user", "content": "ping"}]


def test_chat(v1: Served) -> None:
    client = sdk.openai_v1(v1)
    reply = client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=1)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "pong" and reply.usage is not None
    assert v1.last.operation == "POST /chat/completions"
    assert v1.last.headers["x-tokens-consumed"] == str(reply.usage.total_tokens)


def test_streamed_chat(v1: Served) -> None:
    client = sdk.openai_v1(v1)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True,  # type: ignore
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "pong"
    assert chunks[-1].usage is not None
    assert v1.last.headers["x-tokens-consumed"] == str(chunks[-1].usage.total_tokens)


def test_embeddings(v1: Served) -> None:
    result = sdk.openai_v1(v1).embeddings.create(model="text-embedding-3-small", input="ping")
    assert len(result.data[0].embedding) == 8
    assert v1.last.operation == "POST /embeddings"


def test_responses_plain_and_streamed(v1: Served) -> None:
    client = sdk.openai_v1(v1)
    response = client.responses.create(model="gpt-4o", input=[{"role": "user", "content": "ping"}])
    assert response.output_text == "pong"
    with client.responses.stream(model="gpt-4o", input="ping") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == "pong" and final.usage is not None
    assert v1.last.operation == "POST /responses"


def test_completions(v1: Served) -> None:
    client = sdk.openai_v1(v1)
    assert client.completions.create(model="gpt-4o", prompt="ping", max_tokens=1).choices[0].text == "pong"
    assert v1.last.operation == "POST /completions"
    chunks = list(client.completions.create(model="gpt-4o", prompt="ping", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "pong"


def test_files_and_batches(v1: Served) -> None:
    client = sdk.openai_v1(v1)
    file = client.files.create(file=("b.jsonl", b"{}\n"), purpose="batch")
    assert v1.last.operation == "POST /files"
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    assert client.batches.retrieve(batch.id).id == batch.id
    assert [b.id for b in client.batches.list()] == [batch.id]
    assert client.batches.cancel(batch.id).status == "cancelling"
    assert v1.last.operation == "POST /batches/{batch_id}/cancel"
    assert client.files.delete(file.id).deleted is True


def test_images(v1: Served) -> None:
    client = sdk.openai_v1(v1)
    assert client.images.generate(model="dall-e-3", prompt="a ball").data
    assert v1.last.operation == "POST /images/generations"
    assert client.images.edit(model="dall-e-3", image=("b.png", sdk.PNG), prompt="bluer").data
    assert v1.last.operation == "POST /images/edits"


def test_images_for_an_unknown_deployment_are_refused_by_the_allow_list(v1: Served) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.openai_v1(v1).images.generate(model="dall-e-9", prompt="a ball")
    assert caught.value.code == "DeploymentNotFound" and v1.last.operation is None


def test_audio(v1: Served) -> None:
    client = sdk.openai_v1(v1)
    assert client.audio.transcriptions.create(model="whisper", file=("a.wav", sdk.WAV)).text == "pong"
    assert v1.last.operation == "POST /audio/transcriptions"
    assert client.audio.translations.create(model="whisper", file=("a.wav", sdk.WAV)).text == "pong"
    assert client.audio.speech.create(model="tts", voice="alloy", input="pong").content.startswith(b"ID3")
    assert v1.last.operation == "POST /audio/speech"


def test_model_info(v1: Served) -> None:
    client = sdk.openai_v1(v1)
    assert "gpt-4o" in [m.id for m in client.models.list()]
    assert client.models.retrieve("tts").id == "tts"


def test_conversations(v1: Served) -> None:
    client = sdk.openai_v1(v1)
    conversation = client.conversations.create(metadata={"topic": "pong"})
    assert v1.last.operation == "POST /conversations"
    assert client.conversations.retrieve(conversation.id).metadata == {"topic": "pong"}
    updated = client.conversations.update(conversation.id, metadata={"topic": "ping"})
    assert updated.metadata == {"topic": "ping"}
    client.conversations.items.create(conversation.id, items=[{"type": "message", "role": "user",
                                                               "content": "ping"}])
    assert len(list(client.conversations.items.list(conversation.id))) == 1
    assert client.conversations.delete(conversation.id).deleted is True


def test_fine_tuning_jobs(v1: Served) -> None:
    client = sdk.openai_v1(v1)
    file = client.files.create(file=("t.jsonl", b"{}\n"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=file.id)
    assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]


@pytest.mark.parametrize("name", ["nope", 'quote"and\\slash'])
def test_an_unknown_deployment_is_the_sdks_not_found_error_naming_it(v1: Served, name: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.openai_v1(v1).chat.completions.create(model=name, messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.code == "DeploymentNotFound"
    body = caught.value.body
    # A name with a character no deployment has comes back as sent, marked with '|' (docs/policy.md).
    assert isinstance(body, dict) and body["message"] == json.loads(not_found_body(name))["error"]["message"]


def test_the_openai_client_with_its_own_bearer_key_only(v1: Served) -> None:
    client = sdk.openai_v1(v1)
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO).choices  # type: ignore[arg-type]
