"""Discover: read the actual state of one account's APIM objects through the ARM adapter.

Reads only the account's objects (their ids share its prefix: one listing each for APIs and
backends), so a no-op reconcile is a fixed, small number of GETs. Ownership is decided here, by
importer/identity.py's rule: an object is ours only if its id is one of the account's and its mark
names the account (and, on role assignments, this APIM instance).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

from importer.azure.arm import AzureArm
from importer.identity import (
    FEATURE_SUFFIX,
    account_prefix,
    api_id,
    backend_id,
    is_owned_id,
    mode_of_api,
    owned_account,
    owns_object,
    owns_role,
    owns_subscription,
    probe_subscription_id,
)
from importer.model import (
    AccountRef,
    Action,
    Actual,
    ActualApi,
    ActualBackend,
    ActualPolicy,
    ApimRef,
    ApiSpec,
    BackendSpec,
    Desired,
    DiagnosticSpec,
    Mode,
    NotFound,
    Plan,
    PolicySpec,
    ProductLinkSpec,
    RoleAssignmentSpec,
)
from importer.render import DIAGNOSTIC_AZURE_MONITOR, LLM_LOGGING_NOTE


def _own_api(api: ActualApi, ref: AccountRef, apim: ApimRef) -> ActualApi:
    return replace(api, owned=owns_object(api.spec.api_id, api.spec.description, ref, apim))


def _own_backend(b: ActualBackend | None, ref: AccountRef, apim: ApimRef) -> ActualBackend | None:
    return None if b is None else replace(
        b, owned=owns_object(b.spec.backend_id, b.spec.description, ref, apim))


def _account_ids(ref: AccountRef) -> tuple[list[str], list[str]]:
    """(every API id, every backend id) the account may own: one per mode, plus the features'."""
    apis = [api_id(ref, m) for m in Mode]
    return apis, apis + [backend_id(ref, role) for role in FEATURE_SUFFIX]


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


def owns_anything(snapshot: Snapshot, ref: AccountRef, apim: ApimRef) -> bool:
    """Whether the pass's listings show an object of ours for ``ref`` (an API, a backend, APIM's
    role assignment on the account), or can't tell (its subscription's assignments not listed)."""
    if ref.subscription.lower() not in snapshot.role_subscriptions:
        return True
    apis, backends = _account_ids(ref)
    for aid in apis:
        api = snapshot.apis.get(aid.lower())
        if api is not None and owns_object(aid, api.description, ref, apim):
            return True
    for bid in backends:
        backend = snapshot.backends.get(bid.lower())
        if backend is not None and owns_object(bid, backend.description, ref, apim):
            return True
    return any(owns_role(r.scope, r.description, r.principal_id, ref, apim, snapshot.principal_id)
               for r in snapshot.roles.get(ref.id.lower(), ()))


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


def path_clash(others: Iterable[ApiSpec], api: ApiSpec) -> ApiSpec | None:
    """Another API already on ``api``'s path."""
    path = api.path.strip("/").lower()
    for other in others:
        if other.path.strip("/").lower() == path and other.api_id.lower() != api.api_id.lower():
            return other
    return None


def roles_of(scope_roles: Iterable[RoleAssignmentSpec], desired: Desired) -> tuple[RoleAssignmentSpec, ...]:
    """The assignments of ``desired``'s principal among those listed at the account's scope."""
    if not desired.role_assignments:
        return ()
    principal = desired.role_assignments[0].principal_id.lower()
    return tuple(r for r in scope_roles if r.principal_id.lower() == principal)


@dataclass(frozen=True)
class Prefetch:
    """Reads of one account's objects sent together, before the desired state is known: every id
    follows from the account id (and the modes guessed from the settings). A field left None, or an
    API missing from a mapping, is read (in turn) when it is needed."""

    mine: Future[list[ApiSpec]] | None = None  # the account's APIs (prefix listing, no operations)
    operations: Mapping[str, Future[tuple[tuple[str, str], ...]]] = field(default_factory=dict)
    policy: Mapping[str, Future[tuple[PolicySpec | None, str | None]]] = field(default_factory=dict)
    backends: Future[list[ActualBackend]] | None = None  # every backend named with the account prefix
    links: Mapping[str, Future[tuple[ProductLinkSpec, ...]]] = field(default_factory=dict)
    roles: Future[tuple[RoleAssignmentSpec, ...]] | None = None  # at the account's scope
    apis: Future[list[ApiSpec]] | None = None  # every API: a path clash, when ours is absent


def operations(arm: AzureArm, apim: ApimRef, aid: str) -> tuple[tuple[str, str], ...]:
    try:
        return arm.list_operations(apim, aid)
    except NotFound:  # no API (yet)
        return ()


def prefetch(arm: AzureArm, apim: ApimRef, ref: AccountRef, *, modes: Iterable[Mode] = (Mode.AZURE_OPENAI,),
             snapshot: Snapshot | None = None, links: bool = False, roles: bool = False,
             principal: str | None = None) -> Prefetch:
    """Send the reads of ``ref``'s objects at once: its APIs and backends (one listing each), and the
    operations and policy (and product links, with ``links``) of the APIs of ``modes``, the likely
    ones. With a ``snapshot`` only what it can't hold (operations, policy) is read, and only for an
    API it lists. ``roles``: the assignments at the account's scope, of ``principal`` if known, else
    of every principal (to find our own)."""
    ids = [api_id(ref, m) for m in modes]
    if snapshot is not None:
        ids = [aid for aid in ids if aid.lower() in snapshot.apis]
        return Prefetch(operations={a: arm.submit(operations, arm, apim, a) for a in ids},
                        policy={a: arm.submit(arm.get_policy, apim, a) for a in ids})
    role_read: Future[tuple[RoleAssignmentSpec, ...]] | None = None
    if roles:
        role_read = arm.submit(arm.list_role_assignments, ref.id, ref.subscription, principal)
    prefix = account_prefix(ref)
    return Prefetch(mine=arm.submit(arm.list_apis_named, apim, prefix),
                    operations={a: arm.submit(operations, arm, apim, a) for a in ids},
                    policy={a: arm.submit(arm.get_policy, apim, a) for a in ids},
                    backends=arm.submit(arm.list_backends_named, apim, prefix),
                    links={a: arm.submit(arm.list_product_links, apim, a) for a in ids} if links else {},
                    roles=role_read)


def _listed_apis(arm: AzureArm, apim: ApimRef, ref: AccountRef, snapshot: Snapshot | None,
                 pf: Prefetch) -> list[ApiSpec]:
    """The account's APIs: those whose id is one of its mode ids (a longer name that only shares
    the prefix is another account's)."""
    if snapshot is not None:
        found = [snapshot.apis.get(aid.lower()) for aid in _account_ids(ref)[0]]
        return [a for a in found if a is not None]
    listed = pf.mine.result() if pf.mine else arm.list_apis_named(apim, account_prefix(ref))
    return [a for a in listed if mode_of_api(ref, a.api_id) is not None]


def read_actual(arm: AzureArm, apim: ApimRef, desired: Desired, snapshot: Snapshot | None = None,
                *, paths_from: Snapshot | None = None, prefetched: Prefetch | None = None) -> Actual:
    """Actual state for ``desired``'s account: its APIs (+operations, for the desired ones),
    policies, backends, links, roles.

    Listings carry no ETags: a write decided on them re-reads its object first (:func:`unguarded`).
    With a ``snapshot``, listed objects are taken from it; without, each is read, or taken from
    ``prefetched`` (reads already in flight)."""
    ref = desired.account
    pf = prefetched or Prefetch()
    listed = _listed_apis(arm, apim, ref, snapshot, pf)
    present = {a.api_id.lower() for a in listed}
    apis = _with_operations(arm, apim, desired, listed, pf)
    clashes, clash_owners = _clashes(arm, apim, desired, present, snapshot or paths_from, pf)
    policies, links = _policies_and_links(arm, apim, desired, present, snapshot, pf)
    backends = _backends(arm, apim, ref, snapshot, pf)
    roles = _account_roles(arm, desired, snapshot, pf) + _other_scope_roles(arm, desired, snapshot)
    diagnostics: list[DiagnosticSpec] = []
    if _needs_diagnostics(desired, backends):
        for api in desired.apis:
            if api.api_id.lower() in present:
                diagnostics += arm.list_diagnostics(apim, api.api_id)
    return Actual(apis=apis, path_clashes=tuple(clashes), path_clash_owners=tuple(clash_owners),
                  backends=backends, policies=tuple(policies), product_links=tuple(links),
                  role_assignments=roles, diagnostics=tuple(diagnostics))


def _with_operations(arm: AzureArm, apim: ApimRef, desired: Desired, listed: list[ApiSpec],
                     pf: Prefetch) -> tuple[ActualApi, ...]:
    """The listed APIs, with the operations of the desired ones (an API about to be deleted needs
    none): those not prefetched are read together."""
    wanted_ids = {a.api_id.lower() for a in desired.apis}
    reads = {a.api_id: pf.operations.get(a.api_id) or arm.submit(operations, arm, apim, a.api_id)
             for a in listed if a.api_id.lower() in wanted_ids}
    return tuple(_own_api(ActualApi(spec=replace(
        a, operations=reads[a.api_id].result() if a.api_id in reads else ())), desired.account, apim)
        for a in listed)


def _clashes(arm: AzureArm, apim: ApimRef, desired: Desired, present: set[str],
             listing: Snapshot | None, pf: Prefetch) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(our API, the other API on its path) and (the other API, its owner account), for the
    desired APIs that don't exist yet."""
    clashes: list[tuple[str, str]] = []
    clash_owners: list[tuple[str, str]] = []
    missing = [a for a in desired.apis if a.api_id.lower() not in present]
    if not missing:
        return clashes, clash_owners
    # Only when we are about to create: is the path taken by someone else's API?
    # A fleet pass checks against its listing (``paths_from``) rather than listing every API
    # again for each new account; APIM itself refuses a duplicate path at PUT time anyway.
    others = list(listing.apis.values() if listing else pf.apis.result() if pf.apis
                  else arm.list_apis(apim))
    for a in missing:
        other = path_clash(others, a)
        if other is not None:
            clashes.append((a.api_id, other.api_id))
            if (owner := owned_account(other.description, apim)) is not None:
                clash_owners.append((other.api_id, owner))
    return clashes, clash_owners


def _policies_and_links(arm: AzureArm, apim: ApimRef, desired: Desired, present: set[str],
                        snapshot: Snapshot | None,
                        pf: Prefetch) -> tuple[list[ActualPolicy], list[ProductLinkSpec]]:
    """The policies and product links of the desired APIs that exist."""
    policies: list[ActualPolicy] = []
    links: list[ProductLinkSpec] = []
    wanted_products = {link.product_id for link in desired.product_links}
    for api in desired.apis:
        aid = api.api_id
        if aid.lower() not in present:
            continue
        got = pf.policy.get(aid)
        policy, etag = got.result() if got else arm.get_policy(apim, aid)
        if policy is not None:
            policies.append(ActualPolicy(policy, etag))
        if snapshot is not None and wanted_products <= set(snapshot.product_apis):
            links += [ProductLinkSpec(product_id=p, api_id=aid) for p in sorted(wanted_products)
                      if aid.lower() in snapshot.product_apis[p]]
        elif wanted_products:
            read = pf.links.get(aid)
            links += read.result() if read else arm.list_product_links(apim, aid)
    return policies, links


def _backends(arm: AzureArm, apim: ApimRef, ref: AccountRef, snapshot: Snapshot | None,
              pf: Prefetch) -> tuple[ActualBackend, ...]:
    found: list[ActualBackend | None] = []
    if snapshot is not None:
        for bid in _account_ids(ref)[1]:
            spec = snapshot.backends.get(bid.lower())
            found.append(None if spec is None else ActualBackend(spec=spec))
    else:
        # One listing finds every backend of the account: ids share its prefix.
        found = [b for b in (pf.backends.result() if pf.backends else
                             arm.list_backends_named(apim, account_prefix(ref)))
                 if is_owned_id(ref, b.spec.backend_id)]
    return tuple(b for b in (_own_backend(x, ref, apim) for x in found) if b is not None)


def _account_roles(arm: AzureArm, desired: Desired, snapshot: Snapshot | None,
                   pf: Prefetch) -> tuple[RoleAssignmentSpec, ...]:
    """APIM's assignments at the account's scope: prefetched, from the pass's listing when it
    covers the account's subscription for this principal, else one read."""
    ref = desired.account
    if pf.roles is not None:
        return roles_of(pf.roles.result(), desired)
    if not desired.role_assignments:
        return ()
    principal = desired.role_assignments[0].principal_id
    if (snapshot is not None and snapshot.principal_id == principal
            and ref.subscription.lower() in snapshot.role_subscriptions):
        return snapshot.roles.get(ref.id.lower(), ())
    return arm.list_role_assignments(ref.id, ref.subscription, principal)


def _needs_diagnostics(desired: Desired, backends: Iterable[ActualBackend]) -> bool:
    """Whether the run must look at the APIs' diagnostics: the options ask for one, or LLM logging
    is off now and one of the account's backends records that it was on (so it is turned off)."""
    for d in desired.diagnostics:
        if d.name != DIAGNOSTIC_AZURE_MONITOR or d.llm_logging:
            return True
    return any(LLM_LOGGING_NOTE in b.spec.description for b in backends)


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


def unguarded(actual: Actual, plan: Plan) -> list[tuple[str, str]]:
    """(kind, id) of the APIs and backends the plan updates or deletes that were read from a listing
    (no ETag to guard the write with): re-read them with :func:`refresh` before applying."""
    have = {("api", a.spec.api_id.lower()): a.etag for a in actual.apis}
    have.update({("backend", b.spec.backend_id.lower()): b.etag for b in actual.backends})
    return sorted({(c.kind, c.id) for c in plan.changes if c.kind in ("api", "backend")
                   and c.action in (Action.UPDATE, Action.DELETE)
                   and (c.kind, c.id.lower()) in have and have[(c.kind, c.id.lower())] is None})


def refresh(arm: AzureArm, apim: ApimRef, ref: AccountRef, actual: Actual,
            stale: Iterable[tuple[str, str]]) -> Actual:
    """``actual`` with the ``stale`` APIs and backends read again, one by one, with their ETags (an
    API keeps the operations already read)."""
    stale = list(stale)
    backend_ids = [i for k, i in stale if k == "backend"]
    api_ids = {i.lower() for k, i in stale if k == "api"}
    fresh = {i.lower(): _own_backend(arm.get_backend(apim, i), ref, apim) for i in backend_ids}
    kept = [b for b in actual.backends if b.spec.backend_id.lower() not in fresh]
    apis: list[ActualApi] = []
    for api in actual.apis:
        if api.spec.api_id.lower() not in api_ids:
            apis.append(api)
            continue
        got = arm.get_api(apim, api.spec.api_id, operations=False)
        if got is not None:
            apis.append(_own_api(replace(got, spec=replace(got.spec, operations=api.spec.operations)),
                                 ref, apim))
    return replace(actual, apis=tuple(apis),
                   backends=tuple(kept + [b for b in fresh.values() if b is not None]))


def read_owned(arm: AzureArm, apim: ApimRef, ref: AccountRef, principal_id: str | None,
               prefetched: Prefetch | None = None) -> Actual:
    """Everything this importer made for ``ref`` (for offboarding), whatever the options were,
    including the probe key's subscription. Reads already in flight (``prefetched``) are used:
    then role assignments are those of every principal at the scope (the plan deletes only the
    ones carrying our mark for this instance)."""
    pf = prefetched or Prefetch()
    apis = tuple(_own_api(ActualApi(spec=a), ref, apim) for a in _listed_apis(arm, apim, ref, None, pf))
    sub = arm.get_subscription(apim, probe_subscription_id(ref))
    if sub is not None:
        sub = replace(sub, owned=owns_subscription(sub.spec, ref))
    listed = pf.backends.result() if pf.backends else arm.list_backends_named(apim, account_prefix(ref))
    backends = tuple(b for b in (_own_backend(x, ref, apim) for x in listed
                                 if is_owned_id(ref, x.spec.backend_id)) if b is not None)
    roles: tuple[RoleAssignmentSpec, ...] = ()
    try:
        if pf.roles is not None:
            roles = pf.roles.result()
        elif principal_id:
            roles = arm.list_role_assignments(ref.id, ref.subscription, principal_id)
    except NotFound:
        roles = ()  # the account (the scope) is gone, and its assignments with it
    return Actual(apis=apis, backends=backends, role_assignments=roles, subscription=sub)
