"""Mode azure-ai through the real ``azure-ai-inference`` clients (endpoint …/models, the deployment in
the body's model) and the OpenAI client with an api-version: every call the matrix in docs/clients.md
lists, through the stand-in's gateway."""

from __future__ import annotations

import base64

import openai
import pytest
from azure.ai.inference.models import ImageEmbeddingInput, UserMessage
from azure.core.exceptions import ResourceNotFoundError

from tests.clients import sdk
from tests.clients.conftest import Served

Q = "?api-version={api-version}"


def test_chat(azure_ai: Served) -> None:
    reply = sdk.inference_chat(azure_ai).complete(model="Phi-4", messages=[UserMessage("ping")], max_tokens=1)
    assert reply.choices[0].message.content == "pong" and reply.model == "Phi-4"
    assert azure_ai.last.operation == "POST /chat/completions" + Q
    assert azure_ai.last.headers["x-tokens-consumed"] == str(reply.usage.total_tokens)


def test_streamed_chat(azure_ai: Served) -> None:
    extras = {"stream_options": {"include_usage": True}}
    updates = list(sdk.inference_chat(azure_ai).complete(model="Phi-4", messages=[UserMessage("ping")],
                                                         stream=True, model_extras=extras))
    assert "".join(u.choices[0].delta.content or "" for u in updates if u.choices) == "pong"
    assert updates[-1].usage is not None
    assert azure_ai.last.headers["content-type"].startswith("text/event-stream")
    assert azure_ai.last.headers["x-tokens-consumed"] == str(updates[-1].usage.total_tokens)


def test_embeddings_and_image_embeddings(azure_ai: Served) -> None:
    result = sdk.inference_embeddings(azure_ai).embed(model="text-embedding-3-small", input=["ping"])
    assert len(result.data[0].embedding) == 8
    assert azure_ai.last.operation == "POST /embeddings" + Q
    image = ImageEmbeddingInput(image="data:image/png;base64," + base64.b64encode(sdk.PNG).decode())
    vectors = sdk.inference_image_embeddings(azure_ai).embed(model="Cohere-embed-v3-english", input=[image])
    assert len(vectors.data[0].embedding) == 8
    assert azure_ai.last.operation == "POST /images/embeddings" + Q


def test_model_info(azure_ai: Served) -> None:
    info = sdk.inference_chat(azure_ai).get_model_info(params={"model": "Phi-4"})
    assert (info.model_name, info.model_type, info.model_provider_name) == ("Phi-4", "chat-completion",
                                                                             "Microsoft")
    assert azure_ai.last.operation == "GET /info" + Q


def test_images_with_the_openai_client(azure_ai: Served) -> None:
    client = sdk.openai_on_azure_ai(azure_ai)
    assert client.images.generate(model="dall-e-3", prompt="a ball").data
    assert azure_ai.last.operation == "POST /images/generations" + Q
    reply = client.chat.completions.create(model="gpt-4o-mini",
                                           messages=[{"role": "user", "content": "ping"}])
    assert reply.choices[0].message.content == "pong"


@pytest.mark.parametrize("name", ["nope", "Phi-5"])
def test_an_unknown_deployment_is_the_sdks_not_found_error_naming_it(azure_ai: Served, name: str) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        sdk.inference_chat(azure_ai).complete(model=name, messages=[UserMessage("ping")])
    assert caught.value.status_code == 404 and caught.value.error is not None
    assert caught.value.error.code == "DeploymentNotFound"
    assert f"'{name.lower()}'" in caught.value.error.message
    assert azure_ai.last.operation is None
    with pytest.raises(openai.NotFoundError) as by_openai:
        sdk.openai_on_azure_ai(azure_ai).embeddings.create(model=name, input="ping")
    assert by_openai.value.code == "DeploymentNotFound"
