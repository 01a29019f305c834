"""State ports: the reconcile request, and the Protocols of the lease lock, the run history and the
owned-object index.

Pure. No I/O. Both twins (``memory`` and ``storage``) implement these Protocols and pass the same
contract tests; callers depend on this module only, never on a backend. The queue that carries
requests is the Functions host's (function_app.py's bindings); its local twins are dev hosting's
(``devhost.queues``).
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from importer.events import KEY_KINDS
from importer.model import InvalidInput, NotFound, TransientError
from importer.run import MAX_ACCOUNT_CHARS, TRIGGERS, Run, Trigger, parse_time

# A request travels base64-encoded in one queue message (64 KiB): keep its free text bounded.
MAX_REASON_CHARS = 2000


# ---------------------------------------------------------------------------------------------
# Errors (STYLE §5)


class InvalidRequest(InvalidInput, ValueError):
    """A queue message or request that is not a well-formed ReconcileRequest. Never retried."""


class LockBusy(TransientError):
    """Another holder has the account's lease: retry later."""

    def __init__(self, key: str, waited_s: float) -> None:
        super().__init__(f"lock busy for {key} (waited {waited_s:.1f}s); retry later")
        self.key = key
        self.waited_s = waited_s


class LockLost(TransientError):
    """The lease could not be kept (renewal failed past its duration): stop writing, retry later."""


class RunNotFound(NotFound, KeyError):
    """No run with that id in the history."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "run not found"


# ---------------------------------------------------------------------------------------------
# Helpers


def utc_now() -> str:
    """Now as an ISO-8601 UTC string with microseconds (the format every timestamp here uses)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise InvalidRequest(message)


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class ReconcileRequest:
    """"Look at this account": what every trigger enqueues. It never says what to do."""

    account: str
    trigger: Trigger
    reason: str
    request_id: str
    enqueued_at: str
    offboard: bool = False
    # A hand edit of one of the importer's objects raised it: that object's kind (events.KEY_KINDS).
    # The worker repairs what the plan does not hold (the probe key, "subscription") from it.
    edited: str = ""

    def __post_init__(self) -> None:
        _require(isinstance(self.account, str) and self.account.startswith("/")
                 and len(self.account) <= MAX_ACCOUNT_CHARS, f"account: not a resource id: {self.account!r}")
        _require(self.trigger in TRIGGERS, f"trigger: {self.trigger!r} not one of {sorted(TRIGGERS)}")
        object.__setattr__(self, "trigger", Trigger(self.trigger))
        _require(isinstance(self.reason, str) and len(self.reason) <= MAX_REASON_CHARS,
                 f"reason: a string of at most {MAX_REASON_CHARS} characters")
        try:
            uuid.UUID(self.request_id)
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidRequest(f"request_id: not a uuid: {self.request_id!r}") from exc
        try:
            parse_time(self.enqueued_at, "enqueued_at")
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        _require(isinstance(self.offboard, bool), "offboard: expected true or false")
        _require(self.edited == "" or self.edited in KEY_KINDS,
                 f"edited: {self.edited!r} not one of {list(KEY_KINDS)}")

    @classmethod
    def new(cls, account: str, trigger: Trigger, reason: str, *, offboard: bool = False) -> ReconcileRequest:
        """A fresh request: new uuid4, enqueued now; an over-long reason is cut, not rejected."""
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        return cls(account, trigger, reason, str(uuid.uuid4()), utc_now(), offboard)

    @property
    def account_key(self) -> str:
        """The case-insensitive identity of the account: the lock and history key."""
        return self.account.lower()

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if not self.edited:  # most requests: the message stays as before the field existed
            del out["edited"]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReconcileRequest:
        """Strict: unknown or missing fields and wrong types raise InvalidRequest (a ValueError)."""
        if not isinstance(data, Mapping):
            raise InvalidRequest(f"expected a JSON object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        missing = sorted(n for n in names - set(data) if n not in ("offboard", "edited"))
        _require(not unknown, f"unknown fields: {unknown}")
        _require(not missing, f"missing fields: {missing}")
        for name in ("account", "trigger", "reason", "request_id", "enqueued_at"):
            _require(isinstance(data[name], str), f"{name}: expected a string")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReconcileRequest:
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(f"not JSON: {exc}") from exc
        return cls.from_dict(data)


# ---------------------------------------------------------------------------------------------
# Protocols


@runtime_checkable
class Lease(Protocol):
    """A held per-account lock; renewed in the background until the ``with`` block ends."""

    @property
    def key(self) -> str: ...

    @property
    def renewals(self) -> int:
        """Successful renewals so far."""

    @property
    def lost(self) -> bool:
        """True once renewal failed for longer than the lease lasts."""

    def ensure(self) -> None:
        """Raise LockLost if the lease may have passed to someone else. Call before writing."""


@runtime_checkable
class LockManager(Protocol):
    def hold(self, account_key: str, wait: bool = True,
             timeout_s: float = 60.0) -> AbstractContextManager[Lease]:
        """Hold the account's lease for the ``with`` block; released on exit, even on exception.

        Raises LockBusy when the lease is taken and ``wait`` is False, or still taken after
        ``timeout_s``. Keys compare case-insensitively.
        """
        ...


@runtime_checkable
class RunHistory(Protocol):
    def record(self, run: Run) -> Run:
        """Store a run (idempotent by run_id); returns it as stored (fitted to size limits)."""

    def get(self, run_id: str) -> Run:
        """The run, or raise RunNotFound (a KeyError and a NotFound)."""

    def list(self, account: str | None = None, limit: int = 50) -> builtins.list[Run]:
        """Newest first (by started_at, then run_id); one account's or everyone's."""

    def last_for(self, account: str) -> Run | None:
        """The account's newest run, or None when it has never run."""


@runtime_checkable
class OwnedIndex(Protocol):
    """Which account owns an object, by the object's ownership key (``importer.events.owned_keys``):
    what lets an event on an APIM object or role assignment, which names only the object, become a
    reconcile of its account without an ARM read. Written by the reconciler after a good run."""

    def remember(self, account: str, keys: Iterable[str]) -> int:
        """Record ``account`` as the owner of each key; returns how many entries were written
        (keys already known for that account in this process cost nothing)."""

    def owner(self, key: str) -> str | None:
        """The account id recorded for ``key``, or None when the importer never made it."""
