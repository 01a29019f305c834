"""The client conformance suite's world: each mode's API imported by the importer onto the stand-in's
gateway, a subscription key scoped to it, and the real SDK clients configured as docs/clients.md says.

Every response the clients get is recorded (``served.seen``) with its headers, so a test can check
which operation the gateway matched (``x-armsim-operation``) and the token-limit headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.pipeline.transport import RequestsTransport
from azure.mgmt.apimanagement import models

from devhost import seed
from importer.identity import api_id
from importer.model import AccountRef, Mode
from tests.fixtures.world import AOAI, FOUNDRY, World

# What the suite's clients send: the GA api-version is too old for responses, so the Azure OpenAI
# clients send a preview that serves every call here; the Azure AI Inference SDK sends its default.
AZURE_OPENAI_API_VERSION = "2025-04-01-preview"
AZURE_AI_API_VERSION = "2024-05-01-preview"
TOKENS_PER_MINUTE = "1000000"
# Model deployments beyond the seeded world's, so images, audio and image embeddings have a model.
EXTRA_DEPLOYMENTS = {
    AOAI: [("dall-e-3", "dall-e-3", "3.0", "OpenAI"), ("whisper", "whisper", "001", "OpenAI"),
           ("tts", "tts", "001", "OpenAI")],
    FOUNDRY: [("text-embedding-3-small", "text-embedding-3-small", "1", "OpenAI"),
              ("dall-e-3", "dall-e-3", "3.0", "OpenAI"),
              ("Cohere-embed-v3-english", "Cohere-embed-v3-english", "1", "Cohere")],
}


@dataclass(frozen=True)
class Seen:
    method: str
    url: str
    status: int
    headers: dict[str, str]  # lower-case names

    @property
    def operation(self) -> str | None:
        return self.headers.get("x-armsim-operation")


@dataclass
class Served:
    """One account's API on the gateway in one mode, and a key for it."""

    world: World
    mode: Mode
    account: str  # the account's name
    gateway: str  # the APIM service's gateway URL
    api_path: str
    key: str
    seen: list[Seen] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        """What a portal shows as the account's endpoint, on the gateway: gateway URL + account name."""
        return f"{self.gateway}/{self.account}"

    @property
    def base(self) -> str:
        """The API's base URL: gateway URL + API path."""
        return f"{self.gateway}/{self.api_path}"

    def http_client(self) -> httpx2.Client:
        """The HTTP client the openai package is built on (httpx2 from openai 3): no proxy from the
        environment, every response recorded."""
        def record(response: httpx2.Response) -> None:
            self.seen.append(Seen(response.request.method, str(response.request.url), response.status_code,
                                  {k.lower(): v for k, v in response.headers.items()}))
        return httpx2.Client(trust_env=False, event_hooks={"response": [record]})

    def azure_kwargs(self) -> dict[str, Any]:
        """Keywords for the azure-ai-inference clients: the key, no proxy, every response recorded."""
        def record(pipeline_response: Any) -> None:
            http = pipeline_response.http_response
            self.seen.append(Seen(http.request.method, http.request.url, http.status_code,
                                  {k.lower(): v for k, v in http.headers.items()}))
        return {"credential": AzureKeyCredential(self.key), "raw_response_hook": record,
                "transport": RequestsTransport(use_env_settings=False)}

    @property
    def last(self) -> Seen:
        return self.seen[-1]


def _key(world: World, api: str) -> str:
    apim = world.apim_client()
    params = models.SubscriptionCreateParameters(scope=f"/apis/{api}", display_name="conformance",
                                                 state="active")
    apim.subscription.create_or_update(world.rg, world.svc, "conformance", params)
    return str(apim.subscription.list_secrets(world.rg, world.svc, "conformance").primary_key)


def serve(world: World, account: str, mode: Mode) -> Served:
    ref = AccountRef.parse(account)
    for name, model, version, fmt in EXTRA_DEPLOYMENTS[account]:
        seed.create_deployment(world.clients, account, name, model=model, version=version, model_format=fmt,
                               sku="Standard")
    world.reconciler(IMPORTER_MODE=mode.value, IMPORTER_PROBE="off",
                     IMPORTER_TOKENS_PER_MINUTE=TOKENS_PER_MINUTE).reconcile(ref)
    apim = world.apim_client()
    api = apim.api.get(world.rg, world.svc, api_id(ref, mode))
    gateway = apim.api_management_service.get(world.rg, world.svc).gateway_url
    return Served(world, mode, ref.name, gateway, api.path, _key(world, api_id(ref, mode)))


@pytest.fixture
def azure_openai(gateway_world: World) -> Iterator[Served]:
    """contoso-aoai (kind OpenAI) in mode azure-openai: the deployment in the path."""
    yield serve(gateway_world, AOAI, Mode.AZURE_OPENAI)


@pytest.fixture
def v1(gateway_world: World) -> Iterator[Served]:
    """contoso-aoai in mode azure-openai-v1: /openai/v1, the deployment in the body's model."""
    yield serve(gateway_world, AOAI, Mode.AZURE_OPENAI_V1)


@pytest.fixture
def azure_ai(gateway_world: World) -> Iterator[Served]:
    """contoso-foundry (kind AIServices) in mode azure-ai: /models, the deployment in the body's model."""
    yield serve(gateway_world, FOUNDRY, Mode.AZURE_AI)
