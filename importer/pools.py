"""Pools: every account's deployments → one backend pool per (mode, deployment name) and one unified
API per mode in use, and the plan that makes APIM hold them (docs/pools.md).

Pure. No I/O. Output sorted. Pools are shared by many accounts, so they carry the shared pool mark
(never one account's mark) and only objects carrying it are changed or deleted; the per-account ids,
marks and policy come from render.py and are reused here, never re-derived.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import reduce
from typing import Any

from lxml import etree

from importer import openapi, policyxml
from importer.identity import backend_id, last_line
from importer.model import (
    OWNER_MARK,
    Account,
    Action,
    ActualApi,
    ApiSpec,
    Change,
    ChangeSet,
    InvalidInput,
    Kind,
    Mode,
    Options,
    PolicySpec,
    modes_for_kind,
)
from importer.options import check_base_path
from importer.plan import api_diff, policy_differs
from importer.render import (
    BEARER_MODES,
    REQUESTED_VARIABLE,
    bundled_document,
    render_policy,
    routable_deployments,
)

# Lower priority value = tried first (APIM); provisioned throughput before pay-as-you-go.
PROVISIONED_SKUS = ("ProvisionedManaged", "GlobalProvisionedManaged", "DataZoneProvisionedManaged")
PROVISIONED_PRIORITY = 1
STANDARD_PRIORITY = 2
# APIM's documented limits: at most 30 backends in a pool; priority and weight each 0..100.
MAX_MEMBERS = 30
MAX_WEIGHT = 100
# How often the unified API's policy retries a 429/503 on the next member (bounded; body buffered).
MAX_RETRIES = 3
MAX_ID = 80

POOL_MARK = f"[{OWNER_MARK} shared=pools]"
POOL_VARIABLE = "ai-pool-backends"
RETRY_CONDITION = "@(context.Response.StatusCode == 429 || context.Response.StatusCode == 503)"
# Fixed expression: the pool of the requested deployment, looked up in the literal map
# ``|name=pool-id|…|`` (data stays in a literal attribute); a request that names no deployment goes
# to the first pool of the map.
POOL_EXPRESSION = (
    f'@{{ string d = context.Variables.GetValueOrDefault<string>("{REQUESTED_VARIABLE}", ""); '
    f'string m = context.Variables.GetValueOrDefault<string>("{POOL_VARIABLE}", "|"); '
    'int i = d.Length == 0 ? -1 : m.IndexOf("|" + d + "="); '
    'if (i < 0) { i = 0; d = m.Substring(1, m.IndexOf("=") - 1); } '
    'int s = i + d.Length + 2; return m.Substring(s, m.IndexOf("|", s) - s); }')
_PLACEHOLDER = "ai-pool-placeholder"
_MODE_KEY = {Mode.AZURE_OPENAI: "openai", Mode.AZURE_OPENAI_V1: "openai-v1", Mode.AZURE_AI: "models"}


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class PoolMember:
    backend_id: str  # the account's own backend (identity.backend_id)
    account: str  # account id
    priority: int
    weight: int
    sku: str = ""
    capacity: int | None = None


@dataclass(frozen=True)
class PoolSpec:
    backend_id: str
    mode: Mode
    deployment: str  # lower-cased deployment name
    model: str
    members: tuple[PoolMember, ...]  # sorted: priority, then weight (highest first), then id
    description: str

    def membership(self) -> tuple[tuple[str, int, int], ...]:
        """(member backend id lower-cased, priority, weight), sorted: what APIM stores."""
        return tuple(sorted((m.backend_id.lower(), m.priority, m.weight) for m in self.members))


@dataclass(frozen=True)
class ActualPool:
    backend_id: str
    members: tuple[tuple[str, int, int], ...]  # as PoolSpec.membership(); ids are trailing names
    description: str
    etag: str | None = None
    owned: bool = False
    is_pool: bool = True


@dataclass(frozen=True)
class Source:
    """One account the pools draw on: its truth, its resolved options, whether it is imported."""

    account: Account
    options: Options


@dataclass(frozen=True)
class Left:
    """A member left out of a pool, and why (plan notes, ``explain``)."""

    mode: Mode
    deployment: str
    account: str
    reason: str

    def text(self) -> str:
        return f"{self.mode.value} pool {self.deployment}: account {self.account} left out: {self.reason}"


@dataclass(frozen=True)
class DesiredPools:
    pools: tuple[PoolSpec, ...] = ()
    apis: tuple[ApiSpec, ...] = ()
    policies: tuple[PolicySpec, ...] = ()
    left: tuple[Left, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActualPools:
    pools: tuple[ActualPool, ...] = ()
    apis: tuple[ActualApi, ...] = ()  # the unified APIs' ids that exist (ours or not)
    policies: Mapping[str, tuple[PolicySpec | None, str | None]] | None = None
    path_clashes: Mapping[str, str] | None = None  # unified API id → id of a foreign API on its path
    member_backends: frozenset[str] = frozenset()  # lower-cased ids of per-account backends that exist


@dataclass(frozen=True)
class PoolPlan(ChangeSet):
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"changes": [c.to_json() for c in self.changes], "notes": list(self.notes)}


# ---------------------------------------------------------------------------------------------
# Identities and the mark


def owns(description: str | None) -> bool:
    """The shared pool mark on the description's final line."""
    return last_line(description) == POOL_MARK


def marked(text: str) -> str:
    return f"{text.rstrip()}\n{POOL_MARK}"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def pool_id(mode: Mode, deployment: str) -> str:
    """``ai-pool-{mode}-{deployment}-{8 hex}``: letters, digits, hyphens, at most 80."""
    key = _MODE_KEY[Mode(mode)]
    name = deployment.lower()
    suffix = _hash(f"{Mode(mode).value}|{name}")
    budget = MAX_ID - len(f"ai-pool-{key}--") - len(suffix)
    stem = re.sub(r"[^a-z0-9-]", "-", name)[:budget]
    return f"ai-pool-{key}-{stem}-{suffix}"


def unified_api_id(mode: Mode) -> str:
    return f"ai-pool-{_MODE_KEY[Mode(mode)]}"


def check_pool_path(value: str) -> str:
    if "{" in value:
        raise InvalidInput(f"IMPORTER_POOL_PATH={value!r}: expected a fixed path ('{{account}}' has no "
                           "meaning for the unified API)")
    return check_base_path(value, "IMPORTER_POOL_PATH")


# ---------------------------------------------------------------------------------------------
# Render


def provisioned(sku: str) -> bool:
    return sku.lower() in {s.lower() for s in PROVISIONED_SKUS}


def weights(capacities: Iterable[int | None]) -> list[int]:
    """Weights proportional to capacity, in 1..100: reduced by their common divisor, scaled down to
    100 when larger. A capacity missing or below 1 counts as 1."""
    caps = [c if isinstance(c, int) and c > 0 else 1 for c in capacities]
    if not caps:
        return []
    g = reduce(math.gcd, caps)
    caps = [c // g for c in caps]
    top = max(caps)
    if top <= MAX_WEIGHT:
        return caps
    return [max(1, round(c * MAX_WEIGHT / top)) for c in caps]


def _pool_options(options: Options) -> tuple[Options, tuple[str, ...]]:
    """The unified API's optional policies: the settings' defaults, less what needs one account's own
    backend (semantic caching's embeddings, content safety)."""
    notes: list[str] = []
    if options.semantic_cache is not None:
        notes.append("semantic caching is not applied on the unified APIs (its embeddings backend "
                     "belongs to one account)")
    if options.content_safety is not None:
        notes.append("content safety is not applied on the unified APIs (its backend belongs to one "
                     "account)")
    return replace(options, semantic_cache=None, content_safety=None), tuple(notes)


def pool_policy(mode: Mode, options: Options, pools: Iterable[PoolSpec]) -> str:
    """The per-account policy (same allow-list, key check and optional policies, render_policy),
    routed to the requested deployment's pool and retrying a 429/503 on the next member."""
    pools = sorted(pools, key=lambda p: p.deployment)
    xml = render_policy(mode, options, backend=_PLACEHOLDER, deployments=[p.deployment for p in pools])
    root = policyxml.parse(xml)
    inbound = root.find("inbound")
    target = next(el for el in inbound.iter("set-backend-service"))
    target.set("backend-id", POOL_EXPRESSION)
    mapping = etree.Element("set-variable")
    mapping.set("name", POOL_VARIABLE)
    mapping.set("value", "|" + "".join(f"{p.deployment}={p.backend_id}|" for p in pools))
    target.addprevious(mapping)
    backend = root.find("backend")
    for child in list(backend):
        backend.remove(child)
    largest = max((len(p.members) for p in pools), default=1)
    retry = etree.SubElement(backend, "retry")
    for name, value in (("condition", RETRY_CONDITION), ("count", str(max(1, min(MAX_RETRIES, largest - 1)))),
                        ("interval", "0"), ("first-fast-retry", "true")):
        retry.set(name, value)
    etree.SubElement(retry, "forward-request").set("buffer-request-body", "true")
    etree.indent(root, space="    ")
    return str(etree.tostring(root, encoding="unicode"))


def _supports(account: Account, mode: Mode) -> bool:
    return mode in (modes_for_kind(account.kind) or ())


def _members(mode: Mode, name: str, entries: list[tuple[Source, Any]],
             available: frozenset[str] | None) -> tuple[list[PoolMember], str, list[Left]]:
    left: list[Left] = []
    present: list[tuple[Source, Any]] = []
    for src, dep in entries:
        bid = backend_id(src.account.ref, "main", mode)  # the account's own route in this mode
        if available is not None and bid.lower() not in available:
            left.append(Left(mode, name, src.account.ref.name, "its backend does not exist yet (the "
                                                               "account's own run has not made it)"))
            continue
        present.append((src, dep))
    # One model per pool: the model most members serve (ties: most capacity, then name).
    tally: dict[str, tuple[int, int]] = {}
    for _, dep in present:
        count, cap = tally.get(dep.model_name.lower(), (0, 0))
        tally[dep.model_name.lower()] = (count + 1, cap + (dep.capacity or 0))
    model = min(tally, key=lambda m: (-tally[m][0], -tally[m][1], m)) if tally else ""
    chosen: list[tuple[Source, Any]] = []
    for src, dep in present:
        if dep.model_name.lower() != model:
            left.append(Left(mode, name, src.account.ref.name,
                             f"it serves model {dep.model_name!r} under this name; the pool serves "
                             f"{model!r} (different models are never pooled)"))
        else:
            chosen.append((src, dep))
    chosen.sort(key=lambda e: (STANDARD_PRIORITY if not provisioned(e[1].sku) else PROVISIONED_PRIORITY,
                               -(e[1].capacity or 0), e[0].account.ref.key))
    for src, _dep in chosen[MAX_MEMBERS:]:
        left.append(Left(mode, name, src.account.ref.name,
                         f"APIM allows at most {MAX_MEMBERS} backends in a pool; the pool keeps the "
                         "highest priority and capacity"))
    chosen = chosen[:MAX_MEMBERS]
    members: list[PoolMember] = []
    for priority in (PROVISIONED_PRIORITY, STANDARD_PRIORITY):
        group = [e for e in chosen if (PROVISIONED_PRIORITY if provisioned(e[1].sku)
                                       else STANDARD_PRIORITY) == priority]
        for (src, dep), weight in zip(group, weights(d.capacity for _, d in group), strict=True):
            members.append(PoolMember(backend_id(src.account.ref, "main", mode), src.account.ref.id,
                                      priority, weight,
                                      dep.sku, dep.capacity))
    return members, model, left


def render_pools(path: str, sources: Iterable[Source], defaults: Options,
                 available: frozenset[str] | None = None) -> DesiredPools:
    """Pools and unified APIs for ``sources`` (the enabled accounts in scope, options resolved).
    ``available``: lower-cased ids of the per-account backends that exist; a member whose backend is
    missing is left out (None: assume all exist, for ``explain``)."""
    root = check_pool_path(path)
    served: dict[tuple[Mode, str], list[tuple[Source, Any]]] = {}
    for src in sorted(sources, key=lambda s: s.account.ref.key):
        if not src.options.enabled:
            continue
        for mode in (Mode(m) for m in src.options.modes):  # each mode the account is imported in
            if not _supports(src.account, mode):
                continue
            for dep in routable_deployments(src.account):
                served.setdefault((mode, dep.name.lower()), []).append((src, dep))
    options, notes = _pool_options(defaults)
    pools: list[PoolSpec] = []
    left: list[Left] = []
    for (mode, name), entries in sorted(served.items(), key=lambda kv: (kv[0][0].value, kv[0][1])):
        members, model, out = _members(mode, name, entries, available)
        left += out
        if not members:
            continue
        pools.append(PoolSpec(
            backend_id=pool_id(mode, name), mode=mode, deployment=name, model=model,
            members=tuple(members),
            description=marked(f"Pool of deployment {name} ({model}, {mode.value}) over "
                               f"{len(members)} account(s), kept by apim-ai-importer.")))
    apis: list[ApiSpec] = []
    policies: list[PolicySpec] = []
    for mode in sorted({p.mode for p in pools}, key=lambda m: m.value):
        in_mode = [p for p in pools if p.mode is mode]
        aid = unified_api_id(mode)
        title = f"AI models, all accounts ({mode.value})"
        description = marked(f"One endpoint per model over every account that serves it "
                             f"({mode.value} mode), kept by apim-ai-importer.")
        apis.append(ApiSpec(
            api_id=aid, display_name=title, description=description,
            path=f"{root}/{mode.suffix}", service_url=None,
            # The document carries the title and the marked description: an import keeps those.
            import_format="openapi+json", import_value=bundled_document(mode, title, description),
            operations=openapi.operations(openapi.document(mode)), imported_description=description,
            key_bearer=mode in BEARER_MODES))  # the same key names as the per-account APIs
        policies.append(PolicySpec(aid, pool_policy(mode, replace(options, modes=(mode,)), in_mode)))
    return DesiredPools(tuple(pools), tuple(apis), tuple(policies), tuple(left), notes)


# ---------------------------------------------------------------------------------------------
# Plan


def _member_lines(have: Iterable[tuple[str, int, int]], want: Iterable[tuple[str, int, int]]) -> list[str]:
    old = {m[0]: m for m in have}
    new = {m[0]: m for m in want}
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            out.append(f"+ member {key}: priority {new[key][1]}, weight {new[key][2]}")
        elif key not in new:
            out.append(f"- member {key}: priority {old[key][1]}, weight {old[key][2]}")
        elif old[key] != new[key]:
            out.append(f"~ member {key}: priority {old[key][1]} → {new[key][1]}, "
                       f"weight {old[key][2]} → {new[key][2]}")
    return out


def _pool_change(want: PoolSpec, have: ActualPool | None) -> Change | None:
    lines = _member_lines(() if have is None else have.members, want.membership())
    if have is None:
        return Change(Action.CREATE, Kind.POOL, want.backend_id, reason="pool missing",
                      diff=tuple(lines), after=want)
    if not have.owned or not have.is_pool:
        return Change(Action.CONFLICT, Kind.POOL, want.backend_id,
                      reason=f"a backend with id '{want.backend_id}' exists without the pool "
                             "mark: remove it to let the importer keep this pool",
                      before=have, after=want, etag=have.etag)
    if lines or _desc(have.description) != _desc(want.description):
        return Change(Action.UPDATE, Kind.POOL, want.backend_id, reason="pool membership changed",
                      diff=tuple(lines) or ("description",), before=have, after=want, etag=have.etag)
    return None


def _pool_changes(desired: DesiredPools, actual: ActualPools) -> list[Change]:
    have_pools = {p.backend_id.lower(): p for p in actual.pools}
    changes = [c for want in desired.pools
               if (c := _pool_change(want, have_pools.get(want.backend_id.lower())))]
    wanted_pools = {p.backend_id.lower() for p in desired.pools}
    changes += [Change(Action.DELETE, Kind.POOL, have.backend_id, reason="pool empty",
                       diff=tuple(_member_lines(have.members, ())), before=have, etag=have.etag)
                for key, have in sorted(have_pools.items()) if key not in wanted_pools and have.owned]
    return changes


def _api_blocker(api: ApiSpec, have_api: ActualApi | None, clash: str | None) -> Change | None:
    """A foreign object in the way of a unified API: its path or its id is taken."""
    if clash and clash.lower() != api.api_id.lower():
        return Change(Action.CONFLICT, Kind.API, api.api_id,
                      reason=f"path '{api.path}' is already served by API '{clash}': change "
                             "IMPORTER_POOL_PATH or move that API", after=api)
    if have_api is not None and not owns(have_api.spec.description):
        return Change(Action.CONFLICT, Kind.API, api.api_id,
                      reason=f"an API with id '{api.api_id}' exists without the pool mark: "
                             "remove it to let the importer keep the unified API",
                      before=have_api.spec, after=api, etag=have_api.etag)
    return None


def _api_change(api: ApiSpec, have_api: ActualApi | None) -> Change | None:
    if have_api is None:
        return Change(Action.CREATE, Kind.API, api.api_id, reason="unified API missing",
                      diff=(f"path: {api.path}", f"operations: {len(api.operations)}"), after=api)
    api_lines = api_diff(have_api.spec, api)
    if api_lines:
        return Change(Action.UPDATE, Kind.API, api.api_id, reason="unified API drifted",
                      diff=api_lines, before=have_api.spec, after=api, etag=have_api.etag)
    return None


def _policy_change(api: ApiSpec, policy: PolicySpec,
                   stored: tuple[PolicySpec | None, str | None]) -> Change | None:
    old, etag = stored
    if old is None:
        return Change(Action.CREATE, Kind.POLICY, api.api_id, reason="policy missing",
                      diff=policyxml.diff_lines(None, policy.xml), after=policy)
    if policy_differs(old.xml, policy.xml):
        return Change(Action.UPDATE, Kind.POLICY, api.api_id, reason="policy drifted",
                      diff=policyxml.diff_lines(old.xml, policy.xml), before=old, after=policy, etag=etag)
    return None


def _api_changes(desired: DesiredPools, actual: ActualPools) -> list[Change]:
    have_apis = {a.spec.api_id.lower(): a for a in actual.apis}
    policies = {p.api_id.lower(): p for p in desired.policies}
    clashes = {k.lower(): v for k, v in (actual.path_clashes or {}).items()}
    stored = {k.lower(): v for k, v in (actual.policies or {}).items()}
    changes: list[Change] = []
    for api in desired.apis:
        key = api.api_id.lower()
        have_api = have_apis.get(key)
        blocker = _api_blocker(api, have_api, clashes.get(key))
        if blocker is not None:
            changes.append(blocker)
            continue
        found = stored.get(key, (None, None)) if have_api is not None else (None, None)
        changes += [c for c in (_api_change(api, have_api), _policy_change(api, policies[key], found)) if c]
    wanted_apis = {a.api_id.lower() for a in desired.apis}
    changes += [Change(Action.DELETE, Kind.API, have_api.spec.api_id, reason="unified API unused",
                       diff=(f"path: {have_api.spec.path}",), before=have_api.spec, etag=have_api.etag)
                for key, have_api in sorted(have_apis.items())
                if key not in wanted_apis and owns(have_api.spec.description)]
    return changes


def plan_pools(desired: DesiredPools, actual: ActualPools) -> PoolPlan:
    """Changes that make APIM hold ``desired``; owned pools and unified APIs no longer wanted are
    deleted. A foreign object under one of our ids or paths is a CONFLICT, never written, and then
    the plan holds only the conflicts (the unified policy would route to what we do not own)."""
    changes = _pool_changes(desired, actual) + _api_changes(desired, actual)
    notes = tuple(desired.notes) + tuple(x.text() for x in desired.left)
    conflicts = [c for c in changes if c.action is Action.CONFLICT]
    if conflicts:  # as for an account: a foreign object in the way stops the plan (zero writes)
        return PoolPlan(tuple(sorted(conflicts, key=_order)), notes)
    return PoolPlan(tuple(sorted(changes, key=_order)), notes)


def _desc(value: str | None) -> str:
    """Descriptions compare modulo line ends and surrounding blanks (APIM may store CRLF)."""
    return "\n".join(line.rstrip() for line in (value or "").replace("\r\n", "\n").split("\n")).strip()


_CREATE = {Kind.POOL: 0, Kind.API: 1, Kind.POLICY: 2}
_DELETE = {Kind.API: 3, Kind.POOL: 4}


def _order(change: Change) -> tuple[int, str]:
    table = _DELETE if change.action is Action.DELETE else _CREATE
    return (table.get(change.kind, 5), change.id)


def waves(plan: PoolPlan) -> list[list[Change]]:
    """Pools before the API that routes to them, its policy after the API; deletes: the API first,
    then the pools (a pool may not go while something routes to it)."""
    out: dict[int, list[Change]] = {}
    for change in plan.writes:
        out.setdefault(_order(change)[0], []).append(change)
    return [out[k] for k in sorted(out)]
