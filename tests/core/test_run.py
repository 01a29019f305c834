"""The typed plan and the one Run type: apply dispatches by a table of kinds, and what a trigger does
with a run (retry, HTTP status, exit code) is decided from its enums."""

from __future__ import annotations

import pytest

from importer import apply, poolsync
from importer.cli import EXIT_ERROR, EXIT_OK, EXIT_PENDING, _exit
from importer.model import AccountRef, Action, ApiSpec, Change, ErrorKind, Kind, Plan
from importer.run import Outcome, Run, Trigger
from importer.service import FAILED_STATUS, http_status

REF = AccountRef("00000000-0000-0000-0000-000000000001", "rg", "acct")


def _run(**kw: object) -> Run:
    return Run(run_id="r1", account=REF.id, trigger=Trigger.HTTP, **kw)  # type: ignore[arg-type]


def test_every_kind_has_one_writer() -> None:
    assert set(apply.WRITERS) == set(Kind) - {Kind.POOL}
    assert set(poolsync.WRITERS) == {Kind.POOL, Kind.API, Kind.POLICY}
    # every kind an account's plan writes has a wave (a diagnostic is never deleted)
    assert set(apply._WAVE) == set(Kind) - {Kind.POOL, Kind.SUBSCRIPTION}
    assert set(apply._DELETE_WAVE) == set(Kind) - {Kind.POOL, Kind.DIAGNOSTIC}


def test_a_kind_without_a_writer_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="an account's plan holds no pool changes"):
        apply._write(None, None, REF, Change(Action.CREATE, Kind.POOL, "p"))  # type: ignore[arg-type]


def test_kinds_order_the_plan_and_serialise_as_strings() -> None:
    api = ApiSpec(api_id="a", display_name="a", description="d", path="p")
    changes = (Change(Action.DELETE, Kind.BACKEND, "b", before=object()),
               Change(Action.CREATE, Kind.POLICY, "a"), Change(Action.CREATE, Kind.API, "a", after=api),
               Change(Action.CREATE, Kind.ROLE_ASSIGNMENT, "r"))
    ordered = sorted(changes, key=Change.order)
    assert [(c.action.value, c.kind.value) for c in ordered] == [
        ("create", "role_assignment"), ("create", "api"), ("create", "policy"), ("delete", "backend")]
    assert ordered[1].to_json()["kind"] == "api" and type(ordered[1].to_json()["kind"]) is str
    assert ordered[1].spec(ApiSpec) is api


@pytest.mark.parametrize(("outcome", "kind", "status", "message"), [
    (Outcome.NOOP, None, 200, None),
    (Outcome.APPLIED, None, 200, None),
    (Outcome.FAILED, ErrorKind.PERMANENT, 400, None),
    (Outcome.FAILED, ErrorKind.TRANSIENT, 503, None),
    (Outcome.FAILED, ErrorKind.CONFLICT, 500, None),
    (Outcome.SKIPPED, ErrorKind.BUSY, 409, "another run holds"),
    (Outcome.CONFLICT, ErrorKind.PERMANENT, 409, "path 'x' is taken"),
])
def test_http_status_comes_from_the_enums(outcome: Outcome, kind: ErrorKind | None, status: int,
                                          message: str | None) -> None:
    run = _run(outcome=outcome, error_kind=kind, error="path 'x' is taken" if kind else None)
    got, text = http_status(run)
    assert got == status
    assert (text is None) if message is None else (text is not None and message in text)


def test_every_error_kind_has_a_status_and_a_retry_decision() -> None:
    assert set(FAILED_STATUS) == set(ErrorKind)
    assert {k for k in ErrorKind if k.retry} == {ErrorKind.TRANSIENT, ErrorKind.CONFLICT, ErrorKind.BUSY}


def test_not_found_with_nothing_left_is_404_but_an_offboarding_plan_is_not() -> None:
    gone = _run(not_found="account acct not found")
    gone.set_plan(Plan(REF, ()))
    assert http_status(gone) == (404, "account acct not found (and nothing owned for it is left to remove)")
    leftovers = _run(not_found="account acct not found", outcome=Outcome.OFFBOARDED)
    leftovers.set_plan(Plan(REF, (Change(Action.DELETE, Kind.API, "a"),)))
    assert http_status(leftovers) == (200, None)


@pytest.mark.parametrize(("outcome", "kind", "dry_run", "pending", "code"), [
    (Outcome.NOOP, None, False, False, EXIT_OK),
    (Outcome.APPLIED, None, False, False, EXIT_OK),
    (Outcome.PLANNED, None, True, True, EXIT_PENDING),
    (Outcome.PLANNED, None, True, False, EXIT_PENDING),  # only the shared pools have changes
    (Outcome.CONFLICT, ErrorKind.PERMANENT, True, False, EXIT_PENDING),
    (Outcome.CONFLICT, ErrorKind.PERMANENT, False, False, EXIT_ERROR),
    (Outcome.FAILED, ErrorKind.TRANSIENT, False, False, EXIT_ERROR),
    (Outcome.FAILED, ErrorKind.PERMANENT, True, False, EXIT_ERROR),
])
def test_cli_exit_code_comes_from_the_outcome(outcome: Outcome, kind: ErrorKind | None, dry_run: bool,
                                              pending: bool, code: int) -> None:
    run = _run(outcome=outcome, error_kind=kind, error="e" if kind else None)
    run.set_plan(Plan(REF, (Change(Action.CREATE, Kind.API, "a"),) if pending else ()))
    assert _exit(run, dry_run) == code


def test_a_bad_enum_value_is_named() -> None:
    with pytest.raises(ValueError, match="outcome 'done' not one of"):
        _run(outcome="done")
    with pytest.raises(ValueError, match="error_kind 'flaky' not one of"):
        _run(error_kind="flaky")
