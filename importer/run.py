"""Run: one reconcile run, from its trigger to the history row, and the enums that decide what the
trigger does with it (retry, poison, HTTP status, exit code).

Pure. No I/O. One type serves the live run (``reconcile`` fills it: the plan, what was applied,
notes, pools) and the stored one (``to_dict``/``from_dict``: what the run history keeps, validated at
that boundary). Its camelCase JSON (``to_json``) is what the CLI and HTTP callers get.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from importer.model import Action, Change, ErrorKind, Kind, Plan


class Trigger(StrEnum):
    EVENT = "event"
    TIMER = "timer"
    HTTP = "http"
    CLI = "cli"
    REDRIVE = "redrive"


class Outcome(StrEnum):
    NOOP = "noop"
    APPLIED = "applied"  # something was written
    PLANNED = "planned"  # a dry run with changes
    FAILED = "failed"  # error and error_kind say why
    SKIPPED = "skipped"  # another run holds the account's lock (error_kind busy)
    OFFBOARDED = "offboarded"  # what the importer made for the account was deleted
    CONFLICT = "conflict"  # a foreign object blocks the plan: nothing written

    @property
    def good(self) -> bool:
        """The account matches its desired state (what the timer's redrive and the owned index trust)."""
        return self in (Outcome.NOOP, Outcome.APPLIED, Outcome.OFFBOARDED)


TRIGGERS: frozenset[str] = frozenset(Trigger)

# Run ids become table keys and URL segments: a conservative alphabet, as uuid4/ULID/timestamps use.
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_ACCOUNT_CHARS = 2048

# What the run history keeps of a run (storage's columns; the live-only fields are not stored).
STORED = ("run_id", "account", "trigger", "started_at", "finished_at", "duration_ms", "outcome", "summary",
          "writes", "error", "error_kind", "changes", "probe", "request_id", "changes_omitted")
_REQUIRED = ("run_id", "account", "trigger", "started_at", "finished_at", "duration_ms", "outcome")


def parse_time(value: str, what: str) -> datetime:
    """Parse an ISO-8601 timestamp; naive values are taken as UTC."""
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected an ISO-8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{what}: not an ISO-8601 timestamp: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Run:
    """One reconcile run. ``changes`` and ``summary`` are the plan's, as JSON (``set_plan`` keeps
    them in step; a run read back from the history has them but no ``plan``). ``changes_omitted``
    counts entries dropped from ``changes`` to fit storage limits; an entry that was itself cut down
    carries ``"truncated": true``."""

    run_id: str
    account: str
    trigger: Trigger
    started_at: str = ""
    finished_at: str = ""
    duration_ms: int = 0
    outcome: Outcome = Outcome.NOOP
    summary: dict[str, int] = field(default_factory=dict)
    writes: int = 0
    error: str | None = None
    error_kind: ErrorKind | None = None
    changes: builtins.list[dict[str, Any]] = field(default_factory=builtins.list)
    probe: dict[str, Any] | None = None
    request_id: str | None = ""
    changes_omitted: int = 0
    # -- live only (not stored) ---------------------------------------------------------------
    plan: Plan | None = field(default=None, compare=False, repr=False)
    applied: builtins.list[Change] = field(default_factory=builtins.list, compare=False, repr=False)
    not_found: str | None = field(default=None, compare=False)  # which part of the account id is missing
    notes: builtins.list[str] = field(default_factory=builtins.list, compare=False)
    sync_pools: bool = field(default=True, compare=False, repr=False)  # also reconcile the shared pools
    pools: dict[str, Any] | None = field(default=None, compare=False)  # what the pool reconcile did

    def __post_init__(self) -> None:
        # The enums are the types; a string from a caller or the history is checked here.
        self.trigger = _enum(Trigger, self.trigger, "trigger")
        self.outcome = _enum(Outcome, self.outcome, "outcome")
        if self.error_kind is not None:
            self.error_kind = _enum(ErrorKind, self.error_kind, "error_kind")

    # -- the live run ----------------------------------------------------------------------------

    def set_plan(self, plan: Plan) -> None:
        self.plan = plan
        self.changes = [c.to_json() for c in plan.changes]
        self.summary = plan.summary()

    def fail(self, error: str, kind: ErrorKind, outcome: Outcome = Outcome.FAILED) -> None:
        self.outcome, self.error, self.error_kind = outcome, error, kind

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def retry(self) -> bool:
        """A later run may succeed where this one failed (the host re-delivers the request)."""
        return self.error_kind is not None and self.error_kind.retry

    def changed_routing(self) -> bool:
        """The run wrote an API or its policy: what the gateway routes may have changed."""
        return any(c.kind in (Kind.API, Kind.POLICY) and c.action in (Action.CREATE, Action.UPDATE)
                   for c in self.applied)

    def to_json(self) -> dict[str, Any]:
        """What the CLI and HTTP callers get (camelCase; ``applied`` by reference)."""
        return {
            "runId": self.run_id, "account": self.account, "trigger": self.trigger.value,
            "outcome": self.outcome.value, "writes": self.writes,
            "changes": self.changes, "summary": self.summary,
            "applied": [{"action": c.action.value, "kind": c.kind.value, "id": c.id} for c in self.applied],
            "notFound": self.not_found, "error": self.error,
            "errorKind": self.error_kind.value if self.error_kind else None,
            "startedAt": self.started_at, "finishedAt": self.finished_at,
            "durationMs": self.duration_ms, "notes": self.notes, "probe": self.probe,
            **({"pools": self.pools} if self.pools is not None else {}),
        }

    # -- the stored run --------------------------------------------------------------------------

    @property
    def account_key(self) -> str:
        return self.account.lower()

    def to_dict(self) -> dict[str, Any]:
        """The run history's record (snake_case; what ``GET /api/runs`` returns)."""
        out = {name: getattr(self, name) for name in STORED}
        out["trigger"] = self.trigger.value
        out["outcome"] = self.outcome.value
        out["error_kind"] = self.error_kind.value if self.error_kind else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Run:
        """A stored record, validated: missing required fields and bad values raise ValueError;
        unknown ones are ignored (a newer writer); live-only fields are not read."""
        missing = [n for n in _REQUIRED if n not in data]
        if missing:
            raise ValueError(f"run record missing fields: {missing}")
        run = cls(**{k: v for k, v in data.items() if k in STORED})
        run.validate()
        return run

    def validate(self) -> None:
        """Raise ValueError unless the run is a complete record (what the history accepts)."""
        def check(cond: bool, message: str) -> None:
            if not cond:
                raise ValueError(f"run {self.run_id!r}: {message}")

        check(isinstance(self.run_id, str) and bool(RUN_ID.match(self.run_id)),
              f"run_id must match {RUN_ID.pattern}")
        check(isinstance(self.account, str) and 0 < len(self.account) <= MAX_ACCOUNT_CHARS,
              "account: a non-empty string")
        parse_time(self.started_at, "started_at")
        parse_time(self.finished_at, "finished_at")
        for name in ("duration_ms", "writes", "changes_omitted"):
            value = getattr(self, name)
            check(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                  f"{name}: a non-negative int")
        check(isinstance(self.summary, dict)
              and all(isinstance(k, str) and isinstance(v, int) for k, v in self.summary.items()),
              "summary: dict[str, int]")
        check(isinstance(self.changes, builtins.list) and all(isinstance(c, dict) for c in self.changes),
              "changes: a list of dicts")
        check(self.probe is None or isinstance(self.probe, dict), "probe: a dict or None")
        for name in ("error", "request_id"):
            value = getattr(self, name)
            check(value is None or isinstance(value, str), f"{name}: a string or None")

_E = TypeVar("_E", bound=StrEnum)


def _enum(of: type[_E], value: object, what: str) -> _E:
    try:
        return of(value)  # type: ignore[arg-type]
    except ValueError:
        raise ValueError(f"{what} {value!r} not one of {sorted(m.value for m in of)}") from None
