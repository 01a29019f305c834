"""The reader port: read(ref, hints) → Observed, fresh and snapshot, against the stand-in."""

from __future__ import annotations

from dataclasses import replace

from devhost import seed
from importer.config import resolve_options
from importer.discover import take_snapshot
from importer.fleet import enumerate_estate
from importer.identity import api_id
from importer.model import AccountRef, Action, Plan
from importer.plan import diff
from importer.reader import FreshReader, Hints, SnapshotReader, reader_for
from importer.reconcile import missing_account
from importer.render import render
from tests.fixtures.world import AOAI, SUB, World


def test_fresh_read_returns_the_account_with_its_deployments_and_reads_in_flight(world: World) -> None:
    rec = world.reconciler()
    ref = AccountRef.parse(AOAI)
    seen = FreshReader(rec.arm, rec.apim, missing_account).read(ref, Hints())
    assert seen.account is not None and seen.account.deployments
    assert not seen.skip and seen.not_found == ""
    assert seen.prefetch.mine is not None and seen.prefetch.roles is not None  # sent, not awaited


def test_fresh_read_of_a_missing_account_names_what_is_missing(world: World) -> None:
    rec = world.reconciler()
    ref = AccountRef.parse(seed.account_id(SUB, seed.AI_GROUP, "no-such-account"))
    seen = FreshReader(rec.arm, rec.apim, missing_account).read(ref, Hints())
    assert seen.account is None
    assert "no-such-account" in seen.not_found


def test_snapshot_reader_skips_an_opted_out_account_with_nothing_of_ours_without_a_read(world: World) -> None:
    rec = world.reconciler()
    ref = AccountRef.parse(AOAI)
    listed = enumerate_estate(rec, snapshot=False).accounts[ref.key]
    snap = take_snapshot(rec.arm, rec.apim, rec.apim_service().principal_id, [SUB], [])
    world.sim.log.clear()
    reader = reader_for(rec.arm, rec.apim, missing_account, snap)
    assert isinstance(reader, SnapshotReader)
    seen = reader.read(ref, Hints(account=listed, opted_in=False))
    assert seen.skip and world.reads() == 0
    # The fresh reader can't tell from listings: offboarding reads what it needs.
    fresh = reader_for(rec.arm, rec.apim, missing_account, None)
    assert not isinstance(fresh, SnapshotReader)
    seen = fresh.read(ref, Hints(account=listed, opted_in=False))
    assert not seen.skip and world.reads() == 0


def test_snapshot_reader_settles_an_update_on_fresh_reads_and_a_create_on_the_snapshot(world: World) -> None:
    rec = world.reconciler()
    ref = AccountRef.parse(AOAI)
    assert rec.reconcile(ref).outcome == "applied"
    snap = take_snapshot(rec.arm, rec.apim, rec.apim_service().principal_id, [SUB], [])
    reader = SnapshotReader(rec.arm, rec.apim, missing_account, snap)
    listed = enumerate_estate(rec, snapshot=False).accounts[ref.key]
    seen = reader.read(ref, Hints(account=listed))
    assert seen.account is not None
    options = resolve_options(rec.settings, seen.account.tag_map, None, account=ref.name)
    desired = render(seen.account, rec.apim_service(), options, ())
    actual = reader.actual(desired, seen)
    assert diff(desired, actual).changes == ()
    ours = api_id(ref, options.mode).lower()
    drifted = replace(desired, apis=tuple(replace(a, display_name=a.display_name + " (edited)")
                                          for a in desired.apis))
    plan = diff(drifted, actual)
    assert any(c.action is Action.UPDATE and c.id.lower() == ours for c in plan.changes)
    principal = rec.apim_service().principal_id
    world.sim.log.clear()
    # The fresh reader only re-reads what it listed without an ETag (the API: one GET) ...
    FreshReader(rec.arm, rec.apim, missing_account).settle(
        drifted, actual, plan, lambda a: diff(drifted, a), modes=options.modes, principal=principal)
    guarded = world.reads()
    assert guarded >= 1
    world.sim.log.clear()
    # ... the snapshot reader reads the account's objects fresh first, then guards the same way.
    settled, replanned = reader.settle(drifted, actual, plan, lambda a: diff(drifted, a),
                                       modes=options.modes, principal=principal)
    assert world.reads() > guarded
    assert any(a.etag for a in settled.apis if a.spec.api_id.lower() == ours)
    assert replanned.changes
    world.sim.log.clear()
    creates_only = Plan(ref, tuple(c for c in plan.changes if c.action is Action.CREATE))
    same, _ = reader.settle(drifted, actual, creates_only, lambda a: diff(drifted, a),
                            modes=options.modes, principal=None)
    assert same is actual and world.reads() == 0
