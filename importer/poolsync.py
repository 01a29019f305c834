"""Pool reconcile: every enabled account in scope + the shared pool objects → render → plan → apply.

Level-triggered like an account's run, and run from it (an event for one account updates the pools
in the same run) and once per fleet pass. Pools are shared, so one owner at a time: a lock per APIM
service (the lease store's when there is one, and a process lock), every update and delete
ETag-guarded, and a write that finds its ETag moved re-reads and re-plans.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from importer import discover
from importer import pools as P
from importer.azure import pools as adapter
from importer.config import enabled, resolve_options
from importer.model import (
    Account,
    Action,
    ActualApi,
    ApiSpec,
    Change,
    ConflictError,
    ImporterError,
    InvalidInput,
    Kind,
    Mode,
    NotFound,
    PolicySpec,
    in_scopes,
)

if TYPE_CHECKING:
    from importer.reconcile import Reconciler

logger = logging.getLogger(__name__)

MAX_REPLANS = 3
REPLANNED = "pools re-planned"
SETTING = "IMPORTER_POOL_PATH"
_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def pool_path(rec: Reconciler) -> str:
    """The unified APIs' base path, or "" when pools are off."""
    return rec.settings.get(SETTING).strip().strip("/")


@dataclass
class PoolRun:
    plan: P.PoolPlan | None = None
    writes: int = 0
    applied: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    desired: P.DesiredPools | None = None

    def to_json(self) -> dict[str, Any]:
        return {"changes": [c.to_json() for c in self.plan.changes] if self.plan else [],
                "writes": self.writes, "notes": self.notes}


# ---------------------------------------------------------------------------------------------
# Reads


def read_sources(rec: Reconciler, notes: list[str] | None = None) -> list[P.Source]:
    """Every enabled account in the watched scopes with its deployments and resolved options (one
    paged listing per scope, then every account's deployments at once)."""
    arm, settings = rec.arm, rec.settings
    accounts: dict[str, Account] = {}
    for scope in rec.scopes:
        for acct in arm.list_accounts(scope):
            if in_scopes(acct.ref, rec.scopes):
                accounts[acct.ref.key] = acct
    chosen = [a for _, a in sorted(accounts.items()) if enabled(settings, a.tag_map, a.ref.name)]
    futures: list[tuple[Account, Future[Any]]] = [
        (a, arm.submit(arm.list_deployments, a.ref)) for a in chosen]
    out: list[P.Source] = []
    for acct, fut in futures:
        try:
            options = resolve_options(settings, acct.tag_map, None, account=acct.ref.name)
            deployments = fut.result()
        except InvalidInput as exc:
            if notes is not None:
                notes.append(f"account {acct.ref.name} left out of every pool: {exc}")
            continue
        except NotFound:  # deleted since the listing
            continue
        out.append(P.Source(replace(acct, deployments=deployments), options))
    return out


def _unified(rec: Reconciler, mode: Mode) -> Callable[[], tuple[ActualApi | None,
                                                             tuple[PolicySpec | None, str | None]]]:
    """Start reading a unified API, its operations and its policy together (their ids are known)."""
    arm, aid = rec.arm, P.unified_api_id(mode)
    api = arm.submit(arm.get_api, rec.apim, aid, operations=False)
    operations = arm.submit(discover.operations, arm, rec.apim, aid)
    policy = arm.submit(arm.get_policy, rec.apim, aid)

    def collect() -> tuple[ActualApi | None, tuple[PolicySpec | None, str | None]]:
        found = api.result()
        if found is None:
            return None, (None, None)
        return replace(found, spec=replace(found.spec, operations=operations.result())), policy.result()

    return collect


def read_actual(rec: Reconciler) -> Callable[[], tuple[P.ActualPools, list[ApiSpec]]]:
    """Start reading the backends (pools, and which member backends exist), the unified APIs with
    their policies and every API (for path clashes), all at once; the returned call collects them."""
    arm = rec.arm
    backends = arm.submit(adapter.list_backends, arm, rec.apim)
    apis = arm.submit(arm.list_apis, rec.apim)
    unified = {mode: _unified(rec, mode) for mode in Mode}
    return lambda: _collect(backends, apis, unified)


def _collect(backends: Future[tuple[list[P.ActualPool], frozenset[str]]], apis: Future[list[ApiSpec]],
             unified: dict[Mode, Callable[[], tuple[ActualApi | None, tuple[PolicySpec | None, str | None]]]],
             ) -> tuple[P.ActualPools, list[ApiSpec]]:
    listed, existing = backends.result()
    held: list[ActualApi] = []
    policies: dict[str, tuple[PolicySpec | None, str | None]] = {}
    for collect in unified.values():
        api, policy = collect()
        if api is not None:
            held.append(api)
            policies[api.spec.api_id] = policy
    pools = tuple(p for p in listed if p.backend_id.lower().startswith("ai-pool-") or (p.is_pool and p.owned))
    return (P.ActualPools(pools=pools, apis=tuple(held), policies=policies, member_backends=existing),
            apis.result())


def clashes_for(desired: P.DesiredPools, every: list[ApiSpec]) -> dict[str, str]:
    """Unified API id → the id of another API already serving its path."""
    return {api.api_id: other.api_id for api in desired.apis
            if (other := discover.path_clash(every, api)) is not None}


# ---------------------------------------------------------------------------------------------
# One pass


@contextmanager
def pool_lock(rec: Reconciler) -> Iterator[None]:
    """One owner of the pools at a time: this process's lock, then the lease store's (instances)."""
    key = f"{rec.apim.id.lower()}/pools"
    with _process_locks_guard:
        local = _process_locks.setdefault(key, threading.Lock())
    with local:
        if rec.locks is None:
            yield
        else:
            with rec.locks.hold(key, wait=True):
                yield


def plan_once(rec: Reconciler, run: PoolRun, assume: frozenset[str] = frozenset()) -> P.PoolPlan:
    """Read → render → plan. Pools the plan would update or delete are re-read with their ETags (the
    listing has none) and the plan is made again on what they hold now. ``assume``: member backends
    a dry run's account plan would create (lower-cased ids), counted as there."""
    notes: list[str] = []
    collect = read_actual(rec)  # in flight while the accounts are listed (tasks never submit tasks)
    sources = read_sources(rec, notes)
    actual, every = collect()
    defaults = resolve_options(rec.settings, {}, None, account="pools")
    desired = P.render_pools(pool_path(rec), sources, defaults, available=actual.member_backends | assume)
    actual = replace(actual, path_clashes=clashes_for(desired, every))
    plan = P.plan_pools(desired, actual)
    stale = [c.id for c in plan.changes if c.kind is Kind.POOL and c.action in (Action.UPDATE, Action.DELETE)]
    if stale:
        fresh = {pid.lower(): rec.arm.submit(adapter.get_pool, rec.arm, rec.apim, pid) for pid in stale}
        kept = [p for p in actual.pools if p.backend_id.lower() not in fresh]
        kept += [p for f in fresh.values() if (p := f.result()) is not None]
        actual = replace(actual, pools=tuple(kept))
        plan = P.plan_pools(desired, actual)
    run.desired = desired
    run.notes = [n for n in run.notes if n.startswith(REPLANNED)] + notes + list(plan.notes)
    return plan


def _write_pool(rec: Reconciler, change: Change) -> None:
    if change.action is Action.DELETE:
        rec.arm.delete_backend(rec.apim, change.id, change.etag)
    else:
        adapter.put_pool(rec.arm, rec.apim, change.spec(P.PoolSpec), change.etag)


def _write_api(rec: Reconciler, change: Change) -> None:
    if change.action is Action.DELETE:
        rec.arm.delete_api(rec.apim, change.id, change.etag)
    else:
        rec.arm.put_api(rec.apim, change.spec(ApiSpec), change.etag)


def _write_policy(rec: Reconciler, change: Change) -> None:
    rec.arm.put_policy(rec.apim, change.spec(PolicySpec), change.etag)


# Every kind a pool plan holds (plan_pools makes only these; tested).
WRITERS: dict[Kind, Callable[[Reconciler, Change], None]] = {
    Kind.POOL: _write_pool, Kind.API: _write_api, Kind.POLICY: _write_policy,
}


def _write(rec: Reconciler, change: Change) -> None:
    writer = WRITERS.get(change.kind)
    if writer is None:
        raise ValueError(f"a pool plan holds no {change.kind.value} changes")
    writer(rec, change)


def apply_plan(rec: Reconciler, plan: P.PoolPlan, run: PoolRun, run_id: str) -> None:
    """Wave by wave, each wave's writes at once; stops at the first failed wave (raises its error)."""
    for wave in P.waves(plan):
        futures = [(c, rec.arm.submit(_write, rec, c)) for c in wave]
        failed: ImporterError | None = None
        for change, fut in futures:
            try:
                fut.result()
            except ImporterError as exc:
                failed = failed or exc
                continue
            run.writes += 1
            run.applied.append(change)
            logger.info("run %s: %s %s %s (%s)", run_id, change.action.value, change.kind, change.id,
                        change.reason)
        if failed is not None:
            raise failed


def sync(rec: Reconciler, *, dry_run: bool = False, run_id: str = "-",
         assume: frozenset[str] = frozenset()) -> PoolRun | None:
    """Make APIM hold the pools and unified APIs the fleet's truth asks for; None when pools are off."""
    if not pool_path(rec):
        return None
    run = PoolRun()
    with pool_lock(rec):
        for attempt in range(MAX_REPLANS):
            plan = plan_once(rec, run, assume if dry_run else frozenset())
            run.plan = plan
            if dry_run or plan.empty:
                return run
            try:
                apply_plan(rec, plan, run, run_id)
                return run
            except ConflictError as exc:
                if attempt == MAX_REPLANS - 1:
                    raise
                run.notes.append(f"{REPLANNED} after a concurrent change: {exc}")
    return run  # pragma: no cover - the loop returns or raises


def explain(rec: Reconciler, deployment: str) -> list[str]:
    """Which pools serve ``deployment`` (members, priorities, weights, the unified path) and why an
    account serving that name was left out. Read-only; [] when pools are off."""
    path = pool_path(rec)
    if not path:
        return []
    run = PoolRun()
    plan = plan_once(rec, run)
    desired = run.desired or P.DesiredPools()
    wanted = deployment.lower()
    out: list[str] = []
    for pool in desired.pools:
        if pool.deployment != wanted:
            continue
        api = next((a for a in desired.apis if a.api_id == P.unified_api_id(pool.mode)), None)
        members = "; ".join(f"{m.account.rsplit('/', 1)[-1]} priority {m.priority} weight {m.weight} "
                            f"({m.sku or 'sku unknown'}, capacity {m.capacity})" for m in pool.members)
        pending = [c for c in plan.changes if c.id.lower() == pool.backend_id.lower()]
        out.append(f"in pool {pool.backend_id} ({pool.mode.value}, model {pool.model}) at "
                   f"{api.path if api else '?'}: {members}"
                   + (f" — pending: {pending[0].action.value} ({pending[0].reason})" if pending else ""))
    for left in desired.left:
        if left.deployment == wanted:
            out.append(left.text())
    if not out:
        out.append(f"no pool serves {deployment}: no enabled account in scope has a routable deployment "
                   "of that name")
    return out
