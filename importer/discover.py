"""Discover: read the actual state of one account's APIM objects through the ARM adapter.

Reads only what the desired state names (deterministic ids), so a no-op reconcile is a fixed,
small number of GETs. Ownership is decided here: an object is ours only if its mark names this
account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, replace

from importer.azure.arm import AzureArm
from importer.model import (
    AccountRef,
    Action,
    Actual,
    ActualApi,
    ActualBackend,
    ApimRef,
    ApiSpec,
    BackendSpec,
    Desired,
    DiagnosticSpec,
    NotFound,
    Plan,
    PolicySpec,
    ProductLinkSpec,
    RoleAssignmentSpec,
)
from importer.render import (
    BACKEND_ROLES,
    DIAGNOSTIC_AZURE_MONITOR,
    LLM_LOGGING_NOTE,
    api_id,
    backend_id,
    owned_account,
    owns_subscription,
    probe_subscription_id,
    role_assignment_name,
)


def _mine(description: str, ref: AccountRef) -> bool:
    owner = owned_account(description)
    return owner is not None and owner.lower() == ref.key


def _own_api(api: ActualApi | None, ref: AccountRef) -> ActualApi | None:
    return None if api is None else replace(api, owned=_mine(api.spec.description, ref))


def _own_backend(b: ActualBackend | None, ref: AccountRef) -> ActualBackend | None:
    return None if b is None else replace(b, owned=_mine(b.spec.description, ref))


@dataclass(frozen=True)
class Snapshot:
    """Bulk listings taken once per fleet pass, so a no-op account costs only what can't be listed
    (deployments, operations, policy). Holds no ETags: a plan with writes is re-read fresh."""

    principal_id: str | None
    apis: Mapping[str, ApiSpec]  # by lowercase api id; operations empty
    backends: Mapping[str, BackendSpec]  # by lowercase backend id
    roles: Mapping[str, tuple[RoleAssignmentSpec, ...]]  # by lowercase scope, APIM principal only
    role_subscriptions: frozenset[str]  # lowercase subscriptions whose assignments were listed
    product_apis: Mapping[str, frozenset[str]]  # product id → lowercase api ids linked to it


def owns_anything(snapshot: Snapshot, ref: AccountRef) -> bool:
    """Whether the pass's listings show an object of ours for ``ref`` (an API, a backend, APIM's
    role assignment on the account), or can't tell (its subscription's assignments not listed)."""
    if ref.subscription.lower() not in snapshot.role_subscriptions:
        return True
    api = snapshot.apis.get(api_id(ref).lower())
    if api is not None and _mine(api.description, ref):
        return True
    for role in BACKEND_ROLES:
        backend = snapshot.backends.get(backend_id(ref, role).lower())
        if backend is not None and _mine(backend.description, ref):
            return True
    return any(_mine(r.description, ref) for r in snapshot.roles.get(ref.id.lower(), ()))


def take_snapshot(arm: AzureArm, apim: ApimRef, principal_id: str | None, subscriptions: Iterable[str],
                  products: Iterable[str]) -> Snapshot:
    apis = {a.api_id.lower(): a for a in arm.list_apis(apim)}
    backends = {b.backend_id.lower(): b for b in arm.list_backends(apim)}
    roles: dict[str, list[RoleAssignmentSpec]] = {}
    subs = frozenset(s.lower() for s in subscriptions) if principal_id else frozenset()
    for sub in sorted(subs):
        for role in arm.list_role_assignments_in_subscription(sub, principal_id or ""):
            roles.setdefault(role.scope.lower(), []).append(role)
    product_apis = {}
    for product in sorted(set(products)):
        try:
            product_apis[product] = frozenset(a.lower() for a in arm.list_product_apis(apim, product))
        except NotFound:
            continue  # a missing product is reported by the run that needs it
    return Snapshot(principal_id, apis, backends, {k: tuple(v) for k, v in roles.items()}, subs,
                    product_apis)


def _path_clash(others: Iterable[ApiSpec], desired: Desired) -> tuple[str | None, str | None]:
    """(id, owning account id or None) of another API already on the desired path."""
    path = desired.api.path.strip("/").lower()
    for other in others:
        if other.path.strip("/").lower() == path and other.api_id.lower() != desired.api.api_id.lower():
            return other.api_id, owned_account(other.description)
    return None, None


def owned_principal(scope_roles: Iterable[RoleAssignmentSpec], ref: AccountRef) -> str | None:
    """The principal of this importer's own assignment on the account, if exactly one principal
    holds one: an assignment carrying our mark for ``ref`` whose name is the deterministic name for
    its own (scope, role, principal). Anything else (none, several, a renamed one) → None."""
    found = {r.principal_id.lower() for r in scope_roles
             if _mine(r.description, ref)
             and r.name.lower() == role_assignment_name(ref.id, r.role_definition_guid, r.principal_id)}
    return found.pop() if len(found) == 1 else None


def roles_of(scope_roles: Iterable[RoleAssignmentSpec], desired: Desired) -> tuple[RoleAssignmentSpec, ...]:
    """The assignments of ``desired``'s principal among those listed at the account's scope."""
    if not desired.role_assignments:
        return ()
    principal = desired.role_assignments[0].principal_id.lower()
    return tuple(r for r in scope_roles if r.principal_id.lower() == principal)


@dataclass(frozen=True)
class Prefetch:
    """Reads of one account's objects sent together, before the desired state is known: every id
    follows from the account id alone. A field left None is read (in turn) when it is needed."""

    api: Future[ActualApi | None] | None = None  # without its operations
    operations: Future[tuple[tuple[str, str], ...]] | None = None
    policy: Future[tuple[PolicySpec | None, str | None]] | None = None
    backends: Future[list[ActualBackend]] | None = None  # every backend named with the API id's prefix
    links: Future[tuple[ProductLinkSpec, ...]] | None = None
    roles: Future[tuple[RoleAssignmentSpec, ...]] | None = None  # at the account's scope
    apis: Future[list[ApiSpec]] | None = None  # every API: a path clash, when ours is absent


def _operations(arm: AzureArm, apim: ApimRef, aid: str) -> tuple[tuple[str, str], ...]:
    try:
        return arm.list_operations(apim, aid)
    except NotFound:  # no API (yet)
        return ()


def prefetch(arm: AzureArm, apim: ApimRef, ref: AccountRef, *, snapshot: Snapshot | None = None,
             links: bool = False, roles: bool = False, principal: str | None = None) -> Prefetch:
    """Send the reads of ``ref``'s objects at once. With a ``snapshot`` only what it can't hold
    (operations, policy) is read, and only for an API it lists. ``roles``: the assignments at the
    account's scope, of ``principal`` if known, else of every principal (to find our own)."""
    aid = api_id(ref)
    if snapshot is not None:
        if aid.lower() not in snapshot.apis:
            return Prefetch()
        return Prefetch(operations=arm.submit(_operations, arm, apim, aid),
                        policy=arm.submit(arm.get_policy, apim, aid))
    role_read: Future[tuple[RoleAssignmentSpec, ...]] | None = None
    if roles:
        role_read = arm.submit(arm.list_role_assignments, ref.id, ref.subscription, principal)
    return Prefetch(api=arm.submit(arm.get_api, apim, aid, operations=False),
                    operations=arm.submit(_operations, arm, apim, aid),
                    policy=arm.submit(arm.get_policy, apim, aid),
                    backends=arm.submit(arm.list_backends_named, apim, aid),
                    links=arm.submit(arm.list_product_links, apim, aid) if links else None,
                    roles=role_read)


def read_actual(arm: AzureArm, apim: ApimRef, desired: Desired, snapshot: Snapshot | None = None,
                *, paths_from: Snapshot | None = None, prefetched: Prefetch | None = None) -> Actual:
    """Actual state for ``desired``'s ids: API (+operations), policy, backends, links, roles.

    With a ``snapshot``, listed objects are taken from it (no ETags); without, each is read, or
    taken from ``prefetched`` (reads already in flight)."""
    ref = desired.account
    aid = desired.api.api_id
    pf = prefetched or Prefetch()

    def operations() -> tuple[tuple[str, str], ...]:
        return pf.operations.result() if pf.operations else arm.list_operations(apim, aid)

    if snapshot is not None:
        listed = snapshot.apis.get(aid.lower())
        api = None if listed is None else _own_api(ActualApi(spec=replace(
            listed, operations=operations())), ref)
    else:
        got = pf.api.result() if pf.api else arm.get_api(apim, aid, operations=False)
        api = None if got is None else _own_api(replace(got, spec=replace(
            got.spec, operations=operations())), ref)
    path_clash = path_clash_owner = None
    policy, policy_etag = None, None
    links: tuple[ProductLinkSpec, ...] = ()
    if api is None:
        # Only when we are about to create: is the path taken by someone else's API?
        # A fleet pass checks against its listing (``paths_from``) rather than listing every API
        # again for each new account; APIM itself refuses a duplicate path at PUT time anyway.
        listing = snapshot or paths_from
        others = (listing.apis.values() if listing else pf.apis.result() if pf.apis
                  else arm.list_apis(apim))
        path_clash, path_clash_owner = _path_clash(others, desired)
    else:
        policy, policy_etag = pf.policy.result() if pf.policy else arm.get_policy(apim, aid)
        wanted_products = {link.product_id for link in desired.product_links}
        if snapshot is not None and wanted_products <= set(snapshot.product_apis):
            links = tuple(ProductLinkSpec(product_id=p, api_id=aid) for p in sorted(wanted_products)
                          if aid.lower() in snapshot.product_apis[p])
        elif wanted_products:
            links = pf.links.result() if pf.links else arm.list_product_links(apim, aid)
    # Desired backends, plus our feature backends the current policy still names (a feature was
    # just turned off: plan deletes them). Costs no read in the steady state.
    wanted = [s.backend_id for s in desired.backends]
    if policy is not None:
        wanted += [bid for bid in (backend_id(ref, role) for role in BACKEND_ROLES)
                   if bid not in wanted and bid in policy.xml]
    found: list[ActualBackend | None] = []
    if snapshot is not None:
        for bid in wanted:
            spec = snapshot.backends.get(bid.lower())
            found.append(None if spec is None else ActualBackend(spec=spec))
    elif pf.backends is not None or len(wanted) > 1:
        # Feature backends share the API id as a prefix: one listing instead of a read each.
        named = {b.spec.backend_id.lower(): b for b in (
            pf.backends.result() if pf.backends else arm.list_backends_named(apim, aid))}
        found = [named.get(bid.lower()) for bid in wanted]
    else:
        found = [arm.get_backend(apim, bid) for bid in wanted]
    backends = tuple(b for b in (_own_backend(x, ref) for x in found) if b is not None)
    roles: tuple[RoleAssignmentSpec, ...] = ()
    if pf.roles is not None:
        roles = roles_of(pf.roles.result(), desired)
    elif desired.role_assignments:
        principal = desired.role_assignments[0].principal_id
        if (snapshot is not None and snapshot.principal_id == principal
                and ref.subscription.lower() in snapshot.role_subscriptions):
            roles = snapshot.roles.get(ref.id.lower(), ())
        else:
            roles = arm.list_role_assignments(ref.id, ref.subscription, principal)
    roles += _other_scope_roles(arm, desired, snapshot)
    diagnostics: tuple[DiagnosticSpec, ...] = ()
    if api is not None and _needs_diagnostics(desired, backends):
        diagnostics = tuple(d for d, _ in arm.list_diagnostics(apim, aid))
    return Actual(api=api, path_clash=path_clash, path_clash_owner=path_clash_owner, backends=backends,
                  policy=policy, policy_etag=policy_etag, product_links=links, role_assignments=roles,
                  diagnostics=diagnostics)


def _needs_diagnostics(desired: Desired, backends: Iterable[ActualBackend]) -> bool:
    """Whether the run must look at the API's diagnostics: the options ask for one, or LLM logging
    is off now and the main backend's description records that it was on (so it is turned off)."""
    for d in desired.diagnostics:
        if d.name != DIAGNOSTIC_AZURE_MONITOR or d.llm_logging:
            return True
    main = backend_id(desired.account).lower()
    return any(b.spec.backend_id.lower() == main and LLM_LOGGING_NOTE in b.spec.description
               for b in backends)


def _other_scope_roles(arm: AzureArm, desired: Desired,
                       snapshot: Snapshot | None) -> tuple[RoleAssignmentSpec, ...]:
    """APIM's assignments at the desired scopes other than the account's (the Content Safety
    resource): from the pass's listing when it covers that subscription, else one read per scope."""
    out: list[RoleAssignmentSpec] = []
    account = desired.account.key
    for want in desired.role_assignments:
        if want.scope.lower() == account:
            continue
        sub = want.scope.split("/")[2]
        if (snapshot is not None and snapshot.principal_id == want.principal_id
                and sub.lower() in snapshot.role_subscriptions):
            found = snapshot.roles.get(want.scope.lower(), ())
        else:
            try:
                found = arm.list_role_assignments(want.scope, sub, want.principal_id)
            except NotFound:
                found = ()
        out += [r for r in found if r.principal_id.lower() == want.principal_id.lower()]
    return tuple(out)


def unguarded(actual: Actual, plan: Plan) -> list[str]:
    """Backends the plan updates or deletes that were read from a listing (no ETag to guard the
    write with): re-read them with :func:`refresh_backends` before applying."""
    have = {b.spec.backend_id.lower(): b for b in actual.backends}
    return sorted({c.id for c in plan.changes if c.kind == "backend"
                   and c.action in (Action.UPDATE, Action.DELETE)
                   and c.id.lower() in have and have[c.id.lower()].etag is None})


def refresh_backends(arm: AzureArm, apim: ApimRef, ref: AccountRef, actual: Actual,
                     ids: Iterable[str]) -> Actual:
    fresh = {i.lower(): _own_backend(arm.get_backend(apim, i), ref) for i in ids}
    kept = [b for b in actual.backends if b.spec.backend_id.lower() not in fresh]
    return replace(actual, backends=tuple(kept + [b for b in fresh.values() if b is not None]))


def read_owned(arm: AzureArm, apim: ApimRef, ref: AccountRef, principal_id: str | None,
               prefetched: Prefetch | None = None) -> Actual:
    """Everything this importer made for ``ref`` (for offboarding), whatever the options were,
    including the probe key's subscription. Reads already in flight (``prefetched``) are used:
    then role assignments are those of every principal at the scope (the plan deletes only the
    ones carrying our mark) and APIM's principal is not needed."""
    pf = prefetched or Prefetch()
    aid = api_id(ref)
    api = _own_api(pf.api.result() if pf.api else arm.get_api(apim, aid, operations=False), ref)
    sub = arm.get_subscription(apim, probe_subscription_id(ref))
    if sub is not None:
        sub = replace(sub, owned=owns_subscription(sub.spec, ref))
    ids = [backend_id(ref, role) for role in BACKEND_ROLES]
    if pf.backends is not None:  # listed, no ETags: the caller re-reads what it will delete
        named = {b.spec.backend_id.lower(): b for b in pf.backends.result()}
        found = [named.get(i.lower()) for i in ids]
    else:
        found = [arm.get_backend(apim, i) for i in ids]
    backends = tuple(b for b in (_own_backend(x, ref) for x in found) if b is not None)
    roles: tuple[RoleAssignmentSpec, ...] = ()
    try:
        if pf.roles is not None:
            roles = pf.roles.result()
        elif principal_id:
            roles = arm.list_role_assignments(ref.id, ref.subscription, principal_id)
    except NotFound:
        roles = ()  # the account (the scope) is gone, and its assignments with it
    return Actual(api=api, backends=backends, role_assignments=roles, subscription=sub)
