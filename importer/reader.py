"""Reader: the port a run reads truth through, read(ref, hints) → Observed, in two modes.

Fresh: the account, its deployments and our objects sent at once (one round trip). Snapshot: a
fleet pass's bulk listings stand in for what they hold; they carry no ETags, so one rule applies
after the plan (:meth:`FreshReader.settle`): re-read fresh when the plan needs ETags it lacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from importer import discover
from importer.azure.arm import AzureArm
from importer.discover import Prefetch, Snapshot
from importer.model import (
    Account,
    AccountRef,
    Action,
    Actual,
    ApimRef,
    Desired,
    Mode,
    NotFound,
    Plan,
)


@dataclass(frozen=True)
class Hints:
    """What the caller already knows, to save reads; never decides a write."""

    account: Account | None = None  # listed by the fleet pass (no deployments)
    opted_in: bool = True  # the listed account's tags (and settings) ask for an import
    modes: tuple[Mode, ...] = (Mode.AZURE_OPENAI,)  # the likely modes: whose APIs are read ahead
    principal: str | None = None  # APIM's principal, when a fresh cache entry knows it
    links: bool = False  # read the product links of a fresh read


@dataclass(frozen=True)
class Observed:
    """One account as read before rendering: the account (None: gone, ``not_found`` says which
    part), and the reads of our objects already in flight. ``skip``: opted out, and the pass's
    listings show nothing of ours: nothing was read."""

    account: Account | None
    prefetch: Prefetch = field(default_factory=Prefetch)
    not_found: str = ""
    skip: bool = False


Replan = Callable[[Actual], Plan]


class FreshReader:
    """Reads everything from ARM, with the ETags a write needs where an object is read alone."""

    snapshot: Snapshot | None = None

    def __init__(self, arm: AzureArm, apim: ApimRef, missing: Callable[[AccountRef, str], str]) -> None:
        self.arm = arm
        self.apim = apim
        self._missing = missing  # names the missing part of an account id

    def read(self, ref: AccountRef, hints: Hints) -> Observed:
        if hints.account is None:
            return self._read_all(ref, hints)
        if not hints.opted_in:
            return self._opted_out(ref, hints.account)
        return self._read_listed(ref, hints)

    def _read_all(self, ref: AccountRef, hints: Hints) -> Observed:
        # Everything at once: the account, its deployments and our objects (ids follow from the
        # account id). An account that turns out gone or opted out is offboarded from the same
        # reads; a run costs one round trip of reads, not one per object.
        arm = self.arm
        reads = (arm.submit(arm.get_account, ref, with_deployments=False),
                 arm.submit(arm.list_deployments, ref))
        pf = discover.prefetch(arm, self.apim, ref, modes=hints.modes, links=hints.links,
                               roles=True, principal=hints.principal)
        try:
            return Observed(replace(reads[0].result(), deployments=reads[1].result()), pf)
        except NotFound as exc:
            return Observed(None, pf, not_found=self._missing(ref, exc.code))

    def _opted_out(self, ref: AccountRef, account: Account) -> Observed:
        return Observed(account)  # offboarding reads what it needs

    def _read_listed(self, ref: AccountRef, hints: Hints) -> Observed:
        # Listed by the fleet pass: its deployments (and, with a snapshot, operations and policy)
        # are the only new reads.
        arm = self.arm
        deployments = arm.submit(arm.list_deployments, ref)
        pf = discover.prefetch(arm, self.apim, ref, modes=hints.modes, snapshot=self.snapshot,
                               links=True, roles=self.snapshot is None, principal=hints.principal)
        assert hints.account is not None
        try:
            return Observed(replace(hints.account, deployments=deployments.result()), pf)
        except NotFound:
            return Observed(None, pf)

    def actual(self, desired: Desired, observed: Observed) -> Actual:
        """The actual state of ``desired``'s objects, from the reads in flight and those missing."""
        return discover.read_actual(self.arm, self.apim, desired, self.snapshot,
                                    prefetched=observed.prefetch)

    def settle(self, desired: Desired, actual: Actual, plan: Plan, replan: Replan, *,
               modes: tuple[Mode, ...], principal: str | None) -> tuple[Actual, Plan]:
        """The plan as decided on reads that carry the ETags its writes need."""
        return guard(self.arm, self.apim, desired.account, actual, plan, replan)


class SnapshotReader(FreshReader):
    """Takes what a fleet pass's bulk listings hold from them: a no-op account costs only what
    can't be listed (deployments, operations, policy)."""

    def __init__(self, arm: AzureArm, apim: ApimRef, missing: Callable[[AccountRef, str], str],
                 snapshot: Snapshot) -> None:
        super().__init__(arm, apim, missing)
        self.snapshot = snapshot

    def _opted_out(self, ref: AccountRef, account: Account) -> Observed:
        # Not imported: when the pass's listings show nothing of ours for it, nothing is read.
        assert self.snapshot is not None
        if not discover.owns_anything(self.snapshot, ref, self.apim):
            return Observed(account, skip=True)
        return Observed(account)

    def settle(self, desired: Desired, actual: Actual, plan: Plan, replan: Replan, *,
               modes: tuple[Mode, ...], principal: str | None) -> tuple[Actual, Plan]:
        # The snapshot may be minutes old and holds no ETags: an update, delete or conflict is
        # decided on fresh reads. Creates need no ETag (a PUT of an absent object), and the fresh
        # read can't close that race either, so they go ahead on the snapshot's word.
        if any(c.action is not Action.CREATE for c in plan.changes):
            ref = desired.account
            fresh = discover.prefetch(self.arm, self.apim, ref, modes=modes,
                                      links=bool(desired.product_links), roles=True, principal=principal)
            actual = discover.read_actual(self.arm, self.apim, desired, paths_from=self.snapshot,
                                          prefetched=fresh)
            plan = replan(actual)
        return super().settle(desired, actual, plan, replan, modes=modes, principal=principal)


def guard(arm: AzureArm, apim: ApimRef, ref: AccountRef, actual: Actual, plan: Plan,
          replan: Replan) -> tuple[Actual, Plan]:
    """Objects listed without ETags that the plan updates or deletes are read again, and the plan
    decided again on them."""
    stale = discover.unguarded(actual, plan)
    if stale:
        actual = discover.refresh(arm, apim, ref, actual, stale)
        plan = replan(actual)
    return actual, plan


def reader_for(arm: AzureArm, apim: ApimRef, missing: Callable[[AccountRef, str], str],
               snapshot: Snapshot | None) -> FreshReader:
    """The snapshot reader when a fleet pass took one, else the fresh one."""
    if snapshot is None:
        return FreshReader(arm, apim, missing)
    return SnapshotReader(arm, apim, missing, snapshot)
