"""Apply: carry a Plan out through the ARM adapter, in dependency waves, ETag-guarded.

Stops after the first failed wave and reports what it did (``ApplyError.applied``). Checks first what
would fail half-way (a linked product that does not exist), so a bad plan writes nothing.
"""

from __future__ import annotations

import logging
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
    Plan,
    PolicySpec,
    ProductLinkSpec,
    RoleAssignmentSpec,
)

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


def preflight(arm: AzureArm, apim: ApimRef, plan: Plan,
              known_products: frozenset[str] = frozenset()) -> None:
    """Fail before the first write on what would otherwise fail half-way through.
    ``known_products`` were listed moments ago by the fleet pass: no need to read them again."""
    for change in plan.writes:
        if change.kind == "product_link" and change.action is Action.CREATE:
            link: ProductLinkSpec = change.desired
            if link.product_id not in known_products and not arm.product_exists(apim, link.product_id):
                raise InvalidInput(
                    f"product '{link.product_id}' does not exist in APIM {apim.name}: create it, or "
                    "remove it from IMPORTER_PRODUCTS / the apim-importer-products tag")
        if change.kind == "diagnostic":
            diag: DiagnosticSpec = change.desired
            check_logger(arm, apim, diag)


def check_logger(arm: AzureArm, apim: ApimRef, diag: DiagnosticSpec) -> None:
    """The logger a diagnostic is about to name exists and is of the kind it needs."""
    from importer.render import DIAGNOSTIC_APP_INSIGHTS

    if diag.name != DIAGNOSTIC_APP_INSIGHTS:
        return  # azuremonitor: APIM's built-in logger
    kind = arm.logger_type(apim, diag.logger)
    if kind is None:
        raise InvalidInput(
            f"logger '{diag.logger}' does not exist in APIM {apim.name}: token metrics need an "
            "Application Insights logger there (IMPORTER_APIM_LOGGER); create it (infra: "
            "apimAppInsightsLogger) or correct the setting")
    if kind.lower() != "applicationinsights":
        raise InvalidInput(
            f"logger '{diag.logger}' in APIM {apim.name} is of type {kind}, not applicationInsights: "
            "token metrics reach only Application Insights (IMPORTER_APIM_LOGGER)")


def _write(arm: AzureArm, apim: ApimRef, account: AccountRef, change: Change) -> None:
    kind, action = change.kind, change.action
    if kind == "role_assignment":
        role: RoleAssignmentSpec = change.desired
        if action is Action.DELETE:
            arm.delete_role_assignment(role, account.subscription)
        else:
            arm.create_role_assignment(role, account.subscription)
    elif kind == "backend":
        if action is Action.DELETE:
            arm.delete_backend(apim, change.id, change.etag)
        else:
            backend: BackendSpec = change.desired
            arm.put_backend(apim, backend, change.etag)
    elif kind == "api":
        if action is Action.DELETE:
            arm.delete_api(apim, change.id, change.etag)
        else:
            api: ApiSpec = change.desired
            arm.put_api(apim, api, change.etag)
    elif kind == "policy":
        policy: PolicySpec = change.desired
        arm.put_policy(apim, policy, change.etag)
    elif kind == "product_link":
        link: ProductLinkSpec = change.desired
        if action is Action.DELETE:
            arm.unlink_product(apim, link)
        else:
            arm.link_product(apim, link)
    elif kind == "diagnostic":
        arm.put_diagnostic(apim, change.desired, change.etag, create=action is Action.CREATE)
    elif kind == "subscription":
        if action is not Action.DELETE:  # made on first use by the prober, never planned
            raise ValueError("the plan only deletes subscriptions")
        arm.delete_subscription(apim, change.id, change.etag)
    else:  # pragma: no cover - KIND_ORDER is closed
        raise ValueError(f"unknown kind {kind}")


# Writes that depend on nothing else in the plan go out together: the role assignment, backends and
# the API first; then what needs the API (its policy, which also names the backends, and product
# links); deletes after, in reverse dependency order.
_WAVE = {"role_assignment": 0, "backend": 0, "api": 0, "policy": 1, "diagnostic": 1, "product_link": 1}
_DELETE_WAVE = {"subscription": 2, "product_link": 2, "policy": 3, "api": 3, "backend": 4,
                "role_assignment": 4}


def waves(plan: Plan) -> list[list[Change]]:
    """The plan's writes grouped into dependency waves, each in plan order."""
    out: dict[int, list[Change]] = {}
    for change in plan.writes:
        table = _DELETE_WAVE if change.action is Action.DELETE else _WAVE
        out.setdefault(table[change.kind], []).append(change)
    return [out[k] for k in sorted(out)]


def apply(arm: AzureArm, apim: ApimRef, plan: Plan, *, run_id: str = "-",
          known_products: frozenset[str] = frozenset()) -> ApplyResult:
    """Carry the plan out wave by wave; a wave's writes are sent together. After a failed write no
    further wave starts; the writes of its own wave that succeeded are reported as applied."""
    result = ApplyResult()
    if plan.empty:
        return result
    preflight(arm, apim, plan, known_products)
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
