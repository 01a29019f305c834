"""A seeded world for pipeline tests: APIM with identity, two AI accounts, deployments, a product.

Seeded through the SDK, as Azure is populated. ``world.reconciler(**settings)`` builds the same
Reconciler the CLI and the function app build.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from armsim import seed
from armsim.server import Sim
from importer.azure.arm import AzureArm
from importer.azure.clients import Clients
from importer.model import AccountRef, ApimRef
from importer.reconcile import Reconciler
from importer.settings import Settings

SUB = seed.SUBSCRIPTION
AOAI = seed.account_id(SUB, seed.AI_GROUP, "contoso-aoai")
FOUNDRY = seed.account_id(SUB, seed.AI_GROUP, "contoso-foundry")


@dataclass
class World:
    sim: Sim
    clients: Clients
    apim: str
    sim_sub: str = SUB

    def reconciler(self, apim_ttl_s: float = 0, **env: str) -> Reconciler:
        base = {"IMPORTER_ARM_ENDPOINT": self.sim.url, "IMPORTER_APIM_ID": self.apim,
                "IMPORTER_SCOPES": f"/subscriptions/{SUB}"}
        settings = Settings.from_env({**base, **env})
        return Reconciler(settings, AzureArm(Clients(settings)), ApimRef.parse(self.apim),
                          apim_ttl_s=apim_ttl_s)

    @property
    def rg(self) -> str:
        return seed.APIM_GROUP

    @property
    def svc(self) -> str:
        return seed.APIM_NAME

    def apim_client(self) -> Any:
        return self.clients.apim(SUB)

    def writes(self) -> int:
        return self.sim.log.writes()

    def reads(self) -> int:
        return self.sim.log.reads()


@pytest.fixture
def world(armsim: Sim, clients: Clients) -> World:
    seed.create_apim(clients)
    seed.create_account(clients, name="contoso-aoai", kind="OpenAI")
    seed.create_account(clients, name="contoso-foundry", kind="AIServices")
    seed.create_deployment(clients, AOAI, "gpt-4o")
    seed.create_deployment(clients, AOAI, "text-embedding-3-small", model="text-embedding-3-small",
                           version="1")
    seed.create_deployment(clients, FOUNDRY, "gpt-4o-mini", model="gpt-4o-mini", version="2024-07-18")
    seed.create_deployment(clients, FOUNDRY, "Phi-4", model="Phi-4", version="7", model_format="Microsoft")
    seed.create_product(clients, seed.apim_id(), "ai-consumers")
    armsim.log.clear()
    return World(armsim, clients, seed.apim_id())


@pytest.fixture
def aoai() -> AccountRef:
    return AccountRef.parse(AOAI)


@pytest.fixture
def foundry() -> AccountRef:
    return AccountRef.parse(FOUNDRY)
