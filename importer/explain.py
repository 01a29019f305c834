"""Explain: "why is (or isn't) this model on the gateway?" from current state and run history.

Read-only. Walks the same checks the pipeline makes, in the order it makes them, and stops
at the first that fails; the verdict names it and what to do next. Never writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from importer.config import enabled, resolve_options
from importer.identity import api_id
from importer.model import (
    AccountRef,
    ImporterError,
    Kind,
    NotFound,
    RoleAssignmentSpec,
    in_scopes,
    modes_for_kind,
)
from importer.reconcile import Reconciler
from importer.render import routable_deployments
from importer.run import Outcome, Trigger


@dataclass
class Finding:
    check: str
    ok: bool | None  # None: informational
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "detail": self.detail}


@dataclass
class Explanation:
    account: str
    deployment: str | None
    on_gateway: bool = False
    verdict: str = ""
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, ok: bool | None, detail: str) -> bool:
        self.findings.append(Finding(check, ok, detail))
        return ok is not False

    def fail(self, check: str, detail: str) -> Explanation:
        self.add(check, False, detail)
        self.verdict = detail
        return self

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "deployment": self.deployment, "onGateway": self.on_gateway,
                "verdict": self.verdict, "findings": [f.to_json() for f in self.findings]}


class _Stop(Exception):
    """A check failed: the explanation already holds its finding and verdict."""


@dataclass
class _Walk:
    """What the checks learn on the way, handed from one step to the next."""

    rec: Reconciler
    ref: AccountRef
    deployment: str | None
    history: Any
    ex: Explanation
    last: Any = None
    account: Any = None
    options: Any = None
    svc: Any = None
    paths: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    kinds: set[Kind] = field(default_factory=set)

    def fail(self, check: str, detail: str) -> NoReturn:
        self.ex.fail(check, detail)
        raise _Stop


def _check_scope(w: _Walk) -> None:
    scopes = w.rec.scopes
    if scopes and not in_scopes(w.ref, scopes):
        w.fail("scope", f"{w.ref} is outside the watched scopes (IMPORTER_SCOPES): the importer "
                        "never looks at it. Add its subscription or resource group.")
    w.ex.add("scope", True, "inside the watched scopes" if scopes else "no scopes set (CLI use)")


def _note_last_run(w: _Walk) -> None:
    if w.history is None:
        w.ex.add("last run", None, "no run history available (AzureWebJobsStorage is not set)")
        return
    last = w.last = w.history.last_for(w.ref.id)
    if last is None:
        w.ex.add("last run", None, "no run recorded for this account yet")
        return
    w.ex.add("last run", last.outcome not in (Outcome.FAILED, Outcome.CONFLICT),
             f"{last.outcome} at {last.finished_at} (trigger {last.trigger}, {last.writes} writes)"
             + (f": {last.error}" if last.error else ""))
    if last.probe:
        w.ex.add("last probe", bool(last.probe.get("ok")), str(last.probe.get("summary", last.probe)))


def _check_account(w: _Walk) -> None:
    try:
        account = w.account = w.rec.arm.get_account(w.ref)
    except NotFound:
        w.fail("account", f"account {w.ref} does not exist (or the importer cannot read it)")
    if modes_for_kind(account.kind) is None:
        w.fail("kind", f"account kind is {account.kind!r}; only OpenAI and AIServices are imported")
    w.ex.add("account", True, f"kind {account.kind}, endpoint {account.endpoint}")


def _check_opt_in(w: _Walk) -> None:
    tags = w.account.tag_map
    try:
        opted_in = enabled(w.rec.settings, tags, w.ref.name)
        if opted_in:
            w.options = resolve_options(w.rec.settings, tags, account=w.ref.name)
    except ImporterError as exc:
        w.fail("options", f"{exc} — nothing is imported until it is fixed")
    if not opted_in:
        w.fail("opt-in", "opted out by tag (apim-importer=disabled), or IMPORTER_OPT_IN=true "
                         "and the account is not tagged apim-importer=enabled")
    w.ex.add("opt-in", True, "imported (not opted out)")


def _check_modes(w: _Walk) -> None:
    kind = w.account.kind
    for mode in w.options.modes:
        if mode not in (modes_for_kind(kind) or ()):
            w.fail("mode", f"mode {mode.value} cannot be served by a {kind} account")
    w.ex.add("mode", True, ", ".join(m.value for m in w.options.modes))


def _check_deployment(w: _Walk) -> None:
    if w.deployment is None:
        return
    deployments = w.account.deployments
    dep = next((d for d in deployments if d.name.lower() == w.deployment.lower()), None)
    if dep is None:
        names = ", ".join(d.name for d in deployments) or "none"
        w.fail("deployment", f"no deployment '{w.deployment}' on the account (it has: {names})")
    if dep not in routable_deployments(w.account):
        w.fail("deployment", f"deployment '{dep.name}' is not routed: {dep.unrouted_reason}")
    w.ex.add("deployment", True, f"{dep.name}: {dep.model_name} {dep.model_version}, {dep.sku}, "
                                 f"{dep.provisioning_state}")


def _check_identity(w: _Walk) -> None:
    svc = w.svc = w.rec.apim_service()
    if svc.principal_id is None:
        w.fail("apim identity", "APIM has no system-assigned identity: turn it on, or set "
                                "IMPORTER_ENABLE_APIM_IDENTITY=true")
    w.ex.add("apim identity", True, f"principal {svc.principal_id}")


def _check_apis(w: _Walk) -> None:
    last_failed = bool(w.last) and w.last.outcome is Outcome.FAILED
    for mode in w.options.modes:
        api = w.rec.arm.get_api(w.rec.apim, api_id(w.ref, mode))
        if api is None:
            w.fail("api", f"no API {api_id(w.ref, mode)} ({mode.value}) in APIM yet: the next "
                          "reconcile will create it" + (" (the last run failed; see above)"
                                                        if last_failed else ""))
        w.ex.add("api", True, f"{api.spec.path} ({len(api.spec.operations)} operations)")
        w.paths.append(api.spec.path)


def _check_plan(w: _Walk) -> None:
    plan_run = w.rec.reconcile(w.ref, dry_run=True, trigger=Trigger.CLI)
    if plan_run.error:
        w.fail("plan", plan_run.error)
    changes = plan_run.plan.changes if plan_run.plan else ()
    w.pending = [f"{c.action.value} {c.kind} {c.id}" for c in changes]
    w.kinds = {c.kind for c in changes}
    if Kind.ROLE_ASSIGNMENT in w.kinds:
        scopes = sorted({c.spec(RoleAssignmentSpec).scope for c in changes if c.kind is Kind.ROLE_ASSIGNMENT})
        w.fail("role", "APIM's identity lacks a role it needs on " + ", ".join(scopes)
                       + " (drift pending: the next reconcile assigns it)")
    if w.deployment is not None and Kind.POLICY in w.kinds:
        w.fail("drift", "the API policy differs from what it should be (the allow-list may not "
                        f"route '{w.deployment}' yet); pending: {', '.join(w.pending)}")
    if w.pending:
        w.ex.add("drift", False, f"pending: {', '.join(w.pending)} — the next reconcile repairs it")
    else:
        w.ex.add("drift", True, "APIM matches the desired state")


def _note_pools(w: _Walk) -> None:
    if w.deployment is None:
        return
    from importer import poolsync

    for line in poolsync.explain(w.rec, w.deployment):  # IMPORTER_POOL_PATH: the shared pools
        w.ex.add("pools", None, line)


def _give_verdict(w: _Walk) -> None:
    what = f"model deployment '{w.deployment}'" if w.deployment else "the account"
    gateway = w.svc.gateway_url.rstrip("/")
    w.ex.on_gateway = not w.pending or w.kinds <= {Kind.PRODUCT_LINK}
    w.ex.verdict = (f"{what} is on the gateway: " + ", ".join(f"{gateway}/{p}" for p in w.paths)
                    if w.ex.on_gateway else f"{what} is imported but drift is pending")


# The checks in the order the pipeline makes them; the first that fails ends the walk.
_STEPS: tuple[Callable[[_Walk], None], ...] = (
    _check_scope, _note_last_run, _check_account, _check_opt_in, _check_modes, _check_deployment,
    _check_identity, _check_apis, _check_plan, _note_pools, _give_verdict,
)


def explain(rec: Reconciler, ref: AccountRef, deployment: str | None = None,
            history: Any = None) -> Explanation:
    walk = _Walk(rec, ref, deployment, history, Explanation(ref.id, deployment))
    try:
        for step in _STEPS:
            step(walk)
    except _Stop:
        pass
    return walk.ex
