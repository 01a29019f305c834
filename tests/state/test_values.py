"""Value types and codec: strict request JSON, run validation, keys, fitting to limits."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from importer.model import ErrorKind, InvalidInput, NotFound, TransientError
from importer.run import Outcome, Run, Trigger
from importer.state.codec import CHANGES_BUDGET, account_hash, dumps, fit_changes, fit_run, timeline_key
from importer.state.ports import InvalidRequest, LockBusy, ReconcileRequest, RunNotFound
from tests.state.conftest import account


def request(**overrides: object) -> ReconcileRequest:
    base = ReconcileRequest.new(account("a1"), "event", "deployment changed")
    return ReconcileRequest(**{**base.to_dict(), **overrides})


def run(run_id: str = "r1", **overrides: object) -> Run:
    data: dict[str, object] = {
        "run_id": run_id, "account": account("a1"), "trigger": "timer",
        "started_at": "2025-01-01T00:00:00+00:00", "finished_at": "2025-01-01T00:00:01+00:00",
        "duration_ms": 1000, "outcome": "applied", "summary": {"create": 1}, "writes": 1,
        "changes": [{"action": "create", "kind": "api", "id": "x", "reason": "", "diff": []}],
    }
    return Run(**{**data, **overrides})  # type: ignore[arg-type]


class TestReconcileRequest:
    def test_a_hand_edit_is_a_typed_field_left_out_when_empty(self) -> None:
        assert "edited" not in request().to_dict()  # messages without it stay as they were
        edited = request(edited="subscription")
        assert ReconcileRequest.from_json(edited.to_json()) == edited and edited.edited == "subscription"
        with pytest.raises(InvalidRequest, match="edited"):
            request(edited="policy; drop")

    def test_json_round_trip(self) -> None:
        req = request(offboard=True, reason="ünïcode ✓")
        assert ReconcileRequest.from_json(req.to_json()) == req
        assert ReconcileRequest.from_json(req.to_json().encode("utf-8")) == req

    def test_new_fills_id_and_time_and_cuts_long_reason(self) -> None:
        req = ReconcileRequest.new(account(), "http", "x" * 5000)
        uuid.UUID(req.request_id)
        assert req.enqueued_at.endswith("+00:00")
        assert len(req.reason) == 2000 and req.reason.endswith("…")

    def test_offboard_defaults_false_when_absent(self) -> None:
        data = request().to_dict()
        del data["offboard"]
        assert ReconcileRequest.from_dict(data).offboard is False

    @pytest.mark.parametrize("mutate, message", [
        (lambda d: d.update(extra=1), "unknown fields"),
        (lambda d: d.pop("account"), "missing fields"),
        (lambda d: d.pop("request_id"), "missing fields"),
        (lambda d: d.update(trigger="cron"), "trigger"),
        (lambda d: d.update(request_id="not-a-uuid"), "request_id"),
        (lambda d: d.update(enqueued_at="yesterday"), "enqueued_at"),
        (lambda d: d.update(offboard="yes"), "offboard"),
        (lambda d: d.update(account="accounts/x"), "account"),
        (lambda d: d.update(reason=5), "reason"),
    ])
    def test_from_json_is_strict(self, mutate: object, message: str) -> None:
        data = request().to_dict()
        mutate(data)  # type: ignore[operator]
        with pytest.raises(ValueError, match=message) as caught:
            ReconcileRequest.from_json(json.dumps(data))
        assert isinstance(caught.value, InvalidInput)  # permanent: never retried

    @pytest.mark.parametrize("text", ["", "[]", "null", "{", '"x"'])
    def test_from_json_rejects_non_objects(self, text: str) -> None:
        with pytest.raises(InvalidRequest):
            ReconcileRequest.from_json(text)


class TestStoredRun:
    def test_dict_round_trip_and_unknown_fields_ignored(self) -> None:
        rec = run(probe={"ok": True}, error="boom", error_kind="transient", request_id=str(uuid.uuid4()))
        assert Run.from_dict({**rec.to_dict(), "future_field": 1}) == rec

    def test_enums_are_the_types_and_strings_on_the_wire(self) -> None:
        rec = run(error_kind="transient")
        assert rec.trigger is Trigger.TIMER and rec.outcome is Outcome.APPLIED
        assert rec.error_kind is ErrorKind.TRANSIENT and rec.retry
        assert not run(error_kind="permanent").retry and not run().retry
        data = rec.to_dict()
        assert (type(data["trigger"]), type(data["outcome"]), type(data["error_kind"])) == (str, str, str)
        assert json.loads(json.dumps(rec.to_json()))["errorKind"] == "transient"

    def test_live_fields_are_not_stored(self) -> None:
        rec = run()
        rec.notes.append("a note")
        rec.not_found = "account gone"
        assert "notes" not in rec.to_dict() and "not_found" not in rec.to_dict()
        assert Run.from_dict(rec.to_dict()).notes == []

    @pytest.mark.parametrize("overrides", [
        {"outcome": "done"}, {"trigger": "cron"}, {"run_id": "a/b"}, {"run_id": ""},
        {"run_id": "it's"}, {"started_at": "soon"}, {"duration_ms": -1}, {"writes": True},
        {"summary": {"create": "1"}}, {"changes": [1]}, {"probe": []},
    ])
    def test_rejects_bad_values(self, overrides: dict[str, Any]) -> None:
        # What the history reads back (and, through fit_run's round trip, what it records) is checked.
        with pytest.raises(ValueError):
            Run.from_dict({**run().to_dict(), **overrides})

    def test_missing_required_field(self) -> None:
        data = run().to_dict()
        del data["outcome"]
        with pytest.raises(ValueError, match="outcome"):
            Run.from_dict(data)


def test_error_types_follow_the_three_kinds() -> None:
    assert isinstance(LockBusy("k", 1.0), TransientError)
    missing = RunNotFound("no run 'x'")
    assert isinstance(missing, KeyError) and isinstance(missing, NotFound)
    assert str(missing) == "no run 'x'"


class TestKeys:
    def test_account_hash_is_case_insensitive_hex(self) -> None:
        assert account_hash("/A/B") == account_hash("/a/b")
        assert len(account_hash("/a")) == 64 and set(account_hash("/a")) <= set("0123456789abcdef")

    def test_timeline_key_sorts_newest_first(self) -> None:
        times = ["2024-12-31T23:59:59.999999+00:00", "2025-01-01T00:00:00+00:00",
                 "2025-01-01T01:00:00+01:00", "2025-06-01T00:00:00Z", "2030-01-01T00:00:00"]
        keys = [timeline_key(t, "r") for t in times]
        # 01:00+01:00 is the same instant as 00:00Z: equal keys; otherwise strictly descending
        assert keys[1] == keys[2]
        assert keys[0] > keys[1] > keys[3] > keys[4]


class TestFitting:
    def test_small_runs_are_untouched(self) -> None:
        rec = run()
        assert fit_run(rec) == rec

    def test_many_changes_list_as_many_as_fit_and_count_the_rest(self) -> None:
        changes = [{"action": "update", "kind": "policy", "id": f"c{i}", "diff": ["x" * 400]}
                   for i in range(500)]
        kept, omitted = fit_changes(changes)
        assert omitted > 0 and len(kept) + omitted == 500
        assert [c["id"] for c in kept] == [f"c{i}" for i in range(len(kept))]  # plan order, no gaps
        assert len(dumps(kept)) <= CHANGES_BUDGET

    def test_detail_goes_to_the_first_changes_while_all_fit_slimmed(self) -> None:
        changes = [{"action": "update", "kind": "policy", "id": f"c{i}", "diff": ["d" * 3000]}
                   for i in range(20)]
        kept, omitted = fit_changes(changes)
        assert omitted == 0 and [c["id"] for c in kept] == [c["id"] for c in changes]
        whole = [c for c in kept if "truncated" not in c]
        assert len(whole) >= 5 and kept[: len(whole)] == changes[: len(whole)]  # a full-detail prefix
        assert all(c["truncated"] is True and len(c["diff"][0]) == 200 for c in kept[len(whole):])
        assert len(dumps(kept)) <= CHANGES_BUDGET

    def test_one_huge_change_is_slimmed_not_dropped(self) -> None:
        huge = {"action": "update", "kind": "policy", "id": "p", "diff": ["y" * 100_000] * 3}
        kept, omitted = fit_changes([huge, {"action": "create", "kind": "api", "id": "a"}])
        assert omitted == 0
        assert kept[0]["truncated"] is True and kept[0]["id"] == "p"
        assert kept[1] == {"action": "create", "kind": "api", "id": "a"}

    def test_error_probe_and_non_ascii_fit_table_limits(self) -> None:
        rec = fit_run(run(error="€" * 50_000, probe={"body": "z" * 50_000},
                          changes=[{"id": str(i), "d": "🙂" * 100} for i in range(500)]))
        assert rec.error is not None and len(rec.error.encode("utf-16-le")) // 2 <= 32_768
        assert rec.probe == {"truncated": True, "chars": len(dumps({"body": "z" * 50_000}))}
        assert len(dumps(rec.changes)) <= CHANGES_BUDGET and rec.changes_omitted > 0
