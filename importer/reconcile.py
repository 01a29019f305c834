"""Reconcile one account: lock → read truth → render desired → plan → apply → probe → record.

Level-triggered: the caller only says which account to look at. Every trigger (event, queue,
timer, HTTP, CLI) ends here. Errors never escape as exceptions: the Run (``importer.run``) carries
the error and its kind, and each trigger decides from those enums (retry, poison, HTTP status, exit
code).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from importer import discover, identity, poolsync
from importer.apply import ApplyError, apply
from importer.azure import fetch
from importer.azure.arm import AzureArm
from importer.config import enabled, resolve_options
from importer.events import owned_keys
from importer.identity import api_id
from importer.model import (
    Account,
    AccountRef,
    Action,
    ApimRef,
    ApimService,
    BackendSpec,
    ConflictError,
    Desired,
    ErrorKind,
    ImporterError,
    InvalidInput,
    Kind,
    LinkedDocument,
    Mode,
    NotFound,
    Options,
    Plan,
    Reference,
    Scope,
    in_scopes,
)
from importer.options import parse_modes
from importer.plan import diff, offboard
from importer.probe_rules import token_limit_headers
from importer.prober import Prober, Target
from importer.reader import FreshReader, Hints, Observed, guard, reader_for
from importer.render import (
    openapi_links,
    owns_safety_grant,
    render,
    routable_deployments,
    safety_resource_id,
    safety_resource_of,
)
from importer.run import Outcome, Run, Trigger
from importer.settings import Settings

logger = logging.getLogger(__name__)

MAX_REPLANS = 3


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _safety_endpoint(options: Options, read: Future[str] | None) -> str | None:
    """The Content Safety resource's endpoint (read concurrently), or a clear error before any write."""
    if options.content_safety is None or read is None:
        return None
    resource = options.content_safety.resource_id
    try:
        endpoint = read.result()
    except NotFound as exc:
        raise InvalidInput(f"Content Safety resource {resource} (IMPORTER_CONTENT_SAFETY_ID) does not "
                           "exist or the importer cannot read it: create it, grant the importer Reader "
                           "on it, or correct the setting") from exc
    if not endpoint:
        raise InvalidInput(f"Content Safety resource {resource} has no endpoint")
    return endpoint


def missing_account(ref: AccountRef, code: str = "") -> str:
    """Which part of an account id does not exist, by name, from ARM's error code."""
    if code == "SubscriptionNotFound":
        return (f"subscription {ref.subscription} not found (or not visible to the importer's "
                f"identity), so account {ref.name} does not exist")
    if code == "ResourceGroupNotFound":
        return (f"resource group {ref.resource_group} not found in subscription {ref.subscription}, "
                f"so account {ref.name} does not exist")
    return (f"account {ref.name} not found in resource group {ref.resource_group} "
            f"(subscription {ref.subscription})")


def build_reconciler(settings: Settings, *, state: Any = None, clients: Any = None,
                     publish_outcomes: bool = False, apim_ttl_s: float = 60.0,
                     prober: Prober | None = None,
                     documents: Callable[[str], LinkedDocument] | None = None) -> Reconciler:
    """The one way a host assembles a reconciler: the function app, the CLI, the scripts and the
    tests. The ARM adapter comes from the settings (``IMPORTER_ARM_ENDPOINT`` points every client at
    the stand-in; ``clients``: already built ones, e.g. with another credential or pacing), the APIM
    target from ``IMPORTER_APIM_ID``, the locks, run history and owned-object index from ``state``
    (``importer.state``; None: no lock, nothing recorded), and outcome events from
    ``IMPORTER_EVENT_TOPIC_ENDPOINT`` when ``publish_outcomes``."""
    from importer.azure.clients import Clients

    if not settings.apim_id:
        raise InvalidInput("no APIM instance: set IMPORTER_APIM_ID to the APIM service's resource id "
                           "(or pass --apim to python -m importer)")
    publish = None
    if publish_outcomes and settings.get("IMPORTER_EVENT_TOPIC_ENDPOINT"):
        from importer.azure.outcomes import OutcomePublisher

        publish = OutcomePublisher(settings.get("IMPORTER_EVENT_TOPIC_ENDPOINT"))
    return Reconciler(settings, AzureArm(clients if clients is not None else Clients(settings)),
                      ApimRef.parse(settings.apim_id),
                      locks=getattr(state, "locks", None), history=getattr(state, "history", None),
                      owned=getattr(state, "owned", None), apim_ttl_s=apim_ttl_s, publish=publish,
                      prober=prober, documents=documents)


class Reconciler:
    """Holds what every run shares: settings, the ARM adapter, the APIM target, state ports."""

    def __init__(self, settings: Settings, arm: AzureArm, apim: ApimRef, *,
                 locks: Any = None, history: Any = None, owned: Any = None, apim_ttl_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 publish: Callable[[Run], None] | None = None,
                 prober: Prober | None = None,
                 documents: Callable[[str], LinkedDocument] | None = None) -> None:
        self.settings = settings
        self.arm = arm
        self.apim = apim
        self.locks = locks
        self.history = history
        self.owned = owned  # OwnedIndex: which account owns an object, for events on our objects
        self.publish = publish
        # the official OpenAPI documents by URL: this reconciler's cache of downloads, or the caller's
        self.documents = documents if documents is not None else fetch.Cache().get
        # IMPORTER_PROBE decides (off → None); tests may hand in their own.
        self.prober = prober if prober is not None else Prober.from_settings(settings, arm, apim)
        self.scopes = tuple(Scope.parse(s) for s in settings.scopes)
        self._apim_ttl_s = apim_ttl_s
        self._clock = clock
        self._apim_cache: dict[bool, tuple[float, ApimService]] = {}
        self._apim_lock = threading.Lock()

    # -- shared reads ------------------------------------------------------------------------------

    def apim_service(self, *, check_cache: bool = False) -> ApimService:
        """APIM's identity and cache, read once per TTL (the fleet pass shares one read)."""
        cached = self.cached_apim_service(check_cache=check_cache)
        if cached is not None:
            return cached
        svc = self.arm.get_apim(self.apim, check_cache=check_cache)
        with self._apim_lock:
            self._apim_cache[check_cache] = (self._clock(), svc)
        return svc

    def cached_apim_service(self, *, check_cache: bool = False) -> ApimService | None:
        """The APIM service from the cache if it is fresh, else None (no read)."""
        with self._apim_lock:
            hit = self._apim_cache.get(check_cache)
            if hit and self._clock() - hit[0] < self._apim_ttl_s:
                return hit[1]
        return None

    def _service(self, run: Run, check_cache: bool, enable_identity: bool,
                 dry_run: bool) -> ApimService:
        """APIM's own word on its identity (and cache); turns the identity on if asked to."""
        svc = self.apim_service(check_cache=check_cache)
        if svc.principal_id is None and enable_identity and not dry_run:
            self.arm.enable_apim_identity(self.apim)
            run.writes += 1
            run.notes.append("turned on APIM's system-assigned identity")
            self.forget_apim()
            svc = self.apim_service(check_cache=check_cache)
        return svc

    def _cached_principal(self) -> str | None:
        """APIM's principal from a fresh cache entry (either kind), else None (no read)."""
        for check_cache in (False, True):
            svc = self.cached_apim_service(check_cache=check_cache)
            if svc is not None:
                return svc.principal_id
        return None

    def _likely_modes(self) -> tuple[Mode, ...]:
        """The modes the settings name: the APIs whose operations and policy are read before the
        account's tags are known (a tag naming others costs a read more, never a wrong answer)."""
        try:
            return parse_modes(self.settings.get("IMPORTER_MODE"), "setting IMPORTER_MODE")
        except InvalidInput:
            return (Mode.AZURE_OPENAI,)

    def forget_apim(self) -> None:
        with self._apim_lock:
            self._apim_cache.clear()

    def check_scope(self, ref: AccountRef) -> None:
        if self.scopes and not in_scopes(ref, self.scopes):
            raise InvalidInput(f"account {ref} is outside the watched scopes (IMPORTER_SCOPES)")

    # -- one run -----------------------------------------------------------------------------------

    def reconcile(self, ref: AccountRef, *, dry_run: bool = False,
                  overrides: Mapping[str, object] | None = None, trigger: Trigger = Trigger.CLI,
                  request_id: str = "", lock_wait: bool = True,
                  account: Account | None = None,
                  snapshot: discover.Snapshot | None = None, pools: bool | None = None,
                  repair_probe_key: bool = False) -> Run:
        """One run for ``ref``. ``account`` (from a listing) and ``snapshot`` (bulk listings of a
        fleet pass) save reads; they never decide a write: a plan with changes is re-read fresh.
        ``pools``: also reconcile the shared pools (default: unless the timer's pass, which does it
        once for all)."""
        run = Run(run_id=uuid.uuid4().hex[:12], account=ref.id, trigger=trigger, started_at=_now(),
                  request_id=request_id, sync_pools=(trigger != Trigger.TIMER) if pools is None else pools)
        start = time.perf_counter()
        try:
            self.check_scope(ref)
            with self._lock(ref, lock_wait):
                target = self._run(run, ref, dry_run, overrides, account, snapshot)
                if repair_probe_key and not dry_run and run.outcome in (Outcome.NOOP, Outcome.APPLIED):
                    self._repair_probe_key(run, ref)
            if target is not None and run.changed_routing():
                self._probe(run, target)
        except ImporterError as exc:
            from importer.state.ports import LockBusy

            if isinstance(exc, NotFound):
                exc = self._missing_parent(exc)
            if isinstance(exc, LockBusy):
                run.fail(str(exc), ErrorKind.BUSY, Outcome.SKIPPED)
            else:
                run.fail(str(exc), exc.kind)
            if isinstance(exc, ApplyError):
                run.writes += exc.result.writes
                run.applied += exc.result.applied
            logger.warning("run %s account %s: %s error: %s", run.run_id, ref, run.error_kind, exc)
        except Exception as exc:  # a bug: record it rather than lose the run
            logger.exception("run %s account %s: unexpected error", run.run_id, ref)
            run.fail(f"{type(exc).__name__}: {exc}", ErrorKind.PERMANENT)
        run.duration_ms = int((time.perf_counter() - start) * 1000)
        run.finished_at = _now()
        logger.info("run %s account %s trigger %s: %s, %d changes, %d writes, %d ms", run.run_id, ref,
                    trigger, run.outcome, len(run.plan.changes) if run.plan else 0, run.writes,
                    run.duration_ms)
        self._record(run)
        if self.publish is not None and not dry_run:
            self.publish(run)
        return run

    def _repair_probe_key(self, run: Run, ref: AccountRef) -> None:
        """A hand edit of the importer's APIM subscription (the key ``test`` and the probes use): the
        plan does not hold that key (it is made on first use), so it is put back here, under the
        account's lock: active again, on the API it was scoped to. A deleted key is left gone: its
        next use makes it again. Best effort: the next use of the key re-activates it anyway."""
        want = identity.probe_subscription(ref)
        try:
            have = self.arm.get_subscription(self.apim, want.sid)
            if (have is None or not identity.owns_subscription(have.spec, ref)
                    or have.spec.state.lower() == "active"):
                return
            scope = "/apis/" + have.spec.scope.rstrip("/").rsplit("/apis/", 1)[-1]
            self.arm.put_subscription(self.apim, replace(want, scope=scope), have.etag)
        except ImporterError as exc:
            run.notes.append(f"could not re-activate the probe key {want.sid}: {exc}")
            return
        run.writes += 1
        run.outcome = Outcome.APPLIED
        run.notes.append(f"re-activated the probe key {want.sid} (it was {have.spec.state})")
        logger.info("run %s account %s: re-activated the probe key %s", run.run_id, ref, want.sid)

    def _missing_parent(self, exc: NotFound) -> ImporterError:
        """A read under the APIM service found nothing: when the service itself is missing, say
        that (by name) rather than which of its children the first read asked for."""
        try:
            self.arm.get_apim(self.apim)
        except NotFound as missing:
            return missing
        except ImporterError:
            pass
        return exc

    def _lock(self, ref: AccountRef, wait: bool) -> AbstractContextManager[Any]:
        if self.locks is None:
            return nullcontext()
        lock: AbstractContextManager[Any] = self.locks.hold(ref.key, wait=wait)
        return lock

    def _run(self, run: Run, ref: AccountRef, dry_run: bool,
             overrides: Mapping[str, object] | None, account: Account | None,
             snapshot: discover.Snapshot | None) -> Target | None:
        for attempt in range(MAX_REPLANS):
            try:
                return self._once(run, ref, dry_run, overrides, account, snapshot)
            except ApplyError as exc:
                if not isinstance(exc.cause, ConflictError) or attempt == MAX_REPLANS - 1:
                    raise
                # An ETag moved under us: read again and re-plan; keep the writes already made.
                run.writes += exc.result.writes
                run.applied += exc.result.applied
                run.notes.append(f"re-planned after a concurrent change: {exc.cause}")
                account, snapshot = None, None
        return None  # pragma: no cover - the loop returns or raises

    def _once(self, run: Run, ref: AccountRef, dry_run: bool,
              overrides: Mapping[str, object] | None, account: Account | None,
              snapshot: discover.Snapshot | None) -> Target | None:
        """One read → render → plan → apply → record pass; returns where to probe when something
        was applied."""
        reader = reader_for(self.arm, self.apim, missing_account, snapshot)
        hints = Hints(account=account, modes=self._likely_modes(), principal=self._cached_principal(),
                      opted_in=account is None or enabled(self.settings, account.tag_map, ref.name),
                      links=bool(self.settings.get("IMPORTER_PRODUCTS")))
        seen = reader.read(ref, hints)
        if seen.skip:
            run.notes.append("opted out by tag")
            self._apply_plan(run, Plan(ref, ()), dry_run, offboarding=True)
            return None
        acct = seen.account
        if acct is None or not enabled(self.settings, acct.tag_map, ref.name):
            if seen.not_found:
                run.not_found = seen.not_found
            run.notes.append(run.not_found or "account not found" if acct is None else "opted out by tag")
            self._offboard(run, ref, seen.prefetch, dry_run, sweep=snapshot is None)
            return None
        return self._import(run, reader, ref, acct, seen, dry_run, overrides)

    def _offboard(self, run: Run, ref: AccountRef, pf: discover.Prefetch, dry_run: bool,
                  sweep: bool) -> None:
        """Delete what we made for an account gone or opted out."""
        principal = self._cached_principal() if pf.roles is not None else self.apim_service().principal_id
        actual = discover.read_owned(self.arm, self.apim, ref, principal, pf)
        if principal is None and identity.needs_principal(actual.role_assignments, ref):
            # An assignment whose mark predates naming the APIM instance: ours only if it is
            # of this instance's principal.
            principal = self.apim_service().principal_id
        actual, plan = guard(self.arm, self.apim, ref, actual, offboard(ref, actual, self.apim, principal),
                             lambda a: offboard(ref, a, self.apim, principal))
        self._pools(run, dry_run)  # first: a pool may not name a backend about to go
        self._apply_plan(run, plan, dry_run, offboarding=True, sweep=sweep)

    def _options(self, run: Run, ref: AccountRef, acct: Account,
                 overrides: Mapping[str, object] | None) -> Options:
        options = resolve_options(self.settings, acct.tag_map, overrides, account=ref.name)
        if poolsync.pool_path(self):  # a pool member: its breaker trips on 429/5xx, honours Retry-After
            options = replace(options, circuit_breaker=True)
        if options.token_metrics is not None and options.apim_logger is None:
            run.notes.append("token metrics on without IMPORTER_APIM_LOGGER: they reach Application "
                             "Insights only through a service-level diagnostic with metrics on")
        return options

    def _import(self, run: Run, reader: FreshReader, ref: AccountRef, acct: Account, seen: Observed,
                dry_run: bool, overrides: Mapping[str, object] | None) -> Target | None:
        """render → diff → apply → record for an account to import."""
        arm, pf, snapshot = self.arm, seen.prefetch, reader.snapshot
        options = self._options(run, ref, acct, overrides)
        safety: Future[str] | None = None
        if options.content_safety is not None:  # its endpoint, read alongside the rest
            safety = arm.submit(arm.resource_endpoint, options.content_safety.resource_id)
        # Official documents: fetched (kept by self.documents, a cache per reconciler) for render.
        linked = tuple(self.documents(link) for link in openapi_links(options))
        run.notes += [f"deployment {d.name} not routed: {d.unrouted_reason}"
                      for d in acct.deployments if d.unrouted_reason]
        check_cache = options.semantic_cache is not None
        pf, product_checks = self._preflight(ref, options, pf)
        svc, speculative = self._principal(run, ref, options, pf, snapshot, dry_run)
        safety_endpoint = _safety_endpoint(options, safety)
        desired = render(acct, svc, options, linked, safety_endpoint=safety_endpoint)
        seen = replace(seen, prefetch=pf)
        actual = reader.actual(desired, seen)
        plan = diff(desired, actual, adopt=options.adopt)
        if speculative and plan.changes:
            # Something to do: decide it on the APIM service's own word, not on our assignment's.
            # Rendered again only when that word differs from the guess (render reads nothing else
            # of the service than its principal and its cache).
            guess, svc = svc, self._service(run, check_cache, options.enable_apim_identity, dry_run)
            if (svc.principal_id, svc.has_external_cache) != (guess.principal_id, guess.has_external_cache):
                desired = render(acct, svc, options, linked, safety_endpoint=safety_endpoint)
                actual = reader.actual(desired, seen)
                plan = diff(desired, actual, adopt=options.adopt)
        known_products = frozenset(snapshot.product_apis) if snapshot else frozenset()
        known_products |= {p for p, exists in product_checks.items() if exists.result()}
        want = desired
        actual, plan = reader.settle(desired, actual, plan, lambda a: diff(want, a, adopt=options.adopt),
                                     modes=options.modes, principal=svc.principal_id)
        self._apply_plan(run, plan, dry_run, offboarding=False, known_products=known_products,
                     references=desired.references, sweep=snapshot is None)
        if not dry_run and run.outcome in (Outcome.APPLIED, Outcome.NOOP):
            self._remember(run, ref, desired)
        probe = not (dry_run or self.prober is None or run.outcome is not Outcome.APPLIED)
        self._pools(run, dry_run)
        if not probe:
            return None
        return Target(ref, svc.gateway_url, desired.api.path, options.mode, desired.api.key_header,
                      token_limit_headers(desired.policy.xml), routable_deployments(acct))

    def _preflight(self, ref: AccountRef, options: Options,
                   pf: discover.Prefetch) -> tuple[discover.Prefetch, dict[str, Future[bool]]]:
        """About to create the API (fresh reads show none): the path-clash listing and the
        products' existence (the apply's preflight) go out together, alongside the APIM read."""
        if pf.mine is None or not {api_id(ref, m).lower() for m in options.modes} - {
                a.api_id.lower() for a in pf.mine.result()}:
            return pf, {}
        arm = self.arm
        return (replace(pf, apis=arm.submit(arm.list_apis, self.apim)),
                {p: arm.submit(arm.product_exists, self.apim, p) for p in options.products})

    def _principal(self, run: Run, ref: AccountRef, options: Options, pf: discover.Prefetch,
                   snapshot: discover.Snapshot | None, dry_run: bool) -> tuple[ApimService, bool]:
        """The APIM service to render with, and whether it is a guess to confirm if the plan has
        something to do."""
        check_cache = options.semantic_cache is not None
        cached = self.cached_apim_service(check_cache=check_cache)
        if cached is None and snapshot is None and pf.roles is not None:
            # A cold single-account run: APIM's principal is taken from our own assignment on the
            # account (one read we make anyway), and the APIM service is read only if the plan has
            # something to do. An identity change alone is found by the next fleet pass.
            principal = identity.owned_principal(pf.roles.result(), ref, self.apim)
            if principal is not None:
                return ApimService(ref=self.apim, principal_id=principal,
                                   has_external_cache=check_cache), True
        return cached or self._service(run, check_cache, options.enable_apim_identity, dry_run), False

    def _pools(self, run: Run, dry_run: bool) -> None:
        """Reconcile the shared pools from this run (an event updates them in the run it triggers)."""
        if not run.sync_pools:
            return
        # A dry run's pool plan counts the backends the account's own plan would create.
        assume = frozenset(c.id.lower() for c in run.plan.changes if c.kind is Kind.BACKEND
                           and c.action is Action.CREATE) if dry_run and run.plan else frozenset()
        result = poolsync.sync(self, dry_run=dry_run, run_id=run.run_id, assume=assume)
        if result is None:
            return
        run.pools = result.to_json()
        if result.plan is not None:
            run.notes += [f"pools: conflict: {c.reason}" for c in result.plan.conflicts]
        run.writes += result.writes
        run.applied += result.applied
        if result.writes and run.outcome is Outcome.NOOP:
            run.outcome = Outcome.APPLIED
        elif dry_run and result.plan is not None and not result.plan.empty and run.outcome is Outcome.NOOP:
            run.outcome = Outcome.PLANNED

    def _probe(self, run: Run, target: Target) -> None:
        """Probe the gateway after an apply. Never fails the run: a failed or broken probe is
        recorded (not ok) and logged as a WARNING."""
        assert self.prober is not None
        try:
            record, note = self.prober.after_apply(target)
        except Exception as exc:  # an unreachable ARM or a bug: the apply stands
            record, note = {"ok": False, "kind": self.prober.level, "status": None, "latency_ms": 0,
                            "summary": f"probe failed to run: {exc}", "checked_at": _now()}, None
        if note:
            run.notes.append(note)
        if record is None:
            return
        run.probe = record
        if record["ok"]:
            logger.info("run %s account %s: %s", run.run_id, target.ref, record["summary"])
        else:
            logger.warning("run %s account %s: %s", run.run_id, target.ref, record["summary"])

    def _apply_plan(self, run: Run, plan: Plan, dry_run: bool, *, offboarding: bool,
                    known_products: frozenset[str] = frozenset(),
                    references: tuple[Reference, ...] = (), sweep: bool = True) -> None:
        """Record the plan on the run, carry it out (not in a dry run), sweep the Content Safety
        grants its deleted backends leave unused, and set the run's outcome."""
        run.set_plan(plan)
        if dry_run:
            run.outcome = (Outcome.PLANNED if not plan.empty
                           else Outcome.CONFLICT if plan.conflicts else Outcome.NOOP)
            return
        result = apply(self.arm, self.apim, plan, run_id=run.run_id, known_products=known_products,
                       references=references)
        run.writes += result.writes
        run.applied += result.applied
        gone = {resource for c in result.applied if c.kind is Kind.BACKEND and c.action is Action.DELETE
                if (resource := safety_resource_of(c.spec(BackendSpec).description))}
        if sweep and gone:
            # A Content Safety backend went: its resource's grant goes too if no API uses it.
            try:
                removed = self.sweep_safety_grants(gone)
            except ImporterError as exc:  # the run's own writes stand; the fleet pass tries again
                logger.warning("run %s: could not remove unused Content Safety grants: %s", run.run_id, exc)
                run.notes.append(f"unused Content Safety grants not removed: {exc}")
                removed = []
            for scope in removed:
                run.writes += 1
                run.notes.append(f"removed APIM's Cognitive Services User on {scope}: no imported API "
                                 "uses that Content Safety resource any more")
        if plan.conflicts:
            run.fail("; ".join(c.reason for c in plan.conflicts), ErrorKind.PERMANENT, Outcome.CONFLICT)
        elif result.writes or run.writes:
            run.outcome = Outcome.OFFBOARDED if offboarding else Outcome.APPLIED
        else:
            run.outcome = Outcome.NOOP

    def sweep_safety_grants(self, candidates: Iterable[str] | None = None,
                            dry_run: bool = False) -> list[str]:
        """Delete APIM's marked role assignments on Content Safety resources that no owned safety
        backend names any more; returns their scopes. ``candidates``: the resources to look at (those
        whose backends a run just deleted; read at each resource's scope, which Reader there allows).
        None (a fleet pass): the marked grants in the watched subscriptions, and the configured one."""
        principal = self.apim_service().principal_id
        if principal is None:
            return []
        in_use = set()
        for backend in self.arm.list_backends(self.apim):
            resource = safety_resource_of(backend.description)
            if resource and identity.owned_account(backend.description, self.apim):
                in_use.add(resource.lower())
        if candidates is None:
            found = {r.scope for sub in sorted({s.subscription.lower() for s in self.scopes})
                     for r in self.arm.list_role_assignments_in_subscription(sub, principal)
                     if owns_safety_grant(r.description, self.apim)}
            candidates = found | {self.settings.get("IMPORTER_CONTENT_SAFETY_ID")}
        # Only Content Safety account ids reach ARM's URLs (a scope there is not quoted).
        checked = {s for c in candidates if (s := safety_resource_id(c)) is not None}
        gone: list[str] = []
        for scope in sorted(s for s in checked if s.lower() not in in_use):
            sub = AccountRef.parse(scope).subscription
            try:
                roles = self.arm.list_role_assignments(scope, sub, principal)
            except NotFound:
                continue  # the resource is gone, and its assignments with it
            for role in roles:
                if owns_safety_grant(role.description, self.apim):
                    if not dry_run:
                        self.arm.delete_role_assignment(role, sub)
                    gone.append(role.scope)
        return gone

    def _remember(self, run: Run, ref: AccountRef, desired: Desired) -> None:
        """Index this account's objects by their ownership keys, so an event on one of them (a hand
        edit) finds the account without an ARM read. Best effort, like the history."""
        if self.owned is None:
            return
        try:
            self.owned.remember(ref.id, owned_keys(desired, identity.probe_subscription_id(ref)))
        except Exception:  # a missing entry only means the timer, not an event, repairs that edit
            logger.exception("run %s: could not index the objects of %s", run.run_id, ref)

    def _record(self, run: Run) -> None:
        if self.history is None:
            return
        try:
            self.history.record(run)
        except Exception:  # history is best effort: never turn a good run into a failure
            logger.exception("run %s: could not record the run history", run.run_id)
