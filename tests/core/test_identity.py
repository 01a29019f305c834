"""identity: ids within APIM's limits that one listing rule finds, marks naming the account and the
APIM instance, and the one "is it ours" rule."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace

import pytest

from importer import identity, render
from importer.model import OWNER_MARK, AccountRef, ApimRef, Mode
from tests.core.factory import APIM_REF, PRINCIPAL, REF, SUB

ID = re.compile(r"^[A-Za-z0-9-]{1,80}$")
MARK = f"[{OWNER_MARK} account={REF.id} apim={APIM_REF.id}]"
OTHER_APIM = ApimRef.parse(APIM_REF.id.replace("contoso-apim", "other-apim"))
# Account names at every length APIM's limits could bite: 2 (the shortest), 55 (the longest kept
# whole), 56 and 63-64 (cut; a 63-character name once pushed '-embeddings' past the API id's prefix).
NAMES = ["ab", "a" * 55, "a" * 56, "a" + "b-" * 30 + "cd", "a" + "b-" * 31 + "c", "A" * 64]


def _hash() -> str:
    return identity.account_prefix(REF).rsplit("-", 1)[-1]


def _every_id(ref: AccountRef) -> list[str]:
    return ([identity.api_id(ref, m) for m in Mode] + [identity.backend_id(ref, "main", m) for m in Mode]
            + [identity.backend_id(ref, r) for r in ("embeddings", "safety")]
            + [identity.probe_subscription_id(ref)])


def test_ids_are_deterministic_valid_and_carry_the_name() -> None:
    h = _hash()
    assert re.fullmatch(r"[0-9a-f]{8}", h)
    assert identity.api_id(REF) == f"ai-contoso-ai-{h}"  # the id earlier releases gave the API
    assert identity.api_id(REF, Mode.AZURE_AI) == f"ai-contoso-ai-{h}-models"
    assert identity.api_id(REF, Mode.AZURE_OPENAI_V1) == f"ai-contoso-ai-{h}-v1"
    v1 = Mode.AZURE_OPENAI_V1
    assert identity.backend_id(REF, "main", v1) == identity.api_id(REF, v1)
    assert identity.backend_id(REF, "embeddings") == f"ai-contoso-ai-{h}-embeddings"
    assert identity.backend_id(REF, "safety") == f"ai-contoso-ai-{h}-safety"
    assert identity.probe_subscription_id(REF) == f"ai-contoso-ai-{h}-probe"
    # the hash is of the lowercase id: the same account spelled differently gets the same ids
    assert identity.api_id(AccountRef.parse(REF.id.lower())) == identity.api_id(REF)


def test_same_name_in_two_subscriptions_does_not_collide() -> None:
    other = AccountRef.parse(REF.id.replace(SUB, "00000000-0000-0000-0000-000000000002"))
    assert not set(_every_id(other)) & set(_every_id(REF))


@pytest.mark.parametrize("name", NAMES)
def test_every_id_fits_and_starts_with_the_account_prefix_at_any_name_length(name: str) -> None:
    ref = AccountRef(SUB, "rg", name)
    prefix = identity.account_prefix(ref)
    for ident in _every_id(ref):
        assert ID.fullmatch(ident) and len(ident) <= identity.MAX_ID, ident
        assert ident.startswith(prefix), ident
    assert identity.listing_filter(ref) == f"startswith(name,'{prefix}')"
    assert len(set(_every_id(ref)) - {identity.api_id(ref, m) for m in Mode}) == 3  # distinct


def test_names_differing_only_past_the_cut_still_differ() -> None:
    a, b = AccountRef(SUB, "rg", "a" * 63 + "b"), AccountRef(SUB, "rg", "a" * 63 + "c")
    assert identity.api_id(a) != identity.api_id(b)


def test_ids_are_recognised_only_as_the_accounts_own() -> None:
    for m in Mode:
        assert identity.mode_of_api(REF, identity.api_id(REF, m).upper()) is m
        assert identity.is_owned_id(REF, identity.api_id(REF, m))
    assert identity.is_owned_id(REF, identity.backend_id(REF, "safety"))
    # an account whose name extends this one's prefix shares the prefix, not the ids
    longer = AccountRef(SUB, REF.resource_group, f"{REF.name}-{_hash()}-x")
    assert identity.api_id(longer).startswith(identity.account_prefix(REF))
    assert not identity.is_owned_id(REF, identity.api_id(longer))
    assert identity.mode_of_api(REF, identity.api_id(longer)) is None


def test_unknown_backend_role() -> None:
    with pytest.raises(ValueError, match="unknown backend role"):
        identity.backend_id(REF, "other")


def test_role_assignment_name_is_uuid5_of_lowercase_triple() -> None:
    name = identity.role_assignment_name(REF.id, render.ROLE_OPENAI_USER.upper(), PRINCIPAL.upper())
    expected = uuid.uuid5(identity.ROLE_ASSIGNMENT_NAMESPACE,
                          f"{REF.id.lower()}|{render.ROLE_OPENAI_USER}|{PRINCIPAL}")
    assert name == str(expected) and uuid.UUID(name).version == 5


# ---------------------------------------------------------------------------------------------
# The mark


def test_owner_description_ends_with_a_mark_naming_account_and_instance() -> None:
    assert identity.owner_description(REF, APIM_REF, "Hello.") == f"Hello.\n{MARK}"
    assert identity.owner_description(REF, APIM_REF, "") == MARK


LEGACY = f"[{OWNER_MARK} account={REF.id}]"


@pytest.mark.parametrize(("description", "owner"), [
    (identity.owner_description(REF, APIM_REF, "Some text."), REF.id),
    (identity.owner_description(REF, APIM_REF, "Multi\nline\n"), REF.id),
    (identity.owner_description(REF, APIM_REF, "x").replace("\n", "\r\n") + "\r\n", REF.id),
    (f"text\n{LEGACY}", REF.id),  # a mark from before marks named the instance
    (identity.owner_description(REF, OTHER_APIM, "x"), None),  # another instance's
    (None, None),
    ("", None),
    ("A user's API", None),
    (f"{MARK}\nthen more text", None),  # the mark must be the final line
    (f"[{OWNER_MARK}]", None),
    (f"[{OWNER_MARK} account=not-an-id]", None),
])
def test_owned_account(description: str | None, owner: str | None) -> None:
    assert identity.owned_account(description, APIM_REF) == owner


def test_an_apim_object_is_ours_by_its_id_and_mark() -> None:
    aid = identity.api_id(REF, Mode.AZURE_AI)
    ours = identity.owner_description(REF, APIM_REF, "x")
    assert identity.owns_object(aid, ours, REF, APIM_REF)
    assert identity.owns_object(aid, LEGACY, REF, APIM_REF)
    other_case = AccountRef(SUB.upper(), "RG-AI", "CONTOSO-AI")
    assert identity.owns_object(aid, ours, other_case, APIM_REF)
    assert not identity.owns_object("my-api", ours, REF, APIM_REF)  # marked, but not our id
    assert not identity.owns_object(aid, identity.owner_description(REF, OTHER_APIM, "x"), REF, APIM_REF)
    assert not identity.owns_object(aid, identity.owner_description(replace(REF, name="other"), APIM_REF,
                                                                    "x"), REF, APIM_REF)


def test_a_role_assignment_is_ours_only_for_this_instance() -> None:
    ours = identity.owner_description(REF, APIM_REF, "x")
    theirs = identity.owner_description(REF, OTHER_APIM, "x")
    assert identity.owns_role(REF.id.upper(), ours, "p", REF, APIM_REF)
    assert not identity.owns_role(REF.id, theirs, "p", REF, APIM_REF, principal="p")
    assert not identity.owns_role(REF.id + "/deployments/x", ours, "p", REF, APIM_REF)
    # an older mark names no instance: ours only when it is of this instance's principal
    assert identity.owns_role(REF.id, LEGACY, PRINCIPAL, REF, APIM_REF, principal=PRINCIPAL.upper())
    assert not identity.owns_role(REF.id, LEGACY, "someone-else", REF, APIM_REF, principal=PRINCIPAL)
    assert not identity.owns_role(REF.id, LEGACY, PRINCIPAL, REF, APIM_REF)  # principal unknown


def test_probe_subscription_is_deterministic_scoped_and_fits_apims_limits() -> None:
    spec = identity.probe_subscription(REF)
    assert spec.scope == f"/apis/{identity.api_id(REF)}"
    assert identity.probe_subscription(REF, Mode.AZURE_OPENAI_V1).scope == \
        f"/apis/{identity.api_id(REF, Mode.AZURE_OPENAI_V1)}"
    assert spec.state == "active" and spec.display_name.startswith("managed-by=apim-ai-importer")
    longest = replace(REF, name="a" * 64)
    assert len(identity.probe_subscription(longest).display_name) <= 100
    assert identity.owns_subscription(spec, REF)
    assert identity.owns_subscription(identity.probe_subscription(REF, Mode.AZURE_AI), REF)
    full = replace(spec, scope=f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ApiManagement"
                               f"/service/apim/apis/{identity.api_id(REF).upper()}")
    assert identity.owns_subscription(full, REF)
    assert not identity.owns_subscription(replace(spec, display_name="someone's"), REF)
    assert not identity.owns_subscription(replace(spec, scope="/apis"), REF)
    assert not identity.owns_subscription(spec, replace(REF, name="other"))


def test_our_principal_is_read_only_from_our_own_assignment() -> None:
    from importer.model import RoleAssignmentSpec

    def role(principal: str, apim: ApimRef | None, name: str | None = None) -> RoleAssignmentSpec:
        mark = identity.owner_description(REF, apim, "x") if apim else f"x\n{LEGACY}"
        default = identity.role_assignment_name(REF.id, render.ROLE_OPENAI_USER, principal)
        return RoleAssignmentSpec(name or default, REF.id, render.ROLE_OPENAI_USER, principal, mark)

    ours, theirs = role(PRINCIPAL, APIM_REF), role("b-principal", OTHER_APIM)
    assert identity.owned_principal([ours, theirs], REF, APIM_REF) == PRINCIPAL
    assert identity.owned_principal([theirs], REF, APIM_REF) is None
    assert identity.owned_principal([role(PRINCIPAL, APIM_REF, name="renamed")], REF, APIM_REF) is None
    # two older marks (no instance named): can't tell whose is ours
    assert identity.owned_principal([role(PRINCIPAL, None), role("b-principal", None)], REF, APIM_REF) is None
    assert identity.needs_principal([role(PRINCIPAL, None)], REF)
    assert not identity.needs_principal([ours, theirs], REF)


def test_an_api_our_import_left_unfinished_is_recognised_and_nothing_else() -> None:
    from importer.model import ApiSpec

    mine = identity.owner_description(REF, APIM_REF, "x")
    want = ApiSpec(identity.api_id(REF), "n", mine, "contoso-ai/openai", import_format="openapi+json-link",
                   imported_description="Microsoft's description")
    left = ApiSpec(identity.api_id(REF).upper(), "Microsoft's title", "Microsoft's description\r\n",
                   "/contoso-ai/openai/")
    assert identity.left_by_our_import(left, want, REF)
    assert not identity.left_by_our_import(replace(left, description="Someone's API"), want, REF)
    assert not identity.left_by_our_import(replace(left, path="elsewhere/openai"), want, REF)
    assert not identity.left_by_our_import(left, replace(want, imported_description=None), REF)
    marked = f"Microsoft's description\n{identity.owner_mark(replace(REF, name='other'), APIM_REF)}"
    assert not identity.left_by_our_import(replace(left, description=marked),
                                           replace(want, imported_description=marked), REF)
    other = replace(left, api_id="my-api")
    assert not identity.left_by_our_import(other, replace(want, api_id="my-api"), REF)
    # a document without a description leaves none: an API with none is ours only at our id and path
    assert identity.left_by_our_import(replace(left, description=""), replace(want, imported_description=""),
                                       REF)
