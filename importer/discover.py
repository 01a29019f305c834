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
    ProductLinkSpec,
    RoleAssignmentSpec,
)
from importer.render import BACKEND_ROLES, api_id, backend_id, owned_account


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
    links: tuple[ProductLinkSpec, ...] = ()
    if api is None:
        # Only when we are about to create: is the path taken by someone else's API?
        path = desired.api.path.strip("/").lower()
        for other in arm.list_apis(apim):
            if other.path.strip("/").lower() == path and other.api_id != desired.api.api_id:
                path_clash = other.api_id
                break
    else:
        policy, policy_etag = arm.get_policy(apim, desired.api.api_id)
        if desired.product_links:
            links = arm.list_product_links(apim, desired.api.api_id)
    # Desired backends, plus our feature backends the current policy still names (a feature was
    # just turned off: plan deletes them). Costs no read in the steady state.
    wanted = [s.backend_id for s in desired.backends]
    if policy is not None:
        wanted += [bid for bid in (backend_id(ref, role) for role in BACKEND_ROLES)
                   if bid not in wanted and bid in policy.xml]
    backends = tuple(b for b in (_own_backend(arm.get_backend(apim, bid), ref) for bid in wanted)
                     if b is not None)
    roles: tuple[RoleAssignmentSpec, ...] = ()
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
    roles: tuple[RoleAssignmentSpec, ...] = ()
    if principal_id:
        try:
            roles = arm.list_role_assignments(ref.id, ref.subscription, principal_id)
        except NotFound:
            roles = ()  # the account (the scope) is gone, and its assignments with it
    return Actual(api=api, backends=backends, role_assignments=roles)
