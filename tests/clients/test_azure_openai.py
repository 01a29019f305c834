"""Mode azure-openai through the real ``openai.AzureOpenAI`` client (and azure-ai-inference pointed at a
deployment): every call the matrix in docs/clients.md lists, through the stand-in's gateway."""

from __future__ import annotations

import openai
import pytest

from tests.clients import sdk
from tests.clients.conftest import Served

Q = "?api-version={api-version}"
HELLO = [{"role": "user", "content": "ping"}]


def test_chat(azure_openai: Served) -> None:
    client = sdk.azure_openai(azure_openai)
    reply = client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=1)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "pong" and reply.model == "gpt-4o"
    assert reply.usage is not None and reply.usage.total_tokens > 1
    assert azure_openai.last.operation == "POST /deployments/{deployment-id}/chat/completions" + Q
    assert azure_openai.last.headers["x-tokens-consumed"] == str(reply.usage.total_tokens)


def test_streamed_chat_with_usage_counts_the_streamed_tokens(azure_openai: Served) -> None:
    client = sdk.azure_openai(azure_openai)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True,  # type: ignore
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "pong"
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices and usage.total_tokens > 1
    assert all(c.usage is None for c in chunks[:-1])
    assert azure_openai.last.headers["content-type"].startswith("text/event-stream")
    assert azure_openai.last.headers["x-tokens-consumed"] == str(usage.total_tokens)
    remaining = int(azure_openai.last.headers["x-ratelimit-remaining-tokens"])
    # The next call's budget is lower by what the stream consumed.
    client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=1)  # type: ignore[arg-type]
    consumed = int(azure_openai.last.headers["x-tokens-consumed"])
    assert int(azure_openai.last.headers["x-ratelimit-remaining-tokens"]) == remaining - consumed


def test_streamed_chat_without_usage_is_still_counted(azure_openai: Served) -> None:
    client = sdk.azure_openai(azure_openai)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))  # type: ignore
    assert chunks and all(c.usage is None for c in chunks)
    assert int(azure_openai.last.headers["x-tokens-consumed"]) >= 2  # the prompt's estimate + one piece


def test_embeddings(azure_openai: Served) -> None:
    client = sdk.azure_openai(azure_openai)
    result = client.embeddings.create(model="text-embedding-3-small", input=["ping", "pong"])
    assert [len(d.embedding) for d in result.data] == [8, 8]  # base64 by default, decoded by the SDK
    assert result.data[0].embedding != result.data[1].embedding
    floats = client.embeddings.create(model="text-embedding-3-small", input="ping", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(result.data[0].embedding, abs=1e-6)
    assert azure_openai.last.operation == "POST /deployments/{deployment-id}/embeddings" + Q


def test_responses_plain_and_streamed(azure_openai: Served) -> None:
    client = sdk.azure_openai(azure_openai)
    response = client.responses.create(model="gpt-4o", input="ping")
    assert response.output_text == "pong" and response.usage is not None
    assert azure_openai.last.operation == "POST /responses" + Q
    events = list(client.responses.create(model="gpt-4o", input="ping", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "pong"
    done = events[-1].response  # type: ignore[union-attr]
    assert done.usage is not None
    assert azure_openai.last.headers["x-tokens-consumed"] == str(done.usage.total_tokens)


def test_legacy_completions_plain_and_streamed(azure_openai: Served) -> None:
    client = sdk.azure_openai(azure_openai)
    assert client.completions.create(model="gpt-4o", prompt="ping", max_tokens=1).choices[0].text == "pong"
    assert azure_openai.last.operation == "POST /deployments/{deployment-id}/completions" + Q
    chunks = list(client.completions.create(model="gpt-4o", prompt="ping", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "pong"


def test_files(azure_openai: Served) -> None:
    client = sdk.azure_openai(azure_openai)
    made = client.files.create(file=("batch.jsonl", b'{"custom_id": "1"}\n'), purpose="batch")
    assert made.filename == "batch.jsonl" and made.bytes == 19
    assert [f.id for f in client.files.list()] == [made.id]
    assert client.files.retrieve(made.id).purpose == "batch"
    assert client.files.content(made.id).content == b'{"custom_id": "1"}\n'
    assert client.files.delete(made.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(made.id)


def test_batches(azure_openai: Served) -> None:
    client = sdk.azure_openai(azure_openai)
    file = client.files.create(file=("b.jsonl", b"{}\n"), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/chat/completions",
                                  completion_window="24h")
    assert batch.status == "validating"
    assert client.batches.retrieve(batch.id).input_file_id == file.id
    assert [b.id for b in client.batches.list()] == [batch.id]
    assert client.batches.cancel(batch.id).status == "cancelling"


def test_images(azure_openai: Served) -> None:
    client = sdk.azure_openai(azure_openai)
    made = client.images.generate(model="dall-e-3", prompt="a pong ball", response_format="b64_json")
    assert made.data and made.data[0].b64_json
    assert azure_openai.last.operation == "POST /deployments/{deployment-id}/images/generations" + Q
    edited = client.images.edit(model="dall-e-3", image=("ball.png", sdk.PNG), prompt="bluer")
    assert edited.data and edited.data[0].url
    assert azure_openai.last.operation == "POST /deployments/{deployment-id}/images/edits" + Q


def test_audio(azure_openai: Served) -> None:
    client = sdk.azure_openai(azure_openai)
    assert client.audio.transcriptions.create(model="whisper", file=("a.wav", sdk.WAV)).text == "pong"
    assert client.audio.translations.create(model="whisper", file=("a.wav", sdk.WAV)).text == "pong"
    speech = client.audio.speech.create(model="tts", voice="alloy", input="pong")
    assert speech.content.startswith(b"ID3")
    assert azure_openai.last.operation == "POST /deployments/{deployment-id}/audio/speech" + Q


def test_model_info(azure_openai: Served) -> None:
    client = sdk.azure_openai(azure_openai)
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o" in ids and "text-embedding-3-small" in ids
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    assert azure_openai.last.operation == "GET /models/{model}" + Q


def test_fine_tuning_jobs_pass_the_allow_list_with_a_base_model(azure_openai: Served) -> None:
    client = sdk.azure_openai(azure_openai)
    file = client.files.create(file=("train.jsonl", b"{}\n"), purpose="fine-tune")
    # gpt-4o-mini is a base model, not a deployment of this account: the allow-list lets it through.
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=file.id)
    assert job.status == "pending" and job.model == "gpt-4o-mini-2024-07-18"
    assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
    assert client.fine_tuning.jobs.retrieve(job.id).id == job.id
    assert list(client.fine_tuning.jobs.list_events(job.id))
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"


@pytest.mark.parametrize("name", ["nope", "No-Such.Model_1"])
def test_an_unknown_deployment_is_the_sdks_not_found_error_naming_it(azure_openai: Served, name: str) -> None:
    client = sdk.azure_openai(azure_openai)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model=name, messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.status_code == 404 and caught.value.code == "DeploymentNotFound"
    assert f"'{name.lower()}'" in caught.value.message
    assert azure_openai.last.operation is None  # the gateway answered; the model was never called


def test_azure_ai_inference_against_a_deployment(azure_openai: Served) -> None:
    from azure.ai.inference.models import UserMessage

    chat = sdk.inference_chat(azure_openai, "gpt-4o")
    reply = chat.complete(messages=[UserMessage("ping")], max_tokens=1)
    assert reply.choices[0].message.content == "pong"
    assert azure_openai.last.operation == "POST /deployments/{deployment-id}/chat/completions" + Q
    updates = chat.complete(messages=[UserMessage("ping")], stream=True)
    assert "".join(u.choices[0].delta.content or "" for u in updates if u.choices) == "pong"
    vectors = sdk.inference_embeddings(azure_openai, "text-embedding-3-small").embed(input=["ping"])
    assert len(vectors.data[0].embedding) == 8


def test_azure_ai_inference_unknown_deployment(azure_openai: Served) -> None:
    from azure.ai.inference.models import UserMessage
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError) as caught:
        sdk.inference_chat(azure_openai, "nope").complete(messages=[UserMessage("ping")])
    assert caught.value.status_code == 404 and caught.value.error is not None
    assert caught.value.error.code == "DeploymentNotFound" and "'nope'" in caught.value.error.message
