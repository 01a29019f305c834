"""Apply: carry a Plan out through the ARM adapter, in dependency waves, ETag-guarded.

Stops after the first failed wave and reports what it did (``ApplyError.applied``). Checks first what
would fail half-way (a product, a policy fragment the plan names but does not make), so a bad plan
writes nothing. Product links go last, once the policy is in place. An import that replaced what the
importer owns (APIM takes an imported API's description from the document) is followed by a write of
the API's properties.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from importer.azure.arm import AzureArm
from importer.model import (
    AccountRef,
    Action,
    ApimRef,
    ApiSpec,
    BackendSpec,
    Change,
    DiagnosticSpec,
    ImporterError,
    InvalidInput,
    Kind,
    Plan,
    PolicySpec,
    ProductLinkSpec,
    Reference,
    RoleAssignmentSpec,
)
from importer.plan import api_diff
from importer.render import DIAGNOSTIC_APP_INSIGHTS

logger = logging.getLogger(__name__)


@dataclass
class ApplyResult:
    applied: list[Change] = field(default_factory=list)
    writes: int = 0


class ApplyError(ImporterError):
    """A write failed; ``applied`` lists what had been done before it. Carries the cause's kind."""

    def __init__(self, cause: ImporterError, result: ApplyResult, change: Change) -> None:
        super().__init__(f"{change.action.value} {change.kind} {change.id} failed: {cause}")
        self.cause = cause
        self.result = result
        self.change = change
        self.kind = cause.kind


# What each kind of reference is checked with, and which writes need it: a plan that makes one of
# those writes checks the reference before its first write (a missing one: a clear error, 0 writes).
# Content safety's resource and the APIM logger join this table with their features.
ReferenceCheck = Callable[[AzureArm, ApimRef, str], bool]
REFERENCE_CHECKS: dict[str, tuple[tuple[Kind, ...], ReferenceCheck, str]] = {
    "product": ((Kind.PRODUCT_LINK,), lambda arm, apim, i: arm.product_exists(apim, i),
                "product '{id}' does not exist in APIM {apim}: create it, or remove it from "
                "IMPORTER_PRODUCTS / the apim-importer-products tag"),
    "policy_fragment": ((Kind.POLICY,), lambda arm, apim, i: arm.fragment_exists(apim, i),
                        "policy fragment '{id}' does not exist in APIM {apim}: create it, or change "
                        "IMPORTER_POLICY_FRAGMENT"),
}


def preflight(arm: AzureArm, apim: ApimRef, plan: Plan, known_products: frozenset[str] = frozenset(),
              references: Iterable[Reference] = ()) -> None:
    """Fail before the first write on what would otherwise fail half-way through: every object the
    plan's writes name but do not make. ``known_products`` were listed moments ago by the fleet pass
    or checked alongside the run's reads: no need to read them again."""
    kinds = {c.kind for c in plan.writes if c.action is not Action.DELETE}
    wanted = [r for r in references if r.kind in REFERENCE_CHECKS
              and kinds & set(REFERENCE_CHECKS[r.kind][0])
              and not (r.kind == "product" and r.id in known_products)]
    # Product links named in the plan are references too, whatever the caller passed.
    for change in plan.writes:
        if change.kind is Kind.PRODUCT_LINK and change.action is Action.CREATE:
            link = change.spec(ProductLinkSpec)
            ref = Reference("product", link.product_id)
            if link.product_id not in known_products and ref not in wanted:
                wanted.append(ref)
    checks = [(r, arm.submit(REFERENCE_CHECKS[r.kind][1], arm, apim, r.id)) for r in wanted]
    missing = [r for r, exists in checks if not exists.result()]
    if missing:
        raise InvalidInput("; ".join(REFERENCE_CHECKS[r.kind][2].format(id=r.id, apim=apim.name)
                                     for r in missing) + " (nothing was written)")
    for change in plan.writes:
        if change.kind is Kind.DIAGNOSTIC:
            check_logger(arm, apim, change.spec(DiagnosticSpec))


def check_logger(arm: AzureArm, apim: ApimRef, diag: DiagnosticSpec) -> None:
    """The logger a diagnostic is about to name exists and is of the kind it needs."""
    if diag.name != DIAGNOSTIC_APP_INSIGHTS:
        return  # azuremonitor: APIM's built-in logger
    kind = arm.logger_type(apim, diag.logger)
    if kind is None:
        raise InvalidInput(
            f"logger '{diag.logger}' does not exist in APIM {apim.name}: token metrics need an "
            "Application Insights logger there (IMPORTER_APIM_LOGGER); create it (infra: "
            "apimAppInsightsLogger) or correct the setting (nothing was written)")
    if kind.lower() != "applicationinsights":
        raise InvalidInput(
            f"logger '{diag.logger}' in APIM {apim.name} is of type {kind}, not applicationInsights: "
            "token metrics reach only Application Insights (IMPORTER_APIM_LOGGER; nothing was written)")


# -- one write per kind: the table apply dispatches on ------------------------------------------

Writer = Callable[[AzureArm, ApimRef, AccountRef, Change], None]


def _write_role(arm: AzureArm, apim: ApimRef, account: AccountRef, change: Change) -> None:
    role = change.spec(RoleAssignmentSpec)
    if change.action is Action.DELETE:
        arm.delete_role_assignment(role, account.subscription)
    else:
        arm.create_role_assignment(role, account.subscription)


def _write_backend(arm: AzureArm, apim: ApimRef, account: AccountRef, change: Change) -> None:
    if change.action is Action.DELETE:
        arm.delete_backend(apim, change.id, change.etag)
    else:
        arm.put_backend(apim, change.spec(BackendSpec), change.etag)


def _write_api(arm: AzureArm, apim: ApimRef, account: AccountRef, change: Change) -> None:
    if change.action is Action.DELETE:
        arm.delete_api(apim, change.id, change.etag)
        return
    api = change.spec(ApiSpec)
    held = arm.put_api(apim, api, change.etag)
    # APIM takes an imported API's description (and, without one in the PUT, its service URL) from
    # the document: what the importer owns is set again when the import lost it.
    if api_diff(held, api, operations=False):
        arm.put_api(apim, api, "*", document=False)


def _write_policy(arm: AzureArm, apim: ApimRef, account: AccountRef, change: Change) -> None:
    arm.put_policy(apim, change.spec(PolicySpec), change.etag)


def _write_link(arm: AzureArm, apim: ApimRef, account: AccountRef, change: Change) -> None:
    link = change.spec(ProductLinkSpec)
    if change.action is Action.DELETE:
        arm.unlink_product(apim, link)
    else:
        arm.link_product(apim, link)


def _write_diagnostic(arm: AzureArm, apim: ApimRef, account: AccountRef, change: Change) -> None:
    arm.put_diagnostic(apim, change.spec(DiagnosticSpec), change.etag, create=change.action is Action.CREATE)


def _write_subscription(arm: AzureArm, apim: ApimRef, account: AccountRef, change: Change) -> None:
    if change.action is not Action.DELETE:  # made on first use by the prober, never planned
        raise ValueError("the plan only deletes subscriptions")
    arm.delete_subscription(apim, change.id, change.etag)


# Every kind an account's plan holds (pools have their own table, in poolsync; tested).
WRITERS: dict[Kind, Writer] = {
    Kind.ROLE_ASSIGNMENT: _write_role,
    Kind.BACKEND: _write_backend,
    Kind.API: _write_api,
    Kind.POLICY: _write_policy,
    Kind.DIAGNOSTIC: _write_diagnostic,
    Kind.PRODUCT_LINK: _write_link,
    Kind.SUBSCRIPTION: _write_subscription,
}


def _write(arm: AzureArm, apim: ApimRef, account: AccountRef, change: Change) -> None:
    writer = WRITERS.get(change.kind)
    if writer is None:
        raise ValueError(f"an account's plan holds no {change.kind.value} changes")
    writer(arm, apim, account, change)


# Writes that depend on nothing else in the plan go out together: the role assignment, backends and
# the API first; then what needs the API (its policy, which also names the backends, and product
# links); deletes after, in reverse dependency order.
# Product links come last: no consumer reaches an API before its policy is in place. An API of
# this account whose path a new API takes (its mode removed) is deleted before anything else.
_WAVE = {Kind.ROLE_ASSIGNMENT: 1, Kind.BACKEND: 1, Kind.API: 1, Kind.POLICY: 2, Kind.DIAGNOSTIC: 2,
         Kind.PRODUCT_LINK: 3}
_DELETE_WAVE = {Kind.SUBSCRIPTION: 4, Kind.PRODUCT_LINK: 4, Kind.POLICY: 5, Kind.API: 5, Kind.BACKEND: 6,
                Kind.ROLE_ASSIGNMENT: 6}


def waves(plan: Plan) -> list[list[Change]]:
    """The plan's writes grouped into dependency waves, each in plan order."""
    out: dict[int, list[Change]] = {}
    new_paths = {c.spec(ApiSpec).path.strip("/").lower() for c in plan.writes
                 if c.kind is Kind.API and c.action is Action.CREATE}
    for change in plan.writes:
        table = _DELETE_WAVE if change.action is Action.DELETE else _WAVE
        wave = table[change.kind]
        if (change.kind is Kind.API and change.action is Action.DELETE
                and change.spec(ApiSpec).path.strip("/").lower() in new_paths):
            wave = 0
        out.setdefault(wave, []).append(change)
    return [out[k] for k in sorted(out)]


def apply(arm: AzureArm, apim: ApimRef, plan: Plan, *, run_id: str = "-",
          known_products: frozenset[str] = frozenset(), references: Iterable[Reference] = ()) -> ApplyResult:
    """Carry the plan out wave by wave; a wave's writes are sent together. After a failed write no
    further wave starts; the writes of its own wave that succeeded are reported as applied."""
    result = ApplyResult()
    if plan.empty:
        return result
    preflight(arm, apim, plan, known_products, references)
    for wave in waves(plan):
        if len(wave) == 1:
            outcomes: list[ImporterError | None] = [_attempt(arm, apim, plan.account, wave[0])]
        else:
            futures = [arm.submit(_attempt, arm, apim, plan.account, c) for c in wave]
            outcomes = [f.result() for f in futures]
        failed: tuple[Change, ImporterError] | None = None
        for change, error in zip(wave, outcomes, strict=True):
            if error is None:
                result.writes += 1
                result.applied.append(change)
                logger.info("run %s: %s %s %s (%s)", run_id, change.action.value, change.kind,
                            change.id, change.reason)
            elif failed is None:
                failed = (change, error)
        if failed is not None:
            change, error = failed
            logger.warning("run %s: %s %s %s failed after %d writes: %s", run_id, change.action.value,
                           change.kind, change.id, result.writes, error)
            raise ApplyError(error, result, change) from error
    return result


def _attempt(arm: AzureArm, apim: ApimRef, account: AccountRef, change: Change) -> ImporterError | None:
    try:
        _write(arm, apim, account, change)
    except ImporterError as exc:
        return exc
    return None
