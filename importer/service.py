"""Service: what each Functions trigger does, as plain functions over plain values.

function_app.py stays thin (parse the binding, call one of these, set the output); everything
here is testable without the Functions host. Built once per process from the environment.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from importer.events import decide_cloudevent, decide_eventgrid, owned_by_index
from importer.model import AccountRef, ErrorKind, ImporterError, InvalidInput, Scope
from importer.options import JSON_TYPES
from importer.run import Outcome, Run, Trigger
from importer.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

QUEUE_NAME = "reconcile-requests"
MAX_BODY_BYTES = 16 * 1024
HTTP_BUDGET_S = 25.0


class Transient(Exception):
    """Raised by the queue worker so the host retries the message (then poisons it)."""


@dataclass
class Service:
    settings: Settings
    reconciler: Any
    state: Any
    _own_ids: frozenset[str] | None = None

    @property
    def scopes(self) -> tuple[Scope, ...]:
        return tuple(self.reconciler.scopes)

    @property
    def own_ids(self) -> frozenset[str]:
        """The importer's own object id: IMPORTER_PRINCIPAL_ID, else the oid claim of its ARM token
        (asked once per process; in Azure that is the identity endpoint, never ARM). Empty when
        neither is known: then nothing is dropped as ours, and a loop still ends, because a repair
        run that finds nothing to do writes nothing."""
        if self._own_ids is None:
            configured = self.settings.get("IMPORTER_PRINCIPAL_ID").strip().lower()
            found = configured
            if not found:
                try:
                    found = self.reconciler.arm.clients.object_id() or ""
                except Exception:  # no token now: try again with the next event
                    logger.exception("could not read the importer's object id from its token")
                    return frozenset()
            self._own_ids = frozenset({found} if found else ())
        return self._own_ids


_lock = threading.Lock()
_service: Service | None = None


def get_service() -> Service:
    """The process-wide service (built lazily: heavy SDKs load on first use, not on import)."""
    global _service
    with _lock:
        if _service is None:
            from importer.reconcile import build_reconciler
            from importer.state.factory import build_state

            settings = Settings.from_env()
            state = build_state(settings)
            _service = Service(settings, build_reconciler(settings, state=state, publish_outcomes=True),
                               state)
        return _service


def install(svc: Service) -> None:
    """Use ``svc`` as the process-wide service (the demo and tests embed their own state)."""
    global _service
    with _lock:
        _service = svc


def reset_service() -> None:
    """Forget the cached service (tests change the environment between cases)."""
    global _service
    with _lock:
        _service = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _request(account: AccountRef, trigger: Trigger, reason: str, offboard: bool = False,
             edited: str = "") -> Any:
    from importer.state.ports import ReconcileRequest

    return ReconcileRequest(account=account.id, trigger=trigger, reason=reason[:500],
                            request_id=uuid.uuid4().hex, enqueued_at=_now(), offboard=offboard,
                            edited=edited)


# -- Event Grid -------------------------------------------------------------------------------------


def on_event(event: Mapping[str, Any], *, cloud: bool, scopes: tuple[Scope, ...],
             svc: Service | None = None) -> str | None:
    """Event → one queue message (JSON text) for its account, or None (logged, dropped).

    With ``svc``: events the importer's own identity caused are dropped, and an event on one of
    its objects (APIM or role assignment) finds its account in the owned-object index (a storage
    point read, no ARM read)."""
    own, apim = frozenset[str](), None
    if svc is not None:
        own, apim = svc.own_ids, svc.reconciler.apim
    decide = decide_cloudevent if cloud else decide_eventgrid
    decision = decide(event, scopes, own_ids=own, apim=apim)
    if decision.needs_owner:
        index = svc.reconciler.owned if svc is not None else None
        owner = index.owner(decision.key) if index is not None else None
        decision = owned_by_index(decision, owner, scopes)
    if decision.account is None:
        logger.info("event %s dropped: %s", decision.event_id or "-", decision.reason)
        return None
    logger.info("event %s: reconcile %s (%s)", decision.event_id or "-", decision.account,
                decision.reason)
    text: str = _request(decision.account, Trigger.EVENT, decision.reason, edited=decision.edited).to_json()
    return text


def on_trigger_event(event: Mapping[str, Any], *, cloud: bool) -> str | None:
    """What the Event Grid trigger calls: ``on_event`` with the process's service and its scopes.
    Without a service (a setting it needs is wrong) AI account events still go through, with the
    scopes read from the settings; only hand edits of the importer's own objects, which need the
    owned-object index, are dropped until the settings are fixed."""
    try:
        svc: Service | None = get_service()
    except Exception:
        logger.exception("the service could not be built: events on the importer's own objects are "
                         "dropped until its settings are fixed")
        svc = None
    if svc is not None:
        scopes = svc.reconciler.scopes
    else:
        try:
            scopes = tuple(Scope.parse(s) for s in Settings.from_env().scopes)
        except InvalidInput:
            logger.exception("IMPORTER_SCOPES is invalid; dropping events until it is fixed")
            scopes = ()
    return on_event(event, cloud=cloud, scopes=scopes, svc=svc)


# -- queue worker -----------------------------------------------------------------------------------


def rejected_entry(body: str | bytes, reason: str) -> str:
    """What goes to the poison queue for a message no retry can fix: the reason and the message
    (as text, undecodable bytes replaced; at most 8 KiB)."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return json.dumps({"rejected": reason, "message": text[:8192]})


def on_queue_message(svc: Service, body: str | bytes, *, dequeue_count: int = 1,
                     max_dequeue: int = 5) -> dict[str, Any]:
    """Reconcile the account a message names. Transient failures raise ``Transient`` (the host
    retries, then poisons); permanent ones are recorded and swallowed. A message that is not a
    reconcile request (not UTF-8, not JSON, no valid account) is rejected at once: the result's
    ``poison`` is what the trigger puts in the poison queue, with the reason."""
    from importer.state.ports import ReconcileRequest

    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        req = ReconcileRequest.from_json(text)
        ref = AccountRef.parse(req.account)
    except UnicodeDecodeError as exc:
        reason = f"message is not UTF-8 text ({exc.reason} at byte {exc.start})"
        logger.warning("queue message rejected (poisoned, not retried): %s", reason)
        return {"outcome": "rejected", "error": reason, "poison": rejected_entry(body, reason)}
    except (ValueError, ImporterError) as exc:
        logger.warning("queue message rejected (poisoned, not retried): %s", exc)
        return {"outcome": "rejected", "error": str(exc), "poison": rejected_entry(body, str(exc))}
    # A hand edit of the probe key: the run repairs it (the plan does not hold the key), so it is never
    # coalesced into a run that did not.
    probe_key = req.edited == "subscription"
    served = None if probe_key else _served_by(svc, ref, req)
    if served is not None:
        logger.info("request %s for %s (%s) already served by run %s, which started %s, after it "
                    "was enqueued at %s: nothing to do", req.request_id, ref, req.reason,
                    served.run_id, served.started_at, req.enqueued_at)
        return {"outcome": "coalesced", "account": ref.id, "servedBy": served.run_id,
                "requestId": req.request_id}
    run = svc.reconciler.reconcile(ref, trigger=req.trigger, request_id=req.request_id,
                                   repair_probe_key=probe_key)
    if run.retry:
        logger.warning("run %s account %s: %s failure, try %d of %d: %s", run.run_id, ref,
                       run.error_kind, dequeue_count, max_dequeue, run.error)
        raise Transient(f"{run.error_kind}: {run.error}")
    result: dict[str, Any] = run.to_json()
    return result


# A run that started this long after a request was enqueued has seen what the request announced:
# the margin covers clock skew between instances and ARM's read-after-write lag.
COALESCE_MARGIN_S = 2.0


def _served_by(svc: Service, ref: AccountRef, req: Any) -> Run | None:
    """The account's last run if it succeeded and started after ``req`` was enqueued (plus the
    margin): duplicates and bursts of events for one account then cost one run, not one each.
    Never decides anything risky: a miss only means one more (idempotent) run."""
    from importer.run import parse_time

    history = svc.reconciler.history
    if history is None:
        return None
    try:
        last = history.last_for(ref.id)
        if last is None or not last.outcome.good:
            return None
        lead = (parse_time(last.started_at, "started_at")
                - parse_time(req.enqueued_at, "enqueued_at")).total_seconds()
    except Exception:  # history is best effort: when in doubt, run
        logger.exception("could not read the run history of %s; running", ref)
        return None
    return last if lead >= COALESCE_MARGIN_S else None


# -- timer ------------------------------------------------------------------------------------------


def on_timer(svc: Service) -> list[str]:
    """Enumerate the estate; one queue message per account (watched or orphaned owner)."""
    from importer.fleet import enumerate_estate

    estate = enumerate_estate(svc.reconciler, snapshot=False)  # workers read for themselves
    for note in estate.ignored:
        logger.info("timer: %s", note)
    messages = []
    for ref, listed in estate.targets():
        reason = "drift check" if listed is not None else "owned objects whose account is gone"
        messages.append(_request(ref, Trigger.TIMER, reason, offboard=listed is None).to_json())
    logger.info("timer: %d accounts, %d orphaned owners enqueued", len(estate.accounts),
                len(estate.orphans))
    _timer_pools(svc)
    return messages


def _timer_pools(svc: Service) -> None:
    """The shared pools, once per timer pass (the queued runs it enqueues skip them); best effort:
    the next event or pass heals a failure."""
    from importer.poolsync import sync

    try:
        result = sync(svc.reconciler, run_id="timer")
    except ImporterError as exc:
        logger.warning("timer: pools not reconciled (%s error): %s", exc.kind, exc)
        return
    except Exception:  # a bug: the accounts are enqueued already; say so loudly, don't lose them
        logger.exception("timer: pools not reconciled (unexpected error)")
        return
    if result is not None:
        logger.info("timer: pools reconciled, %d writes", result.writes)


# -- HTTP -------------------------------------------------------------------------------------------

# The request's own fields, then every option's JSON key with its type (options.OPTIONS).
_REQUEST_FIELDS: dict[str, type] = {"account": str, "dryRun": bool, "wait": bool}
_IMPORT_FIELDS: dict[str, type] = {**_REQUEST_FIELDS, **JSON_TYPES}


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"status": status, "message": message}}


def _check_type(key: str, value: object, typ: type) -> None:
    if typ is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidInput(f"field '{key}' must be an integer")
    if not isinstance(value, typ):
        raise InvalidInput(f"field '{key}' must be a {typ.__name__}")
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"field '{key}' must be a list of strings")


def parse_import_body(body: bytes) -> tuple[AccountRef, bool, bool, dict[str, object]]:
    """Schema-check a POST /api/imports body. Raises InvalidInput with a message for the caller."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidInput(f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        data = json.loads(body.decode("utf-8"))
    except RecursionError as exc:
        raise InvalidInput("body is not valid JSON: nested too deeply") from exc
    except ValueError as exc:  # not UTF-8, not JSON, or a number over Python's 4,300-digit limit
        raise InvalidInput(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("body must be a JSON object")
    unknown = sorted(set(data) - set(_IMPORT_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(unknown)}; allowed: "
                           f"{', '.join(sorted(_IMPORT_FIELDS))}")
    for key, typ in _IMPORT_FIELDS.items():
        if key in data:
            _check_type(key, data[key], typ)
    if "account" not in data:
        raise InvalidInput("field 'account' (the account's resource id) is required")
    ref = AccountRef.parse(data["account"])
    overrides: dict[str, object] = {k: v for k, v in data.items() if k not in _REQUEST_FIELDS}
    return ref, bool(data.get("dryRun", False)), bool(data.get("wait", True)), overrides


def http_import(svc: Service, body: bytes) -> tuple[int, dict[str, Any]]:
    try:
        ref, dry_run, wait, overrides = parse_import_body(body)
        if not svc.reconciler.scopes:  # as the event path: no scope configured, nothing imported
            raise InvalidInput("no scope is configured (IMPORTER_SCOPES is empty): the HTTP API imports "
                               "only accounts in the watched scopes")
        svc.reconciler.check_scope(ref)
    except InvalidInput as exc:
        return _error(400, str(exc))
    run = svc.reconciler.reconcile(ref, dry_run=dry_run, overrides=overrides, trigger=Trigger.HTTP,
                                   lock_wait=wait)
    status, message = http_status(run)
    payload: dict[str, Any] = run.to_json()
    if message is not None:
        payload["error"] = {"status": status, "message": message}
    return status, payload


# A failed run's status by why it failed: bad input, forbidden, missing → 400; ARM throttled or down
# → 503 (retry); an ETag that kept moving after the re-plans → 500; the lock held → 409.
FAILED_STATUS = {ErrorKind.PERMANENT: 400, ErrorKind.TRANSIENT: 503, ErrorKind.CONFLICT: 500,
                 ErrorKind.BUSY: 409}


def http_status(run: Run) -> tuple[int, str | None]:
    """POST /api/import's status for a run, from its outcome and error kind, and the message of the
    ``error`` object that replaces the run's error string (None: the run's JSON as it is)."""
    if run.error_kind is ErrorKind.BUSY:
        return 409, "another run holds this account's lock; retry later or send \"wait\": true"
    if run.not_found and run.plan is not None and run.plan.empty:
        return 404, f"{run.not_found} (and nothing owned for it is left to remove)"
    if run.outcome is Outcome.CONFLICT:  # something the importer does not own holds a path or an id
        return 409, run.error
    if run.error_kind is ErrorKind.TRANSIENT:
        return 503, None
    if run.outcome is Outcome.FAILED and run.error_kind is not None:
        return FAILED_STATUS[run.error_kind], None
    return 200, None


def http_runs(svc: Service, account: str | None, limit: int = 50) -> tuple[int, dict[str, Any]]:
    if account:
        try:
            account = AccountRef.parse(account).id
        except InvalidInput as exc:
            return _error(400, str(exc))
    runs = svc.state.history.list(account=account, limit=max(1, min(limit, 200)))
    return 200, {"runs": [r.to_dict() for r in runs]}


def http_run(svc: Service, run_id: str) -> tuple[int, dict[str, Any]]:
    if not run_id.isalnum() or len(run_id) > 64:
        return _error(400, "run id must be alphanumeric")
    try:
        run = svc.state.history.get(run_id)
    except KeyError:
        return _error(404, f"no run {run_id}")
    return 200, dict(run.to_dict())


def http_doctor() -> tuple[int, dict[str, Any]]:
    """GET /api/doctor: the preflight's report (never the import probe: a GET writes nothing).
    200 when every check passed or only warned, 503 when any failed (for availability monitors)."""
    from importer.doctor import FAIL, diagnose

    try:
        svc = get_service()
        settings, arm = svc.settings, svc.reconciler.arm
    except (ImporterError, SettingsError):  # the settings are what is wrong: the report says which
        settings, arm = Settings.from_env(), None
    report = diagnose(settings, arm=arm)
    return (503 if report.status == FAIL else 200), report.to_json()
