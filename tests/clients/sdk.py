"""The real SDK clients, configured for a mode's API on the gateway as docs/clients.md says."""

from __future__ import annotations

from typing import Any

from azure.ai.inference import ChatCompletionsClient, EmbeddingsClient, ImageEmbeddingsClient
from openai import AzureOpenAI, OpenAI

from tests.clients.conftest import AZURE_AI_API_VERSION, AZURE_OPENAI_API_VERSION, Served

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")  # a PNG's first bytes
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt "  # a WAV file's first bytes


def azure_openai(served: Served) -> AzureOpenAI:
    """Mode azure-openai: the account's endpoint on the gateway, the key, an api-version."""
    return AzureOpenAI(azure_endpoint=served.endpoint, api_key=served.key,
                       api_version=AZURE_OPENAI_API_VERSION, http_client=served.http_client(), max_retries=0)


def openai_v1(served: Served) -> OpenAI:
    """Mode azure-openai-v1: base_url is the API's URL (…/openai/v1); the OpenAI client sends the key
    as ``Authorization: Bearer``, which the API accepts (bearer on its key names), unchanged."""
    return OpenAI(base_url=served.base, api_key=served.key, http_client=served.http_client(), max_retries=0)


def openai_on_azure_ai(served: Served) -> OpenAI:
    """Mode azure-ai with the OpenAI client: base_url …/models, api-version as a default query."""
    return OpenAI(base_url=served.base, api_key=served.key, default_headers={"api-key": served.key},
                  default_query={"api-version": AZURE_AI_API_VERSION}, http_client=served.http_client(),
                  max_retries=0)


def inference_chat(served: Served, deployment: str | None = None, **kwargs: Any) -> ChatCompletionsClient:
    """Mode azure-ai: endpoint …/models. Mode azure-openai: endpoint …/openai/deployments/{name} and
    an Azure OpenAI api-version."""
    return ChatCompletionsClient(endpoint=_inference_endpoint(served, deployment),
                                 **_inference(served, deployment), **kwargs)


def inference_embeddings(served: Served, deployment: str | None = None) -> EmbeddingsClient:
    return EmbeddingsClient(endpoint=_inference_endpoint(served, deployment),
                            **_inference(served, deployment))


def inference_image_embeddings(served: Served) -> ImageEmbeddingsClient:
    return ImageEmbeddingsClient(endpoint=served.base, **served.azure_kwargs())


def _inference_endpoint(served: Served, deployment: str | None) -> str:
    return served.base if deployment is None else f"{served.base}/deployments/{deployment}"


def _inference(served: Served, deployment: str | None) -> dict[str, Any]:
    kwargs = served.azure_kwargs()
    if deployment is not None:
        kwargs["api_version"] = AZURE_OPENAI_API_VERSION
    return kwargs
