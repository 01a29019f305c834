"""Explain: "why is (or isn't) this model on the gateway?" from current state and run history.

Read-only. Walks the same checks the pipeline makes, in the order it makes them, and stops
at the first that fails; the verdict names it and what to do next. Never writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from importer.config import enabled, resolve_options
from importer.identity import api_id
from importer.model import MODES_BY_KIND, AccountRef, ImporterError, NotFound
from importer.reconcile import Reconciler
from importer.render import routable_deployments


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


def explain(rec: Reconciler, ref: AccountRef, deployment: str | None = None,
            history: Any = None) -> Explanation:
    ex = Explanation(ref.id, deployment)
    what = f"model deployment '{deployment}'" if deployment else "the account"
    if rec.scopes and not any(s.contains(ref) for s in rec.scopes):
        return ex.fail("scope", f"{ref} is outside the watched scopes (IMPORTER_SCOPES): the importer "
                                "never looks at it. Add its subscription or resource group.")
    ex.add("scope", True, "inside the watched scopes" if rec.scopes else "no scopes set (CLI use)")

    last = history.last_for(ref.id) if history is not None else None
    if last is not None:
        ex.add("last run", last.outcome not in ("failed", "conflict"),
               f"{last.outcome} at {last.finished_at} (trigger {last.trigger}, {last.writes} writes)"
               + (f": {last.error}" if last.error else ""))
        if last.probe:
            ex.add("last probe", bool(last.probe.get("ok")), str(last.probe.get("summary", last.probe)))
    elif history is not None:
        ex.add("last run", None, "no run recorded for this account yet")
    else:
        ex.add("last run", None, "no run history available (AzureWebJobsStorage is not set)")

    try:
        account = rec.arm.get_account(ref)
    except NotFound:
        return ex.fail("account", f"account {ref} does not exist (or the importer cannot read it)")
    if account.kind not in MODES_BY_KIND:
        return ex.fail("kind", f"account kind is {account.kind!r}; only OpenAI and AIServices are imported")
    ex.add("account", True, f"kind {account.kind}, endpoint {account.endpoint}")
    try:
        if not enabled(rec.settings, account.tag_map, ref.name):
            return ex.fail("opt-in", "opted out by tag (apim-importer=disabled), or IMPORTER_OPT_IN=true "
                                     "and the account is not tagged apim-importer=enabled")
        options = resolve_options(rec.settings, account.tag_map, account=ref.name)
    except ImporterError as exc:
        return ex.fail("options", f"{exc} — nothing is imported until it is fixed")
    ex.add("opt-in", True, "imported (not opted out)")
    modes = ", ".join(m.value for m in options.modes)
    for mode in options.modes:
        if mode not in MODES_BY_KIND[account.kind]:
            return ex.fail("mode", f"mode {mode.value} cannot be served by a {account.kind} account")
    ex.add("mode", True, modes)

    if deployment is not None:
        dep = next((d for d in account.deployments if d.name.lower() == deployment.lower()), None)
        if dep is None:
            names = ", ".join(d.name for d in account.deployments) or "none"
            return ex.fail("deployment", f"no deployment '{deployment}' on the account (it has: {names})")
        if dep not in routable_deployments(account):
            return ex.fail("deployment", f"deployment '{dep.name}' is not routed: {dep.unrouted_reason}")
        ex.add("deployment", True, f"{dep.name}: {dep.model_name} {dep.model_version}, {dep.sku}, "
                                   f"{dep.provisioning_state}")

    svc = rec.apim_service()
    if svc.principal_id is None:
        return ex.fail("apim identity", "APIM has no system-assigned identity: turn it on, or set "
                                        "IMPORTER_ENABLE_APIM_IDENTITY=true")
    ex.add("apim identity", True, f"principal {svc.principal_id}")

    paths: list[str] = []
    for mode in options.modes:
        api = rec.arm.get_api(rec.apim, api_id(ref, mode))
        if api is None:
            return ex.fail("api", f"no API {api_id(ref, mode)} ({mode.value}) in APIM yet: the next "
                           "reconcile will create it" + (" (the last run failed; see above)"
                                                         if last and last.outcome == "failed" else ""))
        ex.add("api", True, f"{api.spec.path} ({len(api.spec.operations)} operations)")
        paths.append(api.spec.path)

    plan_run = rec.reconcile(ref, dry_run=True, trigger="cli")
    if plan_run.error:
        return ex.fail("plan", plan_run.error)
    plan = plan_run.plan
    pending = [f"{c.action.value} {c.kind} {c.id}" for c in plan.changes] if plan else []
    kinds = {c.kind for c in plan.changes} if plan else set()
    if "role_assignment" in kinds:
        scopes = sorted({c.desired.scope for c in plan.changes if c.kind == "role_assignment"} if plan
                        else set())
        return ex.fail("role", "APIM's identity lacks a role it needs on " + ", ".join(scopes)
                       + " (drift pending: the next reconcile assigns it)")
    if deployment is not None and "policy" in kinds:
        return ex.fail("drift", "the API policy differs from what it should be (the allow-list may not "
                                f"route '{deployment}' yet); pending: {', '.join(pending)}")
    if pending:
        ex.add("drift", False, f"pending: {', '.join(pending)} — the next reconcile repairs it")
    else:
        ex.add("drift", True, "APIM matches the desired state")
    if deployment is not None:
        from importer import poolsync

        for line in poolsync.explain(rec, deployment):  # IMPORTER_POOL_PATH: the shared pools
            ex.add("pools", None, line)
    gateway = svc.gateway_url.rstrip("/")
    ex.on_gateway = not pending or kinds <= {"product_link"}
    ex.verdict = (f"{what} is on the gateway: " + ", ".join(f"{gateway}/{p}" for p in paths) if ex.on_gateway
                  else f"{what} is imported but drift is pending")
    return ex
