"""Discover: read the actual state of one account's APIM objects through the ARM adapter.

Reads only what the desired state names (deterministic ids), so a no-op reconcile is a fixed,
small number of GETs. Ownership is decided here: an object is ours only if its mark names this
account.
"""

from __future__ import annotations

from dataclasses import replace

from importer.azure.arm import AzureArm
from importer.model import (
    AccountRef,
    Actual,
    ActualApi,
    ActualBackend,
    ApimRef,
    Desired,
    NotFound,
)
from importer.render import api_id, backend_id, owned_account

BACKEND_ROLES = ("main", "embeddings", "safety")


def _mine(description: str, ref: AccountRef) -> bool:
    owner = owned_account(description)
    return owner is not None and owner.lower() == ref.key


def _own_api(api: ActualApi | None, ref: AccountRef) -> ActualApi | None:
    return None if api is None else replace(api, owned=_mine(api.spec.description, ref))


def _own_backend(b: ActualBackend | None, ref: AccountRef) -> ActualBackend | None:
    return None if b is None else replace(b, owned=_mine(b.spec.description, ref))


def read_actual(arm: AzureArm, apim: ApimRef, desired: Desired) -> Actual:
    """Actual state for ``desired``'s ids: API (+operations), policy, backends, links, roles."""
    ref = desired.account
    api = _own_api(arm.get_api(apim, desired.api.api_id), ref)
    path_clash = None
    policy, policy_etag = None, None
    links: tuple = ()
    if api is None:
        # Only when we are about to create: is the path taken by someone else's API?
        wanted = desired.api.path.strip("/").lower()
        for other in arm.list_apis(apim):
            if other.path.strip("/").lower() == wanted and other.api_id != desired.api.api_id:
                path_clash = other.api_id
                break
    else:
        policy, policy_etag = arm.get_policy(apim, desired.api.api_id)
        if desired.product_links:
            links = arm.list_product_links(apim, desired.api.api_id)
    backends = tuple(b for b in (_own_backend(arm.get_backend(apim, s.backend_id), ref)
                                 for s in desired.backends) if b is not None)
    roles: tuple = ()
    if desired.role_assignments:
        principal = desired.role_assignments[0].principal_id
        roles = arm.list_role_assignments(ref.id, ref.subscription, principal)
    return Actual(api=api, path_clash=path_clash, backends=backends, policy=policy,
                  policy_etag=policy_etag, product_links=links, role_assignments=roles)


def read_owned(arm: AzureArm, apim: ApimRef, ref: AccountRef, principal_id: str | None) -> Actual:
    """Everything this importer made for ``ref`` (for offboarding), whatever the options were."""
    api = _own_api(arm.get_api(apim, api_id(ref)), ref)
    backends = tuple(b for b in (_own_backend(arm.get_backend(apim, backend_id(ref, role)), ref)
                                 for role in BACKEND_ROLES) if b is not None)
    roles: tuple = ()
    if principal_id:
        try:
            roles = arm.list_role_assignments(ref.id, ref.subscription, principal_id)
        except NotFound:
            roles = ()  # the account (the scope) is gone, and its assignments with it
    return Actual(api=api, backends=backends, role_assignments=roles)
