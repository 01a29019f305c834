"""Doctor: a preflight of the real target, before the importer writes anything.

Reads only: settings, the watched scopes, APIM and the objects the settings and tags name, the
importer's own permissions (ARM's permission read-back, never a trial write), the gateway's health
endpoint and the Event Grid subscriptions. Each check is one row of ``CHECKS`` and yields findings
(id, status, what was checked, evidence, fix); a row whose prerequisite did not pass is skipped.
The opt-in import probe (``PROBE``) is the one writer: a throwaway API, always deleted.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from importer.events import OPERATIONS, OWNED_OPERATIONS
from importer.model import (
    Account,
    ApimRef,
    ApimService,
    ApiSpec,
    ImporterError,
    NotFound,
    Options,
    Scope,
)
from importer.probe_rules import Answer
from importer.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
EXIT_OK, EXIT_FAIL, EXIT_WARN = 0, 1, 2

APIM_API_VERSION = "2024-05-01"
EVENTGRID_API_VERSION = "2025-02-15"  # the version infra/modules/event-subscriptions.bicep writes
GATEWAY_STATUS_PATH = "/status-0123456789abcdef"  # APIM's built-in gateway health endpoint
SYSTEM_TOPIC_TYPE = "Microsoft.Resources.Subscriptions"

APIM_CONTRIBUTOR = "API Management Service Contributor (312a565d-c81f-4fd8-895a-4e21e48d571c)"
RBAC_ADMIN = "Role Based Access Control Administrator (f58310d9-a9f6-439a-9e8d-f62e7b41a168)"
READER = "Reader (acdd72a7-3385-48ef-bd42-f606fba81ae7)"
_PROVISION = "`azd provision` grants it (infra/main.bicep)"

# What the importer does on APIM, as ARM actions: every apply needs these.
APIM_ACTIONS: tuple[str, ...] = (
    "Microsoft.ApiManagement/service/read",
    "Microsoft.ApiManagement/service/apis/read",
    "Microsoft.ApiManagement/service/apis/write",
    "Microsoft.ApiManagement/service/apis/delete",
    "Microsoft.ApiManagement/service/apis/policies/write",
    "Microsoft.ApiManagement/service/backends/write",
    "Microsoft.ApiManagement/service/backends/delete",
    "Microsoft.ApiManagement/service/products/apis/write",
    "Microsoft.ApiManagement/service/products/apis/delete",
)
# Only `test` and IMPORTER_PROBE=call use these (the importer's own subscription key): a warning.
APIM_KEY_ACTIONS: tuple[str, ...] = (
    "Microsoft.ApiManagement/service/subscriptions/write",
    "Microsoft.ApiManagement/service/subscriptions/listSecrets/action",
)
APIM_IDENTITY_ACTION = "Microsoft.ApiManagement/service/write"  # IMPORTER_ENABLE_APIM_IDENTITY=true
# The API diagnostics: written when IMPORTER_APIM_LOGGER (with token metrics) or IMPORTER_LLM_LOGGING asks.
APIM_DIAGNOSTIC_ACTION = "Microsoft.ApiManagement/service/apis/diagnostics/write"
# At an AI account: read it, and give APIM's identity its role there (and take it back).
ACCOUNT_ACTIONS: tuple[str, ...] = (
    "Microsoft.CognitiveServices/accounts/read",
    "Microsoft.CognitiveServices/accounts/deployments/read",
    "Microsoft.Authorization/roleAssignments/read",
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Authorization/roleAssignments/delete",
)


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class Finding:
    id: str
    status: str  # pass | warn | fail | skip
    checked: str  # what was checked, in words
    evidence: str  # what was seen
    fix: str = ""  # the command to run or the role to grant; empty when nothing is wrong
    target: str = ""  # the scope, subscription or object a per-target check looked at

    def to_json(self) -> dict[str, str]:
        out = {"id": self.id, "status": self.status, "checked": self.checked, "evidence": self.evidence,
               "fix": self.fix}
        if self.target:
            out["target"] = self.target
        return out


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]

    @property
    def status(self) -> str:
        statuses = {f.status for f in self.findings}
        return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS

    @property
    def exit_code(self) -> int:
        """0 every check passed, 1 any failed, 2 warnings only (skips of unused features count as pass)."""
        return {PASS: EXIT_OK, FAIL: EXIT_FAIL, WARN: EXIT_WARN}[self.status]

    def counts(self) -> dict[str, int]:
        return {s: sum(f.status == s for f in self.findings) for s in (PASS, WARN, FAIL, SKIP)}

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "exitCode": self.exit_code, "counts": self.counts(),
                "findings": [f.to_json() for f in self.findings]}


# ---------------------------------------------------------------------------------------------
# Permissions: ARM's Actions / NotActions with wildcards (pure)


def _pattern(action: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(p) for p in action.split("*")) + "$", re.IGNORECASE)


def allows(grants: Iterable[Any], action: str) -> bool:
    """True when one grant's actions match ``action`` and that grant's notActions don't (ARM's rule:
    a role's NotActions subtract from that role only; grants add up)."""
    for grant in grants:
        if any(_pattern(a).match(action) for a in grant.actions) and not any(
                _pattern(n).match(action) for n in grant.not_actions):
            return True
    return False


def missing_actions(grants: Iterable[Any], actions: Iterable[str]) -> list[str]:
    held = list(grants)
    return [a for a in actions if not allows(held, a)]


# ---------------------------------------------------------------------------------------------
# What the checks share


def _gateway_get(url: str) -> Answer:
    from importer.azure.gateway import send

    return send(url, "GET", None, key=None, timeout=10.0)


@dataclass
class Target:
    """The settings and the adapters; what earlier checks found is kept here for later ones."""

    settings: Settings
    arm: Any = None  # importer.azure.arm.AzureArm
    pre: Any = None  # importer.azure.preflight.PreflightArm
    http_get: Callable[[str], Answer] = _gateway_get
    download: Callable[[str], Any] | None = None  # importer.azure.fetch.download
    options: Options | None = None
    apim: ApimRef | None = None
    scopes: tuple[Scope, ...] = ()
    service: ApimService | None = None
    accounts: dict[str, list[Account]] = field(default_factory=dict)  # scope id → listed accounts
    account_options: list[tuple[Account, Options]] = field(default_factory=list)  # enabled ones

    @classmethod
    def build(cls, settings: Settings, arm: Any = None) -> Target:
        from importer.azure.arm import AzureArm
        from importer.azure.clients import Clients
        from importer.azure.fetch import download
        from importer.azure.preflight import PreflightArm

        arm = arm or AzureArm(Clients(settings))
        return cls(settings, arm, PreflightArm(arm), download=download)

    def all_options(self) -> list[tuple[str, Options]]:
        """(where, options): the settings' defaults, then each imported account's."""
        out = [("settings", self.options)] if self.options is not None else []
        return out + [(f"account {a.ref.name}", o) for a, o in self.account_options]


Run = Callable[[Target, "Check"], Iterable[Finding]]


@dataclass(frozen=True)
class Check:
    """One row: ``run`` yields findings under ``id``; ``needs`` are ids that must have passed."""

    id: str
    checked: str
    run: Run
    needs: tuple[str, ...] = ()


def _finding(check: Check, status: str, evidence: str, fix: str = "", target: str = "") -> Finding:
    return Finding(check.id, status, check.checked, evidence, fix, target)


# ---------------------------------------------------------------------------------------------
# Settings


def _settings_values(t: Target, c: Check) -> Iterator[Finding]:
    from importer.config import enabled, resolve_options
    from importer.prober import level

    try:
        t.options = resolve_options(t.settings, {})
        enabled(t.settings, {})
        level(t.settings)
    except (ImporterError, SettingsError) as exc:
        yield _finding(c, FAIL, str(exc), "set the named setting to a value it accepts (README, Settings)")
        return
    yield _finding(c, PASS, "every setting parses")


def _settings_apim(t: Target, c: Check) -> Iterator[Finding]:
    raw = t.settings.apim_id.strip()
    fix = "set IMPORTER_APIM_ID (or pass --apim) to the APIM service's resource id"
    if not raw:
        yield _finding(c, FAIL, "IMPORTER_APIM_ID is empty", fix)
        return
    try:
        t.apim = ApimRef.parse(raw)
    except ImporterError as exc:
        yield _finding(c, FAIL, str(exc), fix)
        return
    yield _finding(c, PASS, t.apim.id)


def _settings_scopes(t: Target, c: Check) -> Iterator[Finding]:
    fix = "set IMPORTER_SCOPES (or pass --scopes) to comma-separated subscription or resource-group ids"
    if not t.settings.scopes:
        yield _finding(c, FAIL, "IMPORTER_SCOPES is empty", fix)
        return
    try:
        t.scopes = tuple(Scope.parse(s) for s in t.settings.scopes)
    except ImporterError as exc:
        yield _finding(c, FAIL, str(exc), fix)
        return
    yield _finding(c, PASS, ", ".join(s.id for s in t.scopes))


# ---------------------------------------------------------------------------------------------
# Scopes and accounts


def _scopes_list(t: Target, c: Check) -> Iterator[Finding]:
    for scope in t.scopes:
        try:
            accounts = t.arm.list_accounts(scope)
        except NotFound:
            yield _finding(c, FAIL, "the scope does not exist (404)", "correct IMPORTER_SCOPES: the "
                           "subscription or resource group must exist", scope.id)
            continue
        except ImporterError as exc:
            yield _finding(c, FAIL, str(exc), f"grant the importer's identity {READER} on {scope.id} "
                           f"({_PROVISION})", scope.id)
            continue
        t.accounts[scope.id] = accounts
        names = ", ".join(a.ref.name for a in accounts[:5]) + (" ..." if len(accounts) > 5 else "")
        yield _finding(c, PASS, f"{len(accounts)} AI account(s) (kind OpenAI or AIServices)"
                       + (f": {names}" if accounts else ""), target=scope.id)


def _accounts_options(t: Target, c: Check) -> Iterator[Finding]:
    from importer.config import resolve_options

    assert t.options is not None
    seen: set[str] = set()
    imported = skipped = 0
    for accounts in t.accounts.values():
        for account in accounts:
            if account.ref.id.lower() in seen:
                continue
            seen.add(account.ref.id.lower())
            try:
                options = resolve_options(t.settings, dict(account.tags), account=account.ref.name)
            except ImporterError as exc:
                yield _finding(c, FAIL, str(exc), "fix or remove the tag (docs/tags.md)", account.ref.id)
                continue
            if options.enabled:
                imported += 1
                t.account_options.append((account, options))
            else:
                skipped += 1
    yield _finding(c, PASS, f"{imported} account(s) to import, {skipped} opted out; every tag parses")


# ---------------------------------------------------------------------------------------------
# APIM


def _apim_exists(t: Target, c: Check) -> Iterator[Finding]:
    assert t.apim is not None
    try:
        t.service = t.arm.get_apim(t.apim)
    except NotFound:
        yield _finding(c, FAIL, f"no APIM service {t.apim.id} (404)",
                       "correct IMPORTER_APIM_ID, or create the service", t.apim.id)
        return
    except ImporterError as exc:
        yield _finding(c, FAIL, str(exc), f"grant the importer's identity {APIM_CONTRIBUTOR} on "
                       f"{t.apim.id} ({_PROVISION})", t.apim.id)
        return
    yield _finding(c, PASS, f"{t.apim.name}, gateway {t.service.gateway_url or '(none)'}", target=t.apim.id)


def _apim_identity(t: Target, c: Check) -> Iterator[Finding]:
    assert t.service is not None and t.apim is not None
    if t.service.principal_id:
        yield _finding(c, PASS, f"system-assigned identity on, principal {t.service.principal_id}")
        return
    fix = (f"az apim update --name {t.apim.name} --resource-group {t.apim.resource_group} "
           "--set identity.type=SystemAssigned (or set IMPORTER_ENABLE_APIM_IDENTITY=true)")
    if t.options is not None and t.options.enable_apim_identity:
        yield _finding(c, WARN, "the system-assigned identity is off; IMPORTER_ENABLE_APIM_IDENTITY=true "
                       "lets the first import turn it on", fix)
        return
    yield _finding(c, FAIL, "the system-assigned identity is off: the gateway cannot authenticate to the "
                   "AI accounts, so every import is refused", fix)


def _apim_gateway(t: Target, c: Check) -> Iterator[Finding]:
    assert t.service is not None
    base = t.service.gateway_url.rstrip("/")
    if not base:
        yield _finding(c, FAIL, "the service reports no gatewayUrl", "check the APIM service "
                       "(a self-hosted-only or still-provisioning instance has no managed gateway)")
        return
    url = base + GATEWAY_STATUS_PATH
    answer = t.http_get(url)
    if answer.status is None:
        yield _finding(c, FAIL, f"GET {url}: no answer ({answer.error})",
                       "check DNS, network rules and the service's state; the gateway must be reachable "
                       "from where the importer and its clients run")
    elif answer.status == 200:
        yield _finding(c, PASS, f"GET {url}: 200 in {answer.latency_ms} ms")
    else:
        yield _finding(c, WARN, f"GET {url}: HTTP {answer.status} in {answer.latency_ms} ms (the health "
                       "endpoint answers 200 on a healthy gateway)", "check the gateway's health in the "
                       "portal (APIM > Overview, Network status)")


def _apim_access(t: Target, c: Check) -> Iterator[Finding]:
    assert t.apim is not None
    grants = t.pre.permissions(t.apim.id)
    required = list(APIM_ACTIONS)
    if t.options is not None and t.options.enable_apim_identity:
        required.append(APIM_IDENTITY_ACTION)
    if t.options is not None and ((t.options.token_metrics is not None and t.options.apim_logger)
                                  or t.options.llm_logging):
        required.append(APIM_DIAGNOSTIC_ACTION)
    missing = missing_actions(grants, required)
    fix = f"grant the importer's identity {APIM_CONTRIBUTOR} on {t.apim.id} ({_PROVISION})"
    if missing:
        yield _finding(c, FAIL, f"{len(grants)} grant(s); missing: {', '.join(missing)}", fix, t.apim.id)
        return
    optional = missing_actions(grants, APIM_KEY_ACTIONS)
    if optional:
        yield _finding(c, WARN, f"may write APIs, backends, policies and product links; missing "
                       f"{', '.join(optional)} (needed by `test` and IMPORTER_PROBE=call only)", fix,
                       t.apim.id)
        return
    yield _finding(c, PASS, f"{len(grants)} grant(s) allow every write the importer makes", target=t.apim.id)


def _account_access(t: Target, c: Check) -> Iterator[Finding]:
    fix_role = (f"grant the importer's identity {RBAC_ADMIN} (with the ABAC condition of infra/main.bicep) "
                f"and {READER} on the scope ({_PROVISION})")
    for scope in t.scopes:
        if scope.id not in t.accounts:
            yield _finding(c, SKIP, "the scope could not be listed (see scopes.list)", target=scope.id)
            continue
        accounts = sorted(t.accounts[scope.id], key=lambda a: a.ref.id.lower())
        if accounts:
            at, actions = accounts[0].ref.id, ACCOUNT_ACTIONS
        elif scope.resource_group:
            at, actions = scope.id, ACCOUNT_ACTIONS
        else:
            yield _finding(c, WARN, "no AI account in this subscription to read permissions at",
                           "run doctor again once an account exists, or name a resource group", scope.id)
            continue
        grants = t.pre.permissions(at)
        missing = missing_actions(grants, actions)
        if missing:
            yield _finding(c, FAIL, f"at {at}: missing {', '.join(missing)}", fix_role, scope.id)
            continue
        yield _finding(c, PASS, f"at {at}: may read accounts and create and delete role assignments "
                       "(an ABAC condition, if any, is not part of this read-back)", target=scope.id)


# ---------------------------------------------------------------------------------------------
# Objects the settings and tags name


def referenced_child(collection: str, label: str,
                     wanted: Callable[[Target], list[tuple[str, str]]], fix: str) -> Run:
    """A check that each APIM child ``{apim}/{collection}/{name}`` some setting or tag names exists.
    ``wanted`` gives (name, who names it) pairs; none means the feature is unused (skip)."""

    def run(t: Target, c: Check) -> Iterator[Finding]:
        assert t.apim is not None
        names: dict[str, list[str]] = {}
        for name, where in wanted(t):
            names.setdefault(name, []).append(where)
        if not names:
            yield _finding(c, SKIP, f"no {label} is named by the settings or an account's tags")
            return
        missing = []
        for name, named_by in sorted(names.items()):
            try:
                t.pre.get_json(f"{t.apim.id}/{collection}/{name}", APIM_API_VERSION)
            except NotFound:
                missing.append(f"{name} (named by {', '.join(sorted(set(named_by)))})")
        if missing:
            yield _finding(c, FAIL, f"missing {label}(s): {'; '.join(missing)}",
                           fix.format(apim=t.apim.id), t.apim.id)
            return
        yield _finding(c, PASS, f"{label}(s) present: {', '.join(sorted(names))}")

    return run


def referenced_resource(label: str, resource_id: Callable[[Target], str], api_version: str, fix: str) -> Run:
    """A check that the ARM resource a setting names by id exists (empty id: unused, skip)."""

    def run(t: Target, c: Check) -> Iterator[Finding]:
        rid = resource_id(t).strip()
        if not rid:
            yield _finding(c, SKIP, f"no {label} is configured")
            return
        try:
            t.pre.get_json(rid, api_version)
        except NotFound:
            yield _finding(c, FAIL, f"no {label} {rid} (404)", fix, rid)
            return
        yield _finding(c, PASS, f"{label} {rid} exists", target=rid)

    return run


def _products(t: Target) -> list[tuple[str, str]]:
    return [(p, where) for where, o in t.all_options() for p in o.products]


def _logger(t: Target) -> list[tuple[str, str]]:
    name = t.settings.get("IMPORTER_APIM_LOGGER").strip()
    return [(name, "setting IMPORTER_APIM_LOGGER")] if name else []


def _fragment(t: Target) -> list[tuple[str, str]]:
    return [(o.policy_fragment, where) for where, o in t.all_options() if o.policy_fragment]


def _apim_cache(t: Target, c: Check) -> Iterator[Finding]:
    assert t.apim is not None
    users = sorted({where for where, o in t.all_options() if o.semantic_cache is not None})
    if not users:
        yield _finding(c, SKIP, "semantic caching is not used by the settings or any account")
        return
    caches = t.pre.cache_ids(t.apim)
    if not caches:
        yield _finding(c, FAIL, f"semantic caching is on ({', '.join(users)}) but APIM has no external "
                       "cache", "register a Redis-compatible cache with RediSearch on APIM "
                       "(APIM > External cache), or turn caching off (IMPORTER_SEMANTIC_CACHE_DEPLOYMENT "
                       "empty, tag apim-importer-cache=off)", t.apim.id)
        return
    yield _finding(c, PASS, f"external cache(s): {', '.join(caches)}")


def _official_documents(t: Target, c: Check) -> Iterator[Finding]:
    from importer.render import openapi_link

    links: dict[str, list[str]] = {}
    for where, o in t.all_options():
        link = openapi_link(o)
        if link:
            links.setdefault(link, []).append(where)
    if not links:
        yield _finding(c, SKIP, "the official documents are not used (IMPORTER_OPENAPI and tags: bundled)")
        return
    assert t.download is not None
    bad = []
    for link in sorted(links):
        try:
            doc = t.download(link)
        except ImporterError as exc:
            bad.append(str(exc))
            continue
        logger.info("doctor: %s has %d operations", link, len(doc.operations))
    fix = ("set IMPORTER_OPENAPI_BASE_URL to a folder that serves the documents (and that APIM can reach), "
           "or use the bundled documents (IMPORTER_OPENAPI=bundled)")
    if bad:
        yield _finding(c, FAIL, "; ".join(bad), fix)
        return
    yield _finding(c, PASS, f"{len(links)} document(s) fetched and parsed: {', '.join(sorted(links))}")


# ---------------------------------------------------------------------------------------------
# Event Grid


def is_ours(name: str, base: str) -> bool:
    """The whole-subscription event subscription, or a resource-group one (base + '-' + 13 characters,
    Bicep's uniqueString of the subject prefix), as infra/modules/event-subscriptions.bicep names them."""
    return name == base or (name.startswith(base + "-") and len(name) == len(base) + 14)


EVENTS_FIX = ("run the postdeploy hook again: python infra/hooks/events.py deploy (azd deploy runs it); "
              "see docs/deploy.md")


def _system_topic(t: Target, where: str) -> dict[str, Any] | None:
    """The subscription's Microsoft.Resources.Subscriptions system topic, or None."""
    topics = t.pre.list_json(f"{where}/providers/Microsoft.EventGrid/systemTopics", EVENTGRID_API_VERSION)
    return next((x for x in topics if str((x.get("properties") or {}).get("topicType", "")).lower()
                 == SYSTEM_TOPIC_TYPE.lower() and str((x.get("properties") or {}).get("source", ""))
                 .rstrip("/").lower() == where), None)


# The operations the event subscriptions must let through: on the importer's APIM objects (`-apim`);
# on AI accounts, deployments and the role assignments at them (the scopes' subscriptions).
APIM_EVENT_OPERATIONS = tuple(sorted(op for op in OWNED_OPERATIONS
                                     if op.startswith("microsoft.apimanagement/")))
SCOPE_EVENT_OPERATIONS = tuple(sorted(OPERATIONS | {op for op in OWNED_OPERATIONS
                                                    if op.startswith("microsoft.authorization/")}))


def _unwatched_operations(props: dict[str, Any],
                          wanted: tuple[str, ...] = APIM_EVENT_OPERATIONS) -> list[str]:
    """The operations of ``wanted`` an event subscription's operation-name filter leaves out (none
    when it has no such filter: then every operation under its subject prefix is delivered)."""
    filters = (props.get("filter") or {}).get("advancedFilters") or []
    names = [f for f in filters if str(f.get("key", "")).lower() == "data.operationname"
             and str(f.get("operatorType", "")) == "StringIn"]
    if not names:
        return []
    allowed = {str(v).lower() for f in names for v in (f.get("values") or [])}
    return [op for op in wanted if op not in allowed]


def _apim_events(t: Target, c: Check) -> Iterator[Finding]:
    """The event subscription on the APIM instance's objects (repair of hand edits by event)."""
    assert t.apim is not None
    base = t.settings.get("IMPORTER_EVENT_SUBSCRIPTION").strip()
    if not base:
        yield _finding(c, SKIP, "IMPORTER_EVENT_SUBSCRIPTION is empty: hand edits of APIM objects are "
                       "repaired by the timer's pass only")
        return
    where, name = f"/subscriptions/{t.apim.subscription.lower()}", f"{base}-apim"  # as topics name it
    topic = _system_topic(t, where)
    subs = t.pre.list_json(f"{topic['id']}/eventSubscriptions", EVENTGRID_API_VERSION) if topic else []
    found = next((x for x in subs if str(x.get("name", "")).lower() == name.lower()), None)
    props = (found or {}).get("properties") or {}
    prefix = str((props.get("filter") or {}).get("subjectBeginsWith") or "").rstrip("/").lower()
    if found is None or props.get("provisioningState") != "Succeeded":
        yield _finding(c, FAIL, f"no provisioned event subscription {name} on the system topic of {where}: "
                       "hand edits of the importer's APIM objects wait for the timer", EVENTS_FIX, where)
    elif not prefix or not t.apim.id.lower().startswith(prefix):
        yield _finding(c, FAIL, f"{name} filters subjects on {prefix or 'nothing'!r}, not on the APIM "
                       f"instance {t.apim.id}", EVENTS_FIX, where)
    elif missing := _unwatched_operations(props):
        yield _finding(c, WARN, f"{name} leaves out {', '.join(missing)}: hand edits of those objects "
                       "wait for the timer (a deployment from before they were watched)", EVENTS_FIX, where)
    else:
        yield _finding(c, PASS, f"{name} on system topic {topic.get('name') if topic else '?'} covers "
                       f"{t.apim.id}", target=where)


def _covers(prefix: str, scope: Scope) -> bool:
    prefix = prefix.lower()
    return prefix == "" or (scope.resource_group is not None and prefix == scope.id.lower() + "/")


def _event_subscriptions(t: Target, c: Check) -> Iterator[Finding]:
    base = t.settings.get("IMPORTER_EVENT_SUBSCRIPTION").strip()
    if not base:
        yield _finding(c, SKIP, "IMPORTER_EVENT_SUBSCRIPTION is empty: the deployment made no event "
                       "subscription (changes are picked up by the timer's pass only)")
        return
    by_sub: dict[str, list[Scope]] = {}
    for scope in t.scopes:
        by_sub.setdefault(scope.subscription.lower(), []).append(scope)
    for sub, scopes in sorted(by_sub.items()):
        yield _subscription_events(t, c, base, f"/subscriptions/{sub}", scopes)


def _subscription_events(t: Target, c: Check, base: str, where: str, scopes: list[Scope]) -> Finding:
    """One subscription's system topic: our event subscriptions cover its watched scopes and let
    every operation the importer reacts to through."""
    topic = _system_topic(t, where)
    if topic is None:
        return _finding(c, FAIL, "the subscription has no Microsoft.Resources.Subscriptions system topic",
                        EVENTS_FIX, where)
    subs = t.pre.list_json(f"{topic['id']}/eventSubscriptions", EVENTGRID_API_VERSION)
    ours = [s for s in subs if is_ours(str(s.get("name", "")), base)
            and str((s.get("properties") or {}).get("provisioningState", "")) == "Succeeded"]
    prefixes = [str(((s.get("properties") or {}).get("filter") or {}).get("subjectBeginsWith") or "")
                for s in ours]
    uncovered = [s.id for s in scopes if not any(_covers(p, s) for p in prefixes)]
    names = ", ".join(sorted(str(s.get("name")) for s in ours)) or "none"
    if uncovered:
        return _finding(c, FAIL, f"on system topic {topic.get('name')}: ours ({base}*): {names}; no event "
                        f"subscription covers {', '.join(uncovered)}", EVENTS_FIX, where)
    missing = sorted({op for s in ours
                      for op in _unwatched_operations(s.get("properties") or {}, SCOPE_EVENT_OPERATIONS)})
    if missing:
        return _finding(c, WARN, f"on system topic {topic.get('name')}: {names} leave out "
                        f"{', '.join(missing)}: those changes wait for the timer", EVENTS_FIX, where)
    return _finding(c, PASS, f"on system topic {topic.get('name')}: {names}", target=where)


# ---------------------------------------------------------------------------------------------
# The import probe (opt-in): one throwaway API, read back, always deleted

PROBE_TITLE = "doctor-probe-document-title"
PROBE_DOC_DESCRIPTION = "doctor probe: the document's description"
PROBE_DOC_SERVER = "https://document.doctor-probe.invalid"


def probe_document() -> str:
    doc = {"openapi": "3.0.1",
           "info": {"title": PROBE_TITLE, "version": "1", "description": PROBE_DOC_DESCRIPTION},
           "servers": [{"url": PROBE_DOC_SERVER}],
           "paths": {"/ping": {"get": {"operationId": "ping", "summary": "ping",
                                       "responses": {"200": {"description": "OK"}}}}}}
    return json.dumps(doc)


def probe_spec(token: str) -> ApiSpec:
    return ApiSpec(
        api_id=f"apim-importer-doctor-{token}",
        display_name=f"apim-importer doctor probe {token}",
        description=f"apim-importer doctor probe {token}: a throwaway API, deleted by the same run; "
                    "safe to delete if left behind",
        path=f"apim-importer-doctor-{token}",
        service_url="https://request.doctor-probe.invalid",
        import_value=probe_document(),
    )


def _probe_import(t: Target, c: Check) -> Iterator[Finding]:
    """Import a throwaway API whose request and document disagree on the description, display name
    and service URL (to see which one an import keeps), then write its properties alone, as the
    importer does after every import, and check that those stick: the ownership mark depends on it."""
    assert t.apim is not None
    spec = probe_spec(uuid.uuid4().hex[:12])
    sent = {"description": spec.description, "display name": spec.display_name,
            "serviceUrl": spec.service_url or ""}
    from_doc = {"description": PROBE_DOC_DESCRIPTION, "display name": PROBE_TITLE,
                "serviceUrl": PROBE_DOC_SERVER}
    imported: Any = None
    got: Any = None
    error = ""
    try:
        t.arm.put_api(t.apim, spec, None)
        imported = t.arm.get_api(t.apim, spec.api_id)
        if imported is not None:
            t.arm.put_api(t.apim, spec, None, document=False)
            got = t.arm.get_api(t.apim, spec.api_id, operations=False)
    except ImporterError as exc:
        error = str(exc)
    finally:
        cleanup = _probe_delete(t, spec.api_id)
    if imported is None:
        yield _finding(c, FAIL, f"importing the throwaway API {spec.api_id} failed: {error or 'not found'}",
                       f"check access.apim; the importer's identity needs {APIM_CONTRIBUTOR}", t.apim.id)
    else:
        on_import = {"description": imported.spec.description, "display name": imported.spec.display_name,
                     "serviceUrl": imported.spec.service_url or ""}
        def source(key: str) -> str:
            return ("the request" if on_import[key] == sent[key] else "the document"
                    if on_import[key] == from_doc[key] else "neither")

        kept = ", ".join(f"{source(k)}'s {k}" for k in from_doc)
        yield _finding(c, PASS, f"APIM accepted an inline OpenAPI import ({len(imported.spec.operations)} "
                       f"operation(s)); the import kept {kept} (the importer writes its properties again "
                       "after an import, so either is fine)", target=t.apim.id)
        if got is None:
            yield Finding("probe.description", FAIL, "APIM keeps the properties the importer writes after "
                          "an import", f"writing the throwaway's properties failed: {error or 'not found'}",
                          f"check access.apim; the importer's identity needs {APIM_CONTRIBUTOR}", t.apim.id)
        else:
            after = {"description": got.spec.description, "display name": got.spec.display_name,
                     "serviceUrl": got.spec.service_url or ""}
            for key, label, status, why in PROBE_ASSUMPTIONS:
                checked = f"APIM keeps the {key} the importer writes after an import"
                if after[key] == sent[key]:
                    yield Finding(label, PASS, checked, "kept what the properties write sent",
                                  target=t.apim.id)
                    continue
                yield Finding(label, status, checked, f"APIM kept {after[key]!r}: {why}", "report it (an "
                              "issue with this finding); until then expect the plan to show the field on "
                              "every run", t.apim.id)
    yield cleanup


# (field, finding id, status when it does not hold, what that breaks)
PROBE_ASSUMPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("description", "probe.description", FAIL, "the ownership mark lives in the description, so the "
     "importer would take its own APIs for foreign ones"),
    ("display name", "probe.display-name", WARN, "every run would plan the display name again"),
    ("serviceUrl", "probe.service-url", WARN, "every run would plan the service URL again"),
)


def _probe_delete(t: Target, api_id: str) -> Finding:
    """Delete the throwaway, then look: only what is still there (or can't be seen) is a failure."""
    assert t.apim is not None
    checked = "the throwaway API is gone after the probe"
    fix = (f"delete it: az apim api delete --api-id {api_id} --service-name {t.apim.name} "
           f"--resource-group {t.apim.resource_group} --yes")
    failed = ""
    try:
        t.arm.delete_api(t.apim, api_id, None)
    except ImporterError as exc:
        failed = f"deleting {api_id} failed: {exc}"
    try:
        left = t.arm.get_api(t.apim, api_id, operations=False)
    except ImporterError as exc:
        return Finding("probe.cleanup", FAIL, checked, f"{failed or 'deleted'}; then reading it back "
                       f"failed: {exc}", fix, t.apim.id)
    if left is not None:
        return Finding("probe.cleanup", FAIL, checked, failed or f"{api_id} is still there after its delete",
                       fix, t.apim.id)
    done = "deleted" if not failed else "was never created (the import failed)"
    return Finding("probe.cleanup", PASS, checked, f"{api_id} {done}", target=t.apim.id)


# ---------------------------------------------------------------------------------------------
# The table. A new check is one row (and its function): apim.logger (an APIM child a setting names)
# and content-safety (an ARM resource a setting names by id) show the two shapes.

CHECKS: tuple[Check, ...] = (
    Check("settings.values", "every setting holds a value the importer accepts", _settings_values),
    Check("settings.apim", "IMPORTER_APIM_ID names an APIM service", _settings_apim),
    Check("settings.scopes", "IMPORTER_SCOPES names subscriptions or resource groups", _settings_scopes),
    Check("scopes.list", "the scope exists and the importer may list its AI accounts", _scopes_list,
          needs=("settings.scopes",)),
    Check("accounts.options", "every listed account's apim-importer tags parse", _accounts_options,
          needs=("settings.values",)),
    Check("apim.exists", "the APIM service exists and the importer may read it", _apim_exists,
          needs=("settings.apim",)),
    Check("apim.identity", "APIM's system-assigned identity is on", _apim_identity, needs=("apim.exists",)),
    Check("apim.gateway", "the gateway URL answers (its health endpoint)", _apim_gateway,
          needs=("apim.exists",)),
    Check("access.apim", "the importer may write APIs, backends, policies and product links on APIM "
          "(ARM permission read-back)", _apim_access, needs=("apim.exists",)),
    Check("access.accounts", "the importer may read AI accounts and create and delete role assignments at "
          "one in the scope (ARM permission read-back)", _account_access, needs=("settings.scopes",)),
    Check("apim.products", "every product the settings or tags name exists on APIM",
          referenced_child("products", "product", _products,
                           "create the product on {apim} or correct IMPORTER_PRODUCTS / the "
                           "apim-importer-products tag"),
          needs=("apim.exists", "settings.values")),
    Check("apim.fragment", "the policy fragment IMPORTER_POLICY_FRAGMENT names exists on APIM",
          referenced_child("policyFragments", "policy fragment", _fragment,
                           "create the fragment on {apim} (APIM > Policy fragments) or correct "
                           "IMPORTER_POLICY_FRAGMENT"),
          needs=("apim.exists", "settings.values")),
    Check("apim.cache", "an external cache is registered on APIM when semantic caching is used", _apim_cache,
          needs=("apim.exists", "settings.values")),
    Check("apim.logger", "the logger IMPORTER_APIM_LOGGER names exists on APIM (token metrics reach "
          "Application Insights through it)",
          referenced_child("loggers", "logger", _logger,
                           "create an Application Insights logger on {apim} (infra: apimAppInsightsLogger) "
                           "or correct IMPORTER_APIM_LOGGER"),
          needs=("apim.exists", "settings.values")),
    Check("content-safety", "the Content Safety resource IMPORTER_CONTENT_SAFETY_ID names exists",
          referenced_resource("Content Safety resource",
                              lambda t: t.settings.get("IMPORTER_CONTENT_SAFETY_ID"), "2024-10-01",
                              "create the Content Safety resource or correct IMPORTER_CONTENT_SAFETY_ID "
                              "(its ARM id)"),
          needs=("settings.values",)),
    Check("openapi.base-url", "the official OpenAPI documents are served at IMPORTER_OPENAPI_BASE_URL when "
          "'official' is used", _official_documents, needs=("settings.values",)),
    Check("events.subscription", "the Event Grid subscriptions the deployment made exist and cover every "
          "watched scope", _event_subscriptions, needs=("settings.scopes",)),
    Check("events.apim", "the Event Grid subscription on the APIM instance's objects exists (hand edits "
          "repaired by event)", _apim_events, needs=("apim.exists",)),
)
PROBE = Check("probe.import", "an OpenAPI import on this APIM instance behaves as the importer assumes "
              "(a throwaway API, deleted afterwards)", _probe_import, needs=("apim.exists",))
CHECK: dict[str, Check] = {c.id: c for c in (*CHECKS, PROBE)}


def run(target: Target, *, probe_import: bool = False, checks: tuple[Check, ...] = CHECKS) -> Report:
    """Every row in order; a row whose ``needs`` did not all pass is skipped. An unexpected error in a
    row is its finding (fail), never the end of the report."""
    findings: list[Finding] = []
    for check in (*checks, PROBE) if probe_import else checks:
        blocked = [n for n in check.needs if not _passed(findings, n)]
        if blocked:
            findings.append(_finding(check, SKIP, f"not checked: {', '.join(blocked)} did not pass"))
            continue
        try:
            findings.extend(check.run(target, check))
        except ImporterError as exc:
            findings.append(_finding(check, FAIL, str(exc), _fix_for(exc)))
        except Exception as exc:  # a doctor that crashes diagnoses nothing: report it and go on
            logger.exception("doctor check %s failed", check.id)
            findings.append(_finding(check, FAIL, f"{type(exc).__name__}: {exc}", "report this as a bug"))
    return Report(tuple(findings))


def _passed(findings: list[Finding], check_id: str) -> bool:
    mine = [f for f in findings if f.id == check_id]
    return bool(mine) and all(f.status in (PASS, WARN) for f in mine)


def _fix_for(exc: ImporterError) -> str:
    if exc.kind == "transient":
        return "a transient error (throttling, network): run doctor again"
    if "forbidden" in str(exc):
        return "grant the importer's identity the role named in docs/operations.md for this check"
    return "see docs/operations.md for this check"


def diagnose(settings: Settings, *, arm: Any = None, probe_import: bool = False) -> Report:
    """Build the adapters for ``settings`` and run every check (the CLI's and the app's entry)."""
    return run(Target.build(settings, arm), probe_import=probe_import)
