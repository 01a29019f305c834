"""A small estate for fault injection, and the yardsticks every fault test ends with.

The estate: APIM (identity with a fixed principal, so two estates are comparable), a product, three
AI accounts and foreign objects the importer must never touch (an API with a policy and a product
link, a backend, a role assignment for someone else). ``FaultWorld.state()`` is everything the
importer may write (APIM's children, role assignments) without ETags/timestamps; ``foreign()``
hashes each foreign object *with* its ETag, so even an identical rewrite shows.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from armsim.server import Sim
from devhost import seed
from importer.azure.clients import Clients, StaticCredential
from importer.fleet import enumerate_estate, run_pass
from importer.identity import owned_account
from importer.reconcile import Reconciler, build_reconciler
from importer.run import Run
from importer.settings import Settings

SUB = seed.SUBSCRIPTION
APIM = seed.apim_id()
PRODUCT = "ai-consumers"
PRINCIPAL = "7a7a7a7a-0000-4000-8000-00000000f00d"  # APIM's identity, the same in every estate
OTHER_PRINCIPAL = "0b0b0b0b-0000-4000-8000-00000000beef"
ROLE_READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"

ACCOUNTS: dict[str, tuple[str, tuple[tuple[str, str, str, str], ...]]] = {
    # name: (kind, deployments as (name, model, version, format))
    "alpha": ("OpenAI", (("gpt-4o", "gpt-4o", "2024-11-20", "OpenAI"),
                         ("text-embedding-3-small", "text-embedding-3-small", "1", "OpenAI"))),
    "beta": ("AIServices", (("gpt-4o-mini", "gpt-4o-mini", "2024-07-18", "OpenAI"),
                            ("Phi-4", "Phi-4", "7", "Microsoft"))),
    "gamma": ("OpenAI", (("o3-mini", "o3-mini", "2025-01-31", "OpenAI"),)),
}
# Full size (scripts/faults.py): bystander accounts that every pass also reconciles.
EXTRA_ACCOUNTS = int(os.environ.get("FAULTS_EXTRA_ACCOUNTS", "0"))
FULL = os.environ.get("FAULTS_FULL", "") == "1"


def estate_accounts() -> dict[str, tuple[str, tuple[tuple[str, str, str, str], ...]]]:
    extra = {f"extra-{i:03d}": ("OpenAI", (("gpt-4o", "gpt-4o", "2024-11-20", "OpenAI"),))
             for i in range(EXTRA_ACCOUNTS)}
    return {**ACCOUNTS, **extra}


VOLATILE = {"etag", "systemData", "createdOn", "updatedOn", "createdAtUtc", "createdDate", "updatedDate",
            "startTime", "endTime", "dateCreated", "internalId"}
_MARK = re.compile(r"\[managed-by=apim-ai-importer account=([^\]\s]+)( apim=[^\]\s]+)?\]")


def account_id(name: str) -> str:
    return seed.account_id(SUB, seed.AI_GROUP, name)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _digest(body: Any, etag: str) -> str:
    return hashlib.sha256((json.dumps(body, sort_keys=True) + etag).encode()).hexdigest()[:16]


@dataclass
class FaultWorld:
    sim: Sim
    clients: Clients
    foreign_ids: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    # -- running the importer -------------------------------------------------------------------

    def reconciler(self, **env: str) -> Reconciler:
        settings = Settings.from_env({**self.env, **env})
        return build_reconciler(settings, apim_ttl_s=0)

    def run_pass(self, concurrency: int = 4, **env: str) -> list[Run]:
        """One fleet pass, as the CLI and the timer run it (listings, snapshot, one run per account)."""
        rec = self.reconciler(**env)
        return run_pass(rec, enumerate_estate(rec), concurrency=concurrency)

    def plans_nothing(self) -> list[str]:
        """Accounts for which a dry-run pass still plans something (empty = converged)."""
        rec = self.reconciler()
        runs = run_pass(rec, enumerate_estate(rec), dry_run=True)
        return [f"{r.account}: {r.outcome} {r.error or ''}" for r in runs if r.outcome != "noop"]

    # -- what the stand-in holds ---------------------------------------------------------------

    def _entities(self) -> list[Any]:
        with self.sim.state.lock:
            return list(self.sim.state.store.all())

    def state(self) -> dict[str, Any]:
        """Everything below APIM (APIs, operations, policies, backends, product links) and every role
        assignment; ETags, timestamps and generated ids left out."""
        out: dict[str, Any] = {}
        for e in self._entities():
            rid = e.id.lower()
            if rid.startswith(APIM.lower() + "/") or e.type == "Microsoft.Authorization/roleAssignments":
                out[rid] = _strip(e.body)
        return out

    def foreign(self) -> dict[str, str]:
        """Hash (body + ETag) of each foreign object and of every account and deployment."""
        out = {}
        for e in self._entities():
            rid = e.id.lower()
            watched = rid in {f.lower() for f in self.foreign_ids} or e.type.startswith(
                "Microsoft.CognitiveServices/") or rid == APIM.lower()
            if watched:
                out[rid] = _digest(e.body, e.etag)
        return out

    def problems(self) -> list[str]:
        """Duplicates and orphans among owned objects (empty = none)."""
        out: list[str] = []
        entities = self._entities()
        accounts = {e.id.lower() for e in entities if e.type == "Microsoft.CognitiveServices/accounts"}
        paths = Counter(str(e.body.get("properties", {}).get("path", "")).lower() for e in entities
                        if e.type == "Microsoft.ApiManagement/service/apis")
        out += [f"{n} APIs on path {p!r}" for p, n in paths.items() if n > 1]
        grants = Counter(
            (str(p.get("scope", "")).lower(), str(p.get("roleDefinitionId", "")).rsplit("/", 1)[-1].lower(),
             str(p.get("principalId", "")).lower())
            for e in entities if e.type == "Microsoft.Authorization/roleAssignments"
            for p in [e.body.get("properties", {})])
        out += [f"{n} role assignments for {g}" for g, n in grants.items() if n > 1]
        for e in entities:
            description = (e.body.get("properties") or {}).get("description")
            owner = owned_account(description) if isinstance(description, str) else None
            if owner is not None and owner.lower() not in accounts:
                out.append(f"orphan: {e.id} is owned for {owner}, which no longer exists")
        return out

    def owned_ids(self, kind: str) -> list[str]:
        return sorted(e.id for e in self._entities() if e.type == kind
                      and _MARK.search(json.dumps(e.body.get("properties", {}))))

    def writes(self) -> int:
        return self.sim.log.writes()


def seed_estate(sim: Sim, clients: Clients, accounts: dict[str, Any] | None = None) -> FaultWorld:
    from azure.mgmt.apimanagement import models
    from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

    seed.create_apim(clients)
    with sim.state.lock:  # a fixed principal: role-assignment names (uuid5 of it) match across estates
        sim.state.store.get(APIM).body["identity"]["principalId"] = PRINCIPAL
    seed.create_product(clients, APIM, PRODUCT)
    for name, (kind, deployments) in (estate_accounts() if accounts is None else accounts).items():
        seed.create_account(clients, name=name, kind=kind)
        for dep, model, version, fmt in deployments:
            seed.create_deployment(clients, account_id(name), dep, model=model, version=version,
                                   model_format=fmt)
    apim = clients.apim(SUB)
    rg, svc = seed.APIM_GROUP, seed.APIM_NAME
    doc = {"openapi": "3.0.1", "info": {"title": "payments", "version": "1"},
           "paths": {"/pay": {"post": {"operationId": "pay", "responses": {"200": {"description": "ok"}}}}}}
    apim.api.begin_create_or_update(rg, svc, "payments", models.ApiCreateOrUpdateParameter(
        display_name="Payments", path="payments", protocols=["https"], format="openapi+json",
        value=json.dumps(doc))).result()
    apim.api_policy.create_or_update(rg, svc, "payments", "policy", models.PolicyContract(
        value="<policies><inbound><base /><set-header name=\"x-team\" exists-action=\"override\">"
              "<value>payments</value></set-header></inbound><backend><base /></backend>"
              "<outbound><base /></outbound><on-error><base /></on-error></policies>", format="xml"))
    apim.product_api.create_or_update(rg, svc, PRODUCT, "payments")
    apim.backend.create_or_update(rg, svc, "legacy-backend", models.BackendContract(
        url="https://legacy.contoso.example", protocol="http", description="not the importer's"))
    scope = account_id("alpha")
    foreign_role = "11111111-2222-4333-8444-555555555555"
    clients.authorization(SUB).role_assignments.create(scope, foreign_role, RoleAssignmentCreateParameters(
        role_definition_id=f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_READER}",
        principal_id=OTHER_PRINCIPAL, principal_type="User"))
    foreign_ids = [f"{APIM}/apis/payments", f"{APIM}/apis/payments/policies/policy",
                   f"{APIM}/products/{PRODUCT}", f"{APIM}/products/{PRODUCT}/apis/payments",
                   f"{APIM}/backends/legacy-backend",
                   f"{scope}/providers/Microsoft.Authorization/roleAssignments/{foreign_role}"]
    below = f"{APIM}/apis/payments/".lower()
    foreign_ids += [e.id for e in sim.state.store.all() if e.id.lower().startswith(below)]
    env = {"IMPORTER_ARM_ENDPOINT": sim.url, "IMPORTER_APIM_ID": APIM,
           "IMPORTER_SCOPES": f"/subscriptions/{SUB}", "IMPORTER_PRODUCTS": PRODUCT}
    sim.log.clear()
    sim.clear_events()
    return FaultWorld(sim, clients, foreign_ids, env)


Setup = Callable[[FaultWorld], None]


@dataclass
class Estates:
    """Fresh estates on the session's stand-in, and fault-free reference states per scenario."""

    sim: Sim
    clients: Clients
    _references: dict[str, dict[str, Any]] = field(default_factory=dict)

    def fresh(self, setup: Setup | None = None) -> FaultWorld:
        """A new estate; ``setup`` (fault-free) brings it to the scenario's start state."""
        self.sim.reset()
        world = seed_estate(self.sim, self.clients)
        if setup is not None:
            setup(world)
            world.sim.log.clear()
        return world

    def reference(self, scenario: str, setup: Setup | None = None) -> dict[str, Any]:
        """State after one fault-free pass from the scenario's start state (cached per scenario)."""
        if scenario not in self._references:
            world = self.fresh(setup)
            runs = world.run_pass()
            assert all(r.ok for r in runs), [r.error for r in runs if r.error]
            assert world.problems() == []
            self._references[scenario] = world.state()
        return self._references[scenario]


@pytest.fixture(scope="session")
def _estates(armsim_server: Sim) -> Iterator[Estates]:
    settings = Settings.from_env({"IMPORTER_ARM_ENDPOINT": armsim_server.url, "IMPORTER_APIM_ID": APIM})
    made = Estates(armsim_server, Clients(settings, credential=StaticCredential(seed.OPERATOR_ID)))
    yield made
    made.clients.close()


@pytest.fixture
def estates(_estates: Estates) -> Iterator[Estates]:
    """Estates on the session's stand-in (reset for each estate); references cached per session."""
    yield _estates
    _estates.sim.reset()


def assert_converged(world: FaultWorld, reference: dict[str, Any], foreign_before: dict[str, str]) -> None:
    """The yardstick: same owned state as the fault-free run, no duplicates or orphans, foreign
    objects untouched (same ETag), and a further pass plans nothing."""
    state = world.state()
    missing = sorted(set(reference) - set(state))
    extra = sorted(set(state) - set(reference))
    assert not missing and not extra, f"missing {missing[:5]}, extra (duplicated/orphaned) {extra[:5]}"
    differ = sorted(k for k in reference if reference[k] != state[k])
    assert not differ, f"differs from the fault-free run: {differ[:5]}"
    assert world.problems() == []
    assert world.foreign() == foreign_before, "a foreign object (or an account) was written"
    assert world.plans_nothing() == []
