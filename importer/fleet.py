"""Fleet: the whole estate — enumerate accounts in the watched scopes and owned APIM objects.

Produces the set of accounts to look at (watched accounts plus the owners of orphaned objects);
the timer spreads them through the queue, the CLI runs them on a bounded thread pool. Every
account still goes through the one reconcile path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from importer.discover import Snapshot, take_snapshot
from importer.identity import owned_account
from importer.model import Account, AccountRef, Action, ImporterError, InvalidInput, Kind, in_scopes
from importer.poolsync import PoolRun
from importer.poolsync import sync as sync_pools
from importer.reconcile import Reconciler
from importer.run import Run, Trigger

logger = logging.getLogger(__name__)


@dataclass
class Estate:
    accounts: dict[str, Account] = field(default_factory=dict)  # key: lowercase account id
    orphans: dict[str, AccountRef] = field(default_factory=dict)  # owners of objects, account gone
    ignored: list[str] = field(default_factory=list)  # owned objects left alone, with the reason
    snapshot: Snapshot | None = None  # bulk listings shared by every run of the pass
    pools: PoolRun | None = None  # the pass's one pool reconcile (IMPORTER_POOL_PATH), after the accounts

    def targets(self) -> list[tuple[AccountRef, Account | None]]:
        """Every account to reconcile, sorted: listed accounts (with their listing) then orphans."""
        out: list[tuple[AccountRef, Account | None]] = [(a.ref, a) for a in self.accounts.values()]
        out += [(ref, None) for ref in self.orphans.values()]
        return sorted(out, key=lambda t: t[0].key)


def enumerate_estate(rec: Reconciler, *, snapshot: bool = True) -> Estate:
    """One paged listing per scope, plus the APIM's APIs and backends (to find orphans), and,
    with ``snapshot``, role assignments per subscription and the default products' links."""
    if not rec.scopes:
        raise InvalidInput("no watched scopes: set IMPORTER_SCOPES to subscription and/or "
                           "resource-group ids")
    estate = Estate()
    for scope in rec.scopes:
        for acct in rec.arm.list_accounts(scope):
            if in_scopes(acct.ref, rec.scopes):
                estate.accounts[acct.ref.key] = acct
    if snapshot:
        principal = rec.apim_service().principal_id
        estate.snapshot = take_snapshot(rec.arm, rec.apim, principal,
                                        {s.subscription for s in rec.scopes},
                                        rec.settings.items("IMPORTER_PRODUCTS"))
        apis = list(estate.snapshot.apis.values())
        backends = list(estate.snapshot.backends.values())
    else:
        apis, backends = rec.arm.list_apis(rec.apim), rec.arm.list_backends(rec.apim)
    owners: set[str] = set()
    # Marks of another APIM instance are that instance's importer's business.
    owners.update(filter(None, (owned_account(a.description, rec.apim) for a in apis)))
    owners.update(filter(None, (owned_account(b.description, rec.apim) for b in backends)))
    for owner in sorted(owners):
        try:
            ref = AccountRef.parse(owner)
        except InvalidInput:
            estate.ignored.append(f"ownership mark names an invalid account id {owner!r}")
            continue
        if ref.key in estate.accounts:
            continue
        if not in_scopes(ref, rec.scopes):
            estate.ignored.append(f"objects owned for {ref} (outside the watched scopes) left alone")
            continue
        estate.orphans[ref.key] = ref
    return estate


def run_pass(rec: Reconciler, estate: Estate, *, concurrency: int = 8, dry_run: bool = False,
             trigger: Trigger = Trigger.CLI,
             on_done: Callable[[Run], None] | None = None) -> list[Run]:
    """Reconcile every target on a bounded pool. Results sorted by account."""
    results: list[Run] = []
    targets = estate.targets()

    def one(target: tuple[AccountRef, Account | None]) -> Run:
        ref, listed = target
        return rec.reconcile(ref, dry_run=dry_run, trigger=trigger, account=listed,
                             snapshot=estate.snapshot, pools=False)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(one, t) for t in targets]
        for fut in as_completed(futures):
            run = fut.result()
            results.append(run)
            if on_done is not None:
                on_done(run)
    if not dry_run and any(c.kind is Kind.BACKEND and c.action is Action.DELETE
                           for run in results for c in run.applied):
        # Runs in a pass leave the shared Content Safety grants alone (they run concurrently); a
        # pass that deleted a backend removes the grants no imported API uses any more, once.
        try:
            gone = rec.sweep_safety_grants()
        except ImporterError as exc:
            logger.warning("fleet pass: could not remove unused Content Safety grants: %s", exc)
            gone = []
        if gone:
            logger.info("fleet pass: removed %d unused Content Safety role assignments", len(gone))
    # Pools are shared: reconciled once, after every account's own backend is in place.
    estate.pools = sync_pools(rec, dry_run=dry_run, run_id=f"pass-{trigger.value}")
    return sorted(results, key=lambda r: r.account.lower())


def summarise(results: Iterable[Run]) -> dict[str, int]:
    """Counts per outcome, plus accounts and writes."""
    out: dict[str, int] = {"accounts": 0, "writes": 0}
    for run in results:
        out["accounts"] += 1
        out["writes"] += run.writes
        out[run.outcome.value] = out.get(run.outcome.value, 0) + 1
    return out
