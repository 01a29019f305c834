"""Real API Management's rules, modelled by the stand-in (issue 13 §1-4): ownership survives an import,
two importers share an account, every owned object is found at any account-name length, and every
referenced object is checked before the first write. Every scenario ends with a run that writes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.mgmt.apimanagement import models

from devhost import seed
from importer import identity
from importer.azure.arm import AzureArm
from importer.fleet import enumerate_estate, run_pass
from importer.model import AccountRef, ApimRef
from importer.reconcile import Reconciler, build_reconciler
from importer.settings import Settings
from tests.fixtures.world import AOAI, SUB, World

SAFETY = seed.account_id(SUB, seed.AI_GROUP, "contoso-safety")  # a Content Safety resource
B_NAME = "contoso-apim-b"


def _noop(world: World, rec: Reconciler, ref: AccountRef) -> None:
    world.sim.log.clear()
    run = rec.reconcile(ref)
    assert run.error is None and run.outcome == "noop" and world.writes() == 0, run.to_json()


def _cache(world: World) -> None:
    world.apim_client().cache.create_or_update(world.rg, world.svc, "default", models.CacheContract(
        connection_string="redis.example:10000,password=x,ssl=True", use_from_location="default"))


def _api(world: World, api_id: str) -> Any:
    return world.apim_client().api.get(world.rg, world.svc, api_id)


def _roles_at(world: World, ref: AccountRef) -> list[Any]:
    auth = world.clients.authorization(SUB)
    return [r for r in auth.role_assignments.list_for_scope(ref.id, filter="atScope()")
            if (r.scope or "").lower() == ref.key]


# ---------------------------------------------------------------------------------------------
# §1 An import takes the description from the document: ownership must not depend on it


def test_the_bundled_import_carries_the_mark_in_its_document_so_one_write_sets_it(world: World) -> None:
    ref = AccountRef.parse(AOAI)
    rec = world.reconciler()
    world.sim.log.clear()
    assert rec.reconcile(ref).outcome == "applied"
    api_puts = [e for e in world.sim.log.entries
                if e.method == "PUT" and e.path.rstrip("/").endswith(f"/apis/{identity.api_id(ref)}")]
    assert len(api_puts) == 1  # the import alone: no properties write needed
    description = _api(world, identity.api_id(ref)).description
    assert description.splitlines()[-1] == identity.owner_mark(ref, rec.apim)
    _noop(world, rec, ref)


LINKED_DOC = {
    "openapi": "3.0.1",
    "info": {"title": "Microsoft's title", "version": "1", "description": "Microsoft's description"},
    "servers": [{"url": "https://{endpoint}/openai", "variables": {"endpoint": {"default": "x"}}},
                {"url": "https://docs.example.com/openai"}],
    "paths": {"/deployments/{deployment-id}/chat/completions": {"post": {
        "operationId": "chat", "parameters": [{"name": "deployment-id", "in": "path", "required": True,
                                               "schema": {"type": "string"}}],
        "responses": {"200": {"description": "OK"}}}}},
}


@pytest.mark.parametrize("service_url_in_put", [True, False])
def test_a_linked_import_that_replaced_the_description_is_followed_by_a_properties_write(
        world: World, monkeypatch: pytest.MonkeyPatch, service_url_in_put: bool) -> None:
    import json

    ref = AccountRef.parse(AOAI)
    base = world.sim.add_file("lost/AIFoundryOpenAI.json", json.dumps(LINKED_DOC)).rsplit("/", 1)[0] + "/"
    if not service_url_in_put:
        # The worst case: the import PUT carries no service URL, so APIM takes the document's.
        real = AzureArm.put_api

        def without_url(self: AzureArm, apim: ApimRef, spec: Any, etag: Any, **kw: Any) -> Any:
            from dataclasses import replace
            return real(self, apim, replace(spec, service_url=None) if kw.get("document", True) else spec,
                        etag, **kw)
        monkeypatch.setattr(AzureArm, "put_api", without_url)
    rec = world.reconciler(IMPORTER_OPENAPI="official", IMPORTER_OPENAPI_BASE_URL=base)
    world.sim.log.clear()
    run = rec.reconcile(ref)
    assert run.outcome == "applied", run.to_json()
    aid = identity.api_id(ref)
    api_puts = [e for e in world.sim.log.entries if e.method == "PUT" and e.path.endswith(f"/apis/{aid}")]
    assert len(api_puts) == 2  # the import, then what the importer owns
    api = _api(world, aid)
    assert api.description.splitlines()[-1] == identity.owner_mark(ref, rec.apim)
    assert "Microsoft's description" not in api.description
    assert api.service_url == "https://contoso-aoai.openai.azure.com/openai"
    assert api.display_name == "contoso-aoai (azure-openai)"
    assert len(list(world.apim_client().api_operation.list_by_api(world.rg, world.svc, aid))) == 1
    monkeypatch.undo()
    _noop(world, rec, ref)


def test_a_properties_write_that_fails_after_the_import_is_finished_by_the_next_run(world: World) -> None:
    import json

    ref = AccountRef.parse(AOAI)
    aid = identity.api_id(ref)
    base = world.sim.add_file("cut/AIFoundryOpenAI.json", json.dumps(LINKED_DOC)).rsplit("/", 1)[0] + "/"
    rec = world.reconciler(IMPORTER_OPENAPI="official", IMPORTER_OPENAPI_BASE_URL=base)
    # the import PUT passes; every later PUT of the API (the properties) fails, retries included
    world.sim.faults.script("PUT", rf"/apis/{aid}$", [None] + [500] * 50)
    run = rec.reconcile(ref)
    assert run.outcome == "failed" and run.error_kind == "transient", run.to_json()
    left = _api(world, aid)
    assert left.description == "Microsoft's description"  # unmarked: what the import took
    world.sim.faults.clear()
    again = rec.reconcile(ref)
    assert again.outcome == "applied", again.to_json()
    api_change = next(c for c in again.plan.changes if c.kind == "api")
    assert api_change.reason == "finish an interrupted import"
    assert _api(world, aid).description.splitlines()[-1] == identity.owner_mark(ref, rec.apim)
    _noop(world, rec, ref)
    # An API with another description at that id stays someone else's: a conflict, nothing written.
    theirs = models.ApiCreateOrUpdateParameter(path=left.path, display_name="theirs",
                                               description="Someone's API", protocols=["https"])
    world.apim_client().api.begin_create_or_update(world.rg, world.svc, aid, theirs, if_match="*").result()
    world.sim.log.clear()
    assert rec.reconcile(ref).outcome == "conflict" and world.writes() == 0


# ---------------------------------------------------------------------------------------------
# §2 Two importers (two APIM instances), one account


def _second_importer(world: World, **env: str) -> Reconciler:
    seed.create_apim(world.clients, name=B_NAME)
    apim = seed.apim_id(name=B_NAME)
    settings = Settings.from_env({"IMPORTER_ARM_ENDPOINT": world.sim.url, "IMPORTER_APIM_ID": apim,
                                  "IMPORTER_SCOPES": f"/subscriptions/{SUB}", **env})
    return build_reconciler(settings, apim_ttl_s=0)


@pytest.mark.parametrize("b_mark", ["current", "legacy"])
def test_offboarding_by_one_importer_leaves_the_other_importers_grant(world: World, b_mark: str) -> None:
    ref = AccountRef.parse(AOAI)
    rec_a, rec_b = world.reconciler(), _second_importer(world)
    assert rec_a.reconcile(ref).outcome == "applied" and rec_b.reconcile(ref).outcome == "applied"
    roles = _roles_at(world, ref)
    assert len(roles) == 2 and {r.principal_id for r in roles} == {
        rec_a.apim_service().principal_id, rec_b.apim_service().principal_id}
    b_role = next(r for r in roles if r.principal_id == rec_b.apim_service().principal_id)
    assert b_role.description.endswith(f"apim={rec_b.apim.id}]")
    if b_mark == "legacy":  # B's grant made by a release whose marks named only the account
        from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

        auth = world.clients.authorization(SUB)
        auth.role_assignments.delete(ref.id, b_role.name)
        auth.role_assignments.create(ref.id, b_role.name, RoleAssignmentCreateParameters(
            role_definition_id=b_role.role_definition_id, principal_id=b_role.principal_id,
            principal_type="ServicePrincipal", description=f"[managed-by=apim-ai-importer account={ref.id}]"))

    # A stops importing the account (opt-in now required, the account is untagged): A offboards.
    a_only = world.reconciler(IMPORTER_OPT_IN="true")
    run = a_only.reconcile(ref)
    assert run.outcome == "offboarded", run.to_json()
    assert [r.principal_id for r in _roles_at(world, ref)] == [b_role.principal_id]
    assert all(c.kind != "role_assignment" or c.id != b_role.name for c in run.applied)
    _noop(world, a_only, ref)
    _noop(world, rec_b, ref)  # B's API and grant are whole: nothing to repair


def test_a_fleet_pass_ignores_objects_marked_for_another_instance(world: World) -> None:
    """B's marks name B: A's fleet pass finds no orphan among them (A and B share the account's
    scope; here B's objects are copied into A's instance, as a restore from B's backup would)."""
    ref = AccountRef.parse(AOAI)
    rec_b = _second_importer(world)
    assert rec_b.reconcile(ref).outcome == "applied"
    b_api = rec_b.arm.get_api(rec_b.apim, identity.api_id(ref))
    assert b_api is not None
    client = world.apim_client()
    client.backend.create_or_update(world.rg, world.svc, "copied-from-b", models.BackendContract(
        url="https://x.example.com", protocol="http",
        description=identity.owner_description(AccountRef.parse(AOAI.replace("contoso-aoai", "gone")),
                                               rec_b.apim, "copied")))
    estate = enumerate_estate(world.reconciler())
    assert estate.orphans == {}


# ---------------------------------------------------------------------------------------------
# §3 Every owned object found at any account-name length


LONG = "a" + "b" * 61 + "c"  # 63 characters: '-embeddings' once pushed past the API id's prefix


def test_a_63_character_account_has_every_object_found_rewritten_never_and_removed(world: World) -> None:
    seed.create_account(world.clients, name=LONG, kind="OpenAI")
    ref = AccountRef.parse(seed.account_id(SUB, seed.AI_GROUP, LONG))
    seed.create_deployment(world.clients, ref.id, "gpt-4o")
    seed.create_deployment(world.clients, ref.id, "text-embedding-3-small", model="text-embedding-3-small")
    _cache(world)
    seed.create_account(world.clients, name="contoso-safety", kind="ContentSafety")
    env = {"IMPORTER_SEMANTIC_CACHE_DEPLOYMENT": "text-embedding-3-small",
           "IMPORTER_CONTENT_SAFETY_ID": SAFETY}
    rec = world.reconciler(**env)
    assert rec.reconcile(ref).outcome == "applied"
    prefix = identity.account_prefix(ref)
    ours = [b.name for b in world.apim_client().backend.list_by_service(
        world.rg, world.svc, filter=identity.listing_filter(ref))]
    assert sorted(ours) == sorted([identity.api_id(ref), identity.backend_id(ref, "embeddings"),
                                   identity.backend_id(ref, "safety")])
    assert all(n.startswith(prefix) and len(n) <= 80 for n in ours)
    _noop(world, rec, ref)
    # a fleet pass (after one that imports the world's other accounts): no-op too
    run_pass(rec, enumerate_estate(rec))
    world.sim.log.clear()
    results = run_pass(rec, enumerate_estate(rec))
    assert world.writes() == 0, [r.to_json() for r in results if r.writes]

    # The account goes: the orphan sweep finds every object of it, feature backends included.
    world.clients.cognitive(SUB).accounts.begin_delete(seed.AI_GROUP, LONG).result()
    estate = enumerate_estate(rec)
    assert ref.key in estate.orphans
    runs = run_pass(rec, estate)
    assert {r.outcome for r in runs if r.account.lower() == ref.key} == {"offboarded"}
    assert [rid for rid in world.sim.ids() if prefix in rid] == []


# ---------------------------------------------------------------------------------------------
# §4 Every reference checked before the first write; product links after the policy


def _fragment(world: World, name: str = "org-ai-policy") -> None:
    world.apim_client().policy_fragment.begin_create_or_update(
        world.rg, world.svc, name, models.PolicyFragmentContract(
            value="<fragment><set-header name=\"x-org\" exists-action=\"override\"><value>1</value>"
                  "</set-header></fragment>", format="xml")).result()


MISSING: list[tuple[str, dict[str, str], str]] = [
    ("fragment", {"IMPORTER_POLICY_FRAGMENT": "no-such-fragment"}, "policy fragment 'no-such-fragment'"),
    ("product", {"IMPORTER_PRODUCTS": "ai-consumers,no-such-product"}, "product 'no-such-product'"),
    ("embeddings deployment", {"IMPORTER_SEMANTIC_CACHE_DEPLOYMENT": "no-such-deployment"},
     "embeddings deployment 'no-such-deployment'"),
    ("cache", {"IMPORTER_SEMANTIC_CACHE_DEPLOYMENT": "text-embedding-3-small"}, "RediSearch"),
]


@pytest.mark.parametrize(("label", "env", "message"), MISSING, ids=[m[0] for m in MISSING])
@pytest.mark.parametrize("imported", [False, True], ids=["new", "imported"])
def test_a_missing_reference_is_a_clear_error_and_nothing_is_written(world: World, label: str,
                                                                     env: dict[str, str], message: str,
                                                                     imported: bool) -> None:
    ref = AccountRef.parse(AOAI)
    if label != "cache":
        _cache(world)
    if imported:
        assert world.reconciler().reconcile(ref).outcome == "applied"
    before = {rid: world.sim.resource(rid) for rid in world.sim.ids()}
    world.sim.log.clear()
    run = world.reconciler(**env).reconcile(ref)
    assert run.outcome == "failed" and run.error_kind == "permanent" and message in (run.error or ""), \
        run.to_json()
    assert world.writes() == 0
    assert {rid: world.sim.resource(rid) for rid in world.sim.ids()} == before
    if not imported:
        assert not world.reconciler().arm.get_api(world.reconciler().apim, identity.api_id(ref))


def test_a_fragment_that_exists_is_checked_and_included(world: World) -> None:
    ref = AccountRef.parse(AOAI)
    _fragment(world)
    rec = world.reconciler(IMPORTER_POLICY_FRAGMENT="org-ai-policy")
    world.sim.log.clear()
    assert rec.reconcile(ref).outcome == "applied"
    assert world.sim.log.count(method="GET", path="/policyFragments/org-ai-policy") == 1
    _noop(world, rec, ref)
    assert world.sim.log.count(method="GET", path="/policyFragments/") == 0  # a no-op checks nothing


def test_product_links_are_written_only_after_the_policy(world: World) -> None:
    ref = AccountRef.parse(AOAI)
    world.sim.log.clear()
    assert world.reconciler(IMPORTER_PRODUCTS="ai-consumers").reconcile(ref).outcome == "applied"
    puts = [e.path for e in world.sim.log.entries if e.method == "PUT"]
    policy = next(i for i, p in enumerate(puts) if p.endswith("/policies/policy"))
    link = next(i for i, p in enumerate(puts) if "/products/ai-consumers/apis/" in p)
    assert policy < link
