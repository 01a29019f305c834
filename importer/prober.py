"""Prober: requests through the gateway with a key the importer owns, after an apply (the probe) and
for ``python -m importer test``.

Edge module: the key's subscription is read, made on first use and its key listed through the ARM
adapter; requests go through the gateway adapter; importer/probe_rules.py decides what to send and what
answers mean. The key lives in a local variable for one call: never logged, stored, returned or
put in an error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from importer import probe_rules as rules
from importer.azure import gateway
from importer.azure.arm import AzureArm
from importer.config import resolve_options
from importer.identity import account_prefix, api_id, mode_of_api, owns_subscription, probe_subscription
from importer.model import (
    AccountRef,
    ApimRef,
    ConflictError,
    Deployment,
    InvalidInput,
    Mode,
    NotFound,
)
from importer.probe_rules import Answer, CallResult, ProbeRequest
from importer.render import routable_deployments
from importer.settings import Settings

logger = logging.getLogger(__name__)

LEVELS = ("off", "routing", "call")
Send = Callable[..., Answer]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def level(settings: Settings) -> str:
    value = settings.get("IMPORTER_PROBE").strip().lower() or "routing"
    if value not in LEVELS:
        raise InvalidInput(f"IMPORTER_PROBE={value!r}: expected one of {', '.join(LEVELS)}")
    return value


@dataclass(frozen=True)
class Target:
    """Where to send: the account's API on the gateway, and what its policy adds to answers."""

    ref: AccountRef
    gateway_url: str
    api_path: str
    mode: Mode
    key_header: str = "api-key"
    token_headers: tuple[str, ...] = ()
    deployments: tuple[Deployment, ...] = ()  # routable, for IMPORTER_PROBE=call


@dataclass
class GatewayReport:
    """``python -m importer test``: one result per deployment tried."""

    account: str
    gateway_url: str
    api_path: str
    mode: str
    key: str  # where the key came from, never the key
    results: list[CallResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        tried = [r for r in self.results if r.source != "skipped"]
        return bool(tried) and all(r.ok for r in tried)

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "gateway": self.gateway_url, "apiPath": self.api_path,
                "mode": self.mode, "key": self.key, "ok": self.ok, "notes": self.notes,
                "results": [r.to_json() for r in self.results]}


class Prober:
    """Sends probe requests. ``send`` is the gateway adapter (a seam for tests); against the local
    stand-in (``local``) only a loopback gateway is ever called."""

    def __init__(self, arm: AzureArm, apim: ApimRef, *, level: str = "routing", local: bool = False,
                 send: Send = gateway.send, attempts: int = 3, retry_wait_s: float = 2.0,
                 timeout_s: float = 15.0) -> None:
        self.arm = arm
        self.apim = apim
        self.level = level
        self.local = local
        self.send = send
        self.attempts = max(1, attempts)
        self.retry_wait_s = retry_wait_s
        self.timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: Settings, arm: AzureArm, apim: ApimRef) -> Prober | None:
        """None when IMPORTER_PROBE is off."""
        chosen = level(settings)
        if chosen == "off":
            return None
        local = bool(arm.clients.local)
        return cls(arm, apim, level=chosen, local=local, retry_wait_s=0.05 if local else 2.0)

    # -- where and with what key ------------------------------------------------------------------

    def gateway_problem(self, url: str) -> str | None:
        """Why ``url`` must not be called, or None."""
        if not url:
            return "the APIM service has no gateway URL"
        if self.local and not gateway.is_loopback(url):
            return (f"the stand-in's gateway URL {url} is not served locally: start it with a gateway "
                    "(python -m importer sandbox --gateway, or armsim.start(gateway=True))")
        return None

    def key(self, ref: AccountRef, mode: Mode = Mode.AZURE_OPENAI) -> tuple[str, bool]:
        """(the key of the importer's subscription for ``ref``'s API of ``mode``, made just now?).
        Makes the subscription on first use, or moves it to that API; refuses one with our id that
        is not ours."""
        want = probe_subscription(ref, mode)
        have = self.arm.get_subscription(self.apim, want.sid)
        made = False
        if have is not None and not owns_subscription(have.spec, ref):
            raise ConflictError(f"subscription {want.sid} exists without the importer's mark or with "
                                "another scope: remove it, or pass a key with --key")
        if (have is None or have.spec.state.lower() != "active"
                or not have.spec.scope.rstrip("/").lower().endswith(want.scope.lower())):
            self.arm.put_subscription(self.apim, want, have.etag if have else None)
            made = True
            logger.info("%s subscription %s (scope %s) for gateway probes",
                        "made" if have is None else "re-activated", want.sid, want.scope)
        return self.arm.subscription_key(self.apim, want.sid), made

    # -- sending ------------------------------------------------------------------------------------

    def call(self, target: Target, request: ProbeRequest, key: str | None, *,
             retry_statuses: Iterable[int] = (404,)) -> CallResult:
        """Send ``request``; retry the gateway's "not (yet) there" answers, which a change just
        written can give until the gateway loads it."""
        retry = set(retry_statuses)
        url = request.url(target.gateway_url, target.api_path)
        result: CallResult | None = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.retry_wait_s)
            answer = self.send(url, request.method, request.body, key=key, key_header=target.key_header,
                               timeout=self.timeout_s)
            result = rules.classify(request, answer, target.token_headers)
            if not (result.source == "gateway" and result.status in retry):
                break
        assert result is not None
        return result

    def routing(self, target: Target, key: str | None, fresh_key: bool = False) -> CallResult:
        request = rules.routing_request(target.mode, (d.name for d in target.deployments))
        return self.call(target, request, key, retry_statuses=(401, 404) if fresh_key else (404,))

    def deployment(self, target: Target, name: str, model_name: str, key: str | None,
                   fresh_key: bool = False, *, stream: bool = False) -> CallResult:
        operation = rules.operation_for(name, model_name)
        if operation is None:
            return rules.skipped(name, model_name)
        request = rules.build_request(target.mode, name, operation, model_name, stream=stream)
        return self.call(target, request, key, retry_statuses=(401, 404) if fresh_key else (404,))

    # -- after an apply -----------------------------------------------------------------------------

    def after_apply(self, target: Target) -> tuple[dict[str, Any] | None, str | None]:
        """(the probe record, a note). No record when the gateway cannot be called from here."""
        problem = self.gateway_problem(target.gateway_url)
        if problem:
            return None, f"probe skipped: {problem}"
        key, fresh = self.key(target.ref, target.mode)
        checked_at = _now()
        routing = self.routing(target, key, fresh)
        calls: list[CallResult] = []
        if self.level == "call":
            calls = [self.deployment(target, d.name, d.model_name, key, fresh) for d in target.deployments]
        return rules.probe_record(self.level, routing, checked_at, calls), None


def gateway_test(prober: Prober, settings: Settings, ref: AccountRef, *, deployment: str | None = None,
                 key: str | None = None, service: Any = None, stream: bool = False) -> GatewayReport:
    """``python -m importer test``: read the account, its API and policy as they are now, then try
    one deployment (``deployment``) or every routable one; ``stream`` streams the chat completions.
    ``service`` is the APIM service (ApimService) when the caller has read it."""
    arm = prober.arm
    account = arm.get_account(ref)
    svc = service or arm.get_apim(prober.apim)
    problem = prober.gateway_problem(svc.gateway_url)
    if problem:
        raise InvalidInput(f"cannot test through the gateway: {problem}")
    mode = _tested_mode(prober, settings, account)
    api = arm.get_api(prober.apim, api_id(ref, mode))
    if api is None:
        raise NotFound(f"no API {api_id(ref, mode)} for {ref.name} ({mode.value}) in APIM "
                       f"{prober.apim.name}: run python -m importer apply first")
    policy, _etag = arm.get_policy(prober.apim, api.spec.api_id)
    routable = routable_deployments(account)
    target = Target(ref, svc.gateway_url, api.spec.path, mode, api.spec.key_header or "api-key",
                    rules.token_limit_headers(policy.xml if policy else None), routable)
    fresh = False
    if key is None:
        key, fresh = prober.key(ref, mode)
        source = f"the importer's subscription {probe_subscription(ref, mode).sid}"
    else:
        source = "given (--key)"
    report = GatewayReport(ref.id, svc.gateway_url, api.spec.path, mode.value, source)
    for name, model_name in _wanted(report, account, routable, deployment):
        report.results.append(prober.deployment(target, name, model_name, key, fresh, stream=stream))
    return report


def _tested_mode(prober: Prober, settings: Settings, account: Any) -> Mode:
    """The API of the account's first mode is the one tested (and the probe key is scoped to); when
    it is not there (the modes were given on the command line), the first of its APIs that is."""
    ref = account.ref
    first = resolve_options(settings, account.tag_map, account=ref.name).mode
    present = {m for a in prober.arm.list_apis_named(prober.apim, account_prefix(ref))
               if (m := mode_of_api(ref, a.api_id)) is not None}
    return first if first in present or not present else next(m for m in Mode if m in present)


def _wanted(report: GatewayReport, account: Any, routable: tuple[Any, ...],
            deployment: str | None) -> list[tuple[str, str]]:
    """(name, model) of each deployment to call; notes on the report say why one asked for is not
    routed, or that there is nothing to call."""
    if deployment is None:
        if not routable:
            report.notes.append("the account has no deployment in state Succeeded: nothing to call")
        return [(d.name, d.model_name) for d in routable]
    found = {d.name.lower(): d for d in account.deployments}.get(deployment.lower())
    if found is None:
        report.notes.append(f"the account has no deployment '{deployment}'")
        return [(deployment, "")]
    if found not in routable:
        report.notes.append(f"deployment '{found.name}' is not routed: {found.unrouted_reason}")
    return [(found.name, found.model_name)]
