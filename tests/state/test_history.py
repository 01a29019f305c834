"""RunHistory contract on the in-memory twin and on Azure Tables (Azurite)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from importer.model import NotFound
from importer.run import Run
from importer.state import RunNotFound, State
from importer.state.codec import CHANGES_BUDGET, dumps
from tests.state.conftest import account

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def run(acct: str, minutes: float = 0, run_id: str = "", **kw: object) -> Run:
    started = T0 + timedelta(minutes=minutes)
    data: dict[str, object] = {
        "run_id": run_id or uuid.uuid4().hex, "account": acct, "trigger": "event",
        "started_at": started.isoformat(), "finished_at": (started + timedelta(seconds=2)).isoformat(),
        "duration_ms": 2000, "outcome": "applied", "summary": {"create": 2, "update": 0}, "writes": 2,
        "changes": [{"action": "create", "kind": "api", "id": "/apis/x", "reason": "new", "diff": ["a"]}],
        "request_id": str(uuid.uuid4()),
    }
    return Run(**{**data, **kw})  # type: ignore[arg-type]


def test_record_then_get(state: State) -> None:
    rec = run(account(), probe={"routes": {"gpt-4o": 200}}, error=None, outcome="applied")
    assert state.history.record(rec) == rec
    assert state.history.get(rec.run_id) == rec


def test_get_missing_raises_not_found(state: State) -> None:
    for run_id in ("never-recorded", "bad/id", "it's", ""):
        with pytest.raises(RunNotFound) as caught:
            state.history.get(run_id)
        assert isinstance(caught.value, KeyError) and isinstance(caught.value, NotFound)


def test_list_is_newest_first_per_account_and_overall(state: State) -> None:
    a, b = account("alpha"), account("beta")
    runs = [run(a, 5), run(b, 1), run(a, -3), run(b, 30), run(a, 12.5), run(a, 0.001)]
    for r in runs:
        state.history.record(r)
    newest_first = sorted(runs, key=lambda r: datetime.fromisoformat(r.started_at), reverse=True)
    assert [r.run_id for r in state.history.list()] == [r.run_id for r in newest_first]
    assert [r.run_id for r in state.history.list(a)] == [r.run_id for r in newest_first if r.account == a]
    assert [r.run_id for r in state.history.list(a.upper(), limit=2)] == \
           [r.run_id for r in newest_first if r.account == a][:2]
    assert state.history.list(limit=0) == []
    assert state.history.last_for(b) == runs[3]
    assert state.history.last_for(account("nobody")) is None


def test_same_start_time_orders_by_run_id(state: State) -> None:
    acct = account()
    for run_id in ("run-b", "run-a", "run-c"):
        state.history.record(run(acct, 0, run_id))
    assert [r.run_id for r in state.history.list(acct)] == ["run-a", "run-b", "run-c"]


def test_record_is_idempotent_by_run_id(state: State) -> None:
    acct = account()
    first = run(acct, 1, "same-run", outcome="failed", error="boom", error_kind="transient")
    state.history.record(first)
    again = run(acct, 1, "same-run", outcome="applied")
    state.history.record(again)
    assert state.history.list(acct) == [again]
    assert state.history.get("same-run") == again  # error from the first write did not linger


def test_big_changes_are_truncated_not_failing(state: State) -> None:
    changes = [{"action": "update", "kind": "policy", "id": f"/apis/a/policies/{i}",
                "diff": [f"line {n} " + "x" * 200 for n in range(10)]} for i in range(200)]
    huge = run(account(), changes=changes, error="E" * 100_000, probe={"body": "p" * 100_000})
    stored = state.history.record(huge)
    ids = [c["id"] for c in stored.changes]
    assert ids == [c["id"] for c in changes[: len(ids)]]  # plan order, no gaps
    assert stored.changes_omitted == 200 - len(ids) > 0
    assert all(c == orig or c["truncated"] is True for c, orig in zip(stored.changes, changes, strict=False))
    assert len(dumps(stored.changes)) <= CHANGES_BUDGET
    assert stored.error is not None and stored.error.endswith("characters cut]")
    assert stored.probe is not None and stored.probe["truncated"] is True
    assert state.history.get(huge.run_id) == stored
    assert state.history.last_for(huge.account) == stored


ODD = [
    "/subscriptions/s/resourceGroups/r/providers/Microsoft.CognitiveServices/accounts/a#b?c\\d'e\"f%20",
    "/subscriptions/s/resourceGroups/r/providers/Microsoft.CognitiveServices/accounts/ünï-čødé-🙂",
    "/subscriptions/s/resourceGroups/" + "g" * 1500 + "/providers/Microsoft.CognitiveServices/accounts/x",
    "/SUBSCRIPTIONS/S/RESOURCEGROUPS/R/PROVIDERS/MICROSOFT.COGNITIVESERVICES/ACCOUNTS/A#B?C\\D'E\"F%20",
]


def test_odd_account_ids_are_safe_keys(state: State) -> None:
    recorded = [state.history.record(run(acct, i)) for i, acct in enumerate(ODD)]
    # ODD[3] is ODD[0] in upper case: the same account
    assert [r.run_id for r in state.history.list(ODD[0])] == [recorded[3].run_id, recorded[0].run_id]
    for acct, rec in zip(ODD[1:3], recorded[1:3], strict=True):
        assert state.history.list(acct) == [rec]
        assert state.history.last_for(acct) == rec
        assert rec.account == acct
    assert len(state.history.list()) == 4
