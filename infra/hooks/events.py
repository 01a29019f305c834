#!/usr/bin/env python3
"""Event Grid wiring and teardown for apim-ai-importer, run by the azd hooks.

    python infra/hooks/events.py validate   # preprovision: check IMPORTER_SCOPES / IMPORTER_APIM_ID
    python infra/hooks/events.py plan       # print what `deploy` would do, without calling Azure
    python infra/hooks/events.py deploy     # postdeploy: system topics + event subscriptions
    python infra/hooks/events.py teardown   # predown: what `azd down` would leave behind

`deploy` runs infra/events.bicep once per subscription that holds a watched scope
(`az deployment sub create --subscription <sub>`), after the function code is deployed: an event
subscription to an AzureFunction endpoint fails ("Destination endpoint not found") until the function
exists. A subscription that already has a Microsoft.Resources.Subscriptions system topic (Azure allows one
per source) gets only our event subscriptions added to that topic.

`teardown` removes what lives outside the importer's resource group (which `azd down` deletes): the event
subscriptions / system topics and the resource groups this tool created in watched subscriptions, and
the importer identity's role assignments on the watched scopes, the APIM instance and the outcome topic.

Inputs are azd environment values (azd passes them to hooks as environment variables): the outputs of
infra/main.bicep (AZURE_*, DEPLOY_*) and AZURE_ENV_NAME / AZURE_SUBSCRIPTION_ID / AZURE_LOCATION.
Standard library only; Azure calls go through the Azure CLI (`az login` to the same tenant as azd).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENTS_TEMPLATE = Path(__file__).resolve().parents[1] / "events.bicep"
SYSTEM_TOPIC_TYPE = "Microsoft.Resources.Subscriptions"
MANAGED_BY = "apim-ai-importer"

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# Resource group names: 1-90 of letters, digits, underscore, hyphen, period, parentheses; no final period.
_RG = r"[-\w.()]{0,89}[-\w()]"
_SUB_SCOPE = re.compile(rf"^/subscriptions/({_GUID})$", re.IGNORECASE)
_RG_SCOPE = re.compile(rf"^/subscriptions/({_GUID})/resourceGroups/({_RG})$", re.IGNORECASE)
_APIM_ID = re.compile(
    rf"^/subscriptions/({_GUID})/resourceGroups/({_RG})/providers/Microsoft\.ApiManagement/service/([A-Za-z0-9-]+)$",
    re.IGNORECASE,
)


class ConfigError(ValueError):
    """An azd environment value the deployment cannot use."""


@dataclass(frozen=True)
class Scope:
    subscription_id: str
    resource_group: str | None = None

    @property
    def id(self) -> str:
        base = f"/subscriptions/{self.subscription_id}"
        return base if self.resource_group is None else f"{base}/resourceGroups/{self.resource_group}"


@dataclass(frozen=True)
class SubscriptionPlan:
    """Event subscriptions for one subscription: '' = the whole subscription; ``apim_prefix`` set
    ('{APIM id}/') when the APIM instance is in it (its objects' hand edits are watched too)."""

    subscription_id: str
    subject_prefixes: tuple[str, ...]
    apim_prefix: str = ""


def parse_scopes(raw: str) -> list[Scope]:
    """Parse IMPORTER_SCOPES (comma-separated ids), the same way infra/main.bicep splits it.

    Duplicates (compared case-insensitively) are dropped; any malformed entry raises ConfigError.
    """
    scopes: list[Scope] = []
    seen: set[str] = set()
    bad: list[str] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        sub = _SUB_SCOPE.match(item)
        rg = _RG_SCOPE.match(item)
        if sub:
            scope = Scope(sub.group(1).lower())
        elif rg:
            scope = Scope(rg.group(1).lower(), rg.group(2))
        else:
            bad.append(item)
            continue
        key = scope.id.lower()
        if key not in seen:
            seen.add(key)
            scopes.append(scope)
    if bad:
        raise ConfigError(
            "IMPORTER_SCOPES: not a subscription id (/subscriptions/<guid>) or resource-group id "
            "(/subscriptions/<guid>/resourceGroups/<name>): " + ", ".join(bad)
        )
    if not scopes:
        raise ConfigError("IMPORTER_SCOPES is empty: name at least one subscription or resource group")
    return scopes


def parse_apim_id(raw: str) -> tuple[str, str, str]:
    """(subscription id, resource group, service name) of IMPORTER_APIM_ID."""
    match = _APIM_ID.match(raw.strip())
    if not match:
        raise ConfigError(
            "IMPORTER_APIM_ID: expected /subscriptions/<guid>/resourceGroups/<rg>/providers/"
            f"Microsoft.ApiManagement/service/<name>, got {raw!r}"
        )
    return match.group(1).lower(), match.group(2), match.group(3)


def plan_subscriptions(scopes: Sequence[Scope], apim_id: str = "") -> list[SubscriptionPlan]:
    """Group scopes by subscription. A whole-subscription scope covers that subscription's groups.

    A resource group becomes a subject prefix ending in '/', so rg-ai does not also match rg-ai2.
    Event Grid compares subjects case-insensitively (isSubjectCaseSensitive false in the template).
    With ``apim_id``, its subscription's plan (added when no scope is in it) also watches the APIM
    instance's own objects, by the subject prefix '{apim_id}/'.
    """
    by_sub: dict[str, list[Scope]] = {}
    for scope in scopes:
        by_sub.setdefault(scope.subscription_id.lower(), []).append(scope)
    plans: list[SubscriptionPlan] = []
    for sub_id, group in by_sub.items():
        if any(s.resource_group is None for s in group):
            prefixes: tuple[str, ...] = ("",)
        else:
            prefixes = tuple(sorted({f"{s.id}/" for s in group}, key=str.lower))
        plans.append(SubscriptionPlan(sub_id, prefixes))
    if apim_id:
        apim_sub = parse_apim_id(apim_id)[0]
        prefix = apim_id.strip().rstrip("/") + "/"
        found = [i for i, p in enumerate(plans) if p.subscription_id == apim_sub]
        if found:
            plans[found[0]] = SubscriptionPlan(apim_sub, plans[found[0]].subject_prefixes, prefix)
        else:
            plans.append(SubscriptionPlan(apim_sub, (), prefix))
    return plans


def sanitize_name(env_name: str, max_len: int) -> str:
    """Lowercase letters, digits and hyphens only (Event Grid names), trimmed to max_len."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", env_name.lower()).strip("-") or "env"
    return cleaned[:max_len].rstrip("-")


def event_subscription_name(env_name: str) -> str:
    """Unique per importer environment, so dev and prod can watch the same subscription. At most 48
    characters: the template appends '-' + a 13-character hash for resource-group prefixes (max 64)."""
    return f"{MANAGED_BY}-{sanitize_name(env_name, 48 - len(MANAGED_BY) - 1)}"


def topic_name(env_name: str) -> str:
    return f"evgt-{MANAGED_BY}-{sanitize_name(env_name, 40)}"


def find_subscription_topic(
    topics: Sequence[Mapping[str, Any]], subscription_id: str
) -> Mapping[str, Any] | None:
    """The subscription's existing Microsoft.Resources.Subscriptions system topic, if any.

    `az eventgrid system-topic list` returns topicType and source in varying case.
    """
    source = f"/subscriptions/{subscription_id}".lower()
    for topic in topics:
        topic_type = str(topic.get("topicType") or topic.get("properties", {}).get("topicType") or "")
        topic_source = str(topic.get("source") or topic.get("properties", {}).get("source") or "")
        if topic_type.lower() == SYSTEM_TOPIC_TYPE.lower() and topic_source.rstrip("/").lower() == source:
            return topic
    return None


def _resource_group_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[i + 1]
    raise ConfigError(f"no resource group in {resource_id!r}")


def _system_principal(topic: Mapping[str, Any]) -> str:
    identity = topic.get("identity") or {}
    if "systemassigned" in str(identity.get("type") or "").lower().replace(" ", "").replace(",", ""):
        return str(identity.get("principalId") or "")
    return ""


@dataclass(frozen=True)
class AppContext:
    """What deploy/teardown need from the azd environment."""

    env_name: str
    subscription_id: str
    location: str
    resource_group: str
    function_app_id: str
    function_principal_id: str
    deadletter_storage_id: str
    deadletter_container: str
    max_delivery_attempts: int
    ttl_minutes: int
    scopes: tuple[Scope, ...]
    apim_id: str
    outcome_topic_id: str
    # infra/main.bicep's output DEPLOY_EVENT_SUBSCRIPTION_NAME: the name it also gives the app as
    # IMPORTER_EVENT_SUBSCRIPTION (so `doctor` finds what this hook made); empty: derived here.
    event_subscription: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AppContext:
        def need(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigError(
                    f"{name} is not set: run `azd provision` first (it is an output of infra/main.bicep)"
                )
            return value

        scopes_raw = env.get("DEPLOY_WATCH_SCOPES") or env.get("IMPORTER_SCOPES") or ""
        apim_id = env.get("DEPLOY_APIM_RESOURCE_ID") or env.get("IMPORTER_APIM_ID") or ""
        parse_apim_id(apim_id)
        return cls(
            env_name=need("AZURE_ENV_NAME"),
            subscription_id=need("AZURE_SUBSCRIPTION_ID").lower(),
            location=need("AZURE_LOCATION"),
            resource_group=need("AZURE_RESOURCE_GROUP"),
            function_app_id=need("AZURE_FUNCTION_APP_ID"),
            function_principal_id=need("AZURE_FUNCTION_PRINCIPAL_ID"),
            deadletter_storage_id=need("DEPLOY_DEADLETTER_STORAGE_ID"),
            deadletter_container=env.get("DEPLOY_DEADLETTER_CONTAINER") or "eventgrid-deadletter",
            max_delivery_attempts=int(env.get("DEPLOY_EVENT_MAX_DELIVERY_ATTEMPTS") or 30),
            ttl_minutes=int(env.get("DEPLOY_EVENT_TTL_MINUTES") or 1440),
            scopes=tuple(parse_scopes(scopes_raw)),
            apim_id=apim_id,
            outcome_topic_id=(env.get("IMPORTER_EVENT_TOPIC_ID") or "").strip(),
            event_subscription=(env.get("DEPLOY_EVENT_SUBSCRIPTION_NAME") or "").strip(),
        )

    @property
    def event_subscription_base(self) -> str:
        return self.event_subscription or event_subscription_name(self.env_name)

    @property
    def tags(self) -> dict[str, str]:
        return {"azd-env-name": self.env_name, "managed-by": MANAGED_BY}

    def events_resource_group(self, subscription_id: str) -> str:
        """Where a new system topic goes: the app's own group in its own subscription (so `azd down`
        removes it), else '<app group>-events' in the watched subscription."""
        if subscription_id.lower() == self.subscription_id:
            return self.resource_group
        return f"{self.resource_group}-events"[:90]


def events_parameters(
    ctx: AppContext, plan: SubscriptionPlan, existing_topic: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Parameter values for infra/events.bicep for one subscription."""
    if existing_topic is None:
        rg = ctx.events_resource_group(plan.subscription_id)
        create_rg = plan.subscription_id.lower() != ctx.subscription_id
        name = topic_name(ctx.env_name)
        principal = ""
        dead_letter = True
    else:
        rg = str(existing_topic.get("resourceGroup") or _resource_group_of(str(existing_topic["id"])))
        create_rg = False
        name = str(existing_topic["name"])
        principal = _system_principal(existing_topic)
        dead_letter = bool(principal)
    return {
        "topicResourceGroupName": rg,
        "createResourceGroup": create_rg,
        "location": ctx.location,
        "tags": ctx.tags,
        "createTopic": existing_topic is None,
        "topicName": name,
        "existingTopicPrincipalId": principal,
        "deadLetter": dead_letter,
        "subjectPrefixes": list(plan.subject_prefixes),
        "apimSubjectPrefix": plan.apim_prefix,
        "eventSubscriptionName": ctx.event_subscription_base,
        "functionAppId": ctx.function_app_id,
        "functionName": "on_resource_event",
        "deadLetterStorageId": ctx.deadletter_storage_id,
        "deadLetterContainer": ctx.deadletter_container,
        "maxDeliveryAttempts": ctx.max_delivery_attempts,
        "eventTimeToLiveInMinutes": ctx.ttl_minutes,
    }


def parameters_file(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {k: {"value": v} for k, v in values.items()},
    }


def is_endpoint_not_ready(message: str) -> bool:
    text = message.lower()
    return "endpoint not found" in text or "webhook validation" in text or "endpoint validation" in text


def is_our_event_subscription(name: str, env_name: str, base: str = "") -> bool:
    """The whole-subscription one, a resource-group one ('-' + the 13-character uniqueString), or
    the APIM instance's ('-apim'). ``base``: the name main.bicep chose
    (DEPLOY_EVENT_SUBSCRIPTION_NAME), else derived from env_name."""
    ours = base or event_subscription_name(env_name)
    return (name in (ours, f"{ours}-apim")
            or (name.startswith(ours + "-") and len(name) == len(ours) + 14))


def role_cleanup_scopes(ctx: AppContext) -> list[str]:
    """Scopes outside the importer's resource group where main.bicep gave its identity a role."""
    scopes = [s.id for s in ctx.scopes] + [ctx.apim_id]
    if ctx.outcome_topic_id:
        scopes.append(ctx.outcome_topic_id)
    return scopes


# --------------------------------------------------------------------------------------------------
# Azure CLI calls
# --------------------------------------------------------------------------------------------------


def _az(args: Sequence[str], *, check: bool = True) -> Any:
    exe = shutil.which("az")
    if exe is None:
        raise SystemExit("the Azure CLI (az) is needed by this hook: install it and run `az login`")
    proc = subprocess.run([exe, *args, "--only-show-errors", "-o", "json"], capture_output=True, text=True)
    if proc.returncode != 0:
        message = f"az {' '.join(args[:5])} failed: {proc.stderr.strip()}"
        if check:
            raise RuntimeError(message)
        print(f"[az] WARNING {message}", file=sys.stderr)
        return None
    out = proc.stdout.strip()
    return json.loads(out) if out else None


def _list_topics(subscription_id: str) -> list[Mapping[str, Any]]:
    return _az(["eventgrid", "system-topic", "list", "--subscription", subscription_id]) or []


def deploy(ctx: AppContext, *, attempts: int = 4, wait_seconds: int = 30) -> None:
    for plan in plan_subscriptions(ctx.scopes, ctx.apim_id):
        existing = find_subscription_topic(_list_topics(plan.subscription_id), plan.subscription_id)
        values = events_parameters(ctx, plan, existing)
        if existing is not None:
            print(
                f"[events] {plan.subscription_id}: using the existing system topic {values['topicName']} "
                f"({values['topicResourceGroupName']})"
            )
            if not values["deadLetter"]:
                print(
                    f"[events] WARNING {plan.subscription_id}: that topic has no system-assigned identity, "
                    "so undeliverable events are dropped, not dead-lettered (see docs/deploy.md)"
                )
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(parameters_file(values), fh)
            params_path = fh.name
        name = f"{MANAGED_BY}-events-{sanitize_name(ctx.env_name, 30)}"
        try:
            for attempt in range(1, attempts + 1):
                try:
                    _az(
                        [
                            "deployment",
                            "sub",
                            "create",
                            "--subscription",
                            plan.subscription_id,
                            "--location",
                            ctx.location,
                            "--name",
                            name,
                            "--template-file",
                            str(EVENTS_TEMPLATE),
                            "--parameters",
                            f"@{params_path}",
                        ]
                    )
                    count = len(plan.subject_prefixes) + bool(plan.apim_prefix)
                    print(f"[events] {plan.subscription_id}: {count} event subscription(s) ready")
                    break
                except RuntimeError as exc:
                    # Right after a deploy the Flex host may not have indexed the functions yet:
                    # Event Grid answers "Destination endpoint not found". Anything else is final.
                    if attempt == attempts or not is_endpoint_not_ready(str(exc)):
                        raise
                    print(f"[events] attempt {attempt} failed, retrying in {wait_seconds * attempt}s: {exc}")
                    time.sleep(wait_seconds * attempt)
        finally:
            os.unlink(params_path)


def teardown(ctx: AppContext) -> None:
    for plan in plan_subscriptions(ctx.scopes, ctx.apim_id):
        sub = plan.subscription_id
        topic = find_subscription_topic(_list_topics(sub), sub)
        if topic is not None:
            tags = topic.get("tags") or {}
            rg = str(topic.get("resourceGroup") or _resource_group_of(str(topic["id"])))
            if tags.get("managed-by") == MANAGED_BY and tags.get("azd-env-name") == ctx.env_name:
                print(f"[teardown] {sub}: deleting system topic {topic['name']}")
                _az(
                    [
                        "eventgrid",
                        "system-topic",
                        "delete",
                        "--subscription",
                        sub,
                        "-g",
                        rg,
                        "--name",
                        str(topic["name"]),
                        "--yes",
                    ],
                    check=False,
                )
            else:
                subs = (
                    _az(
                        [
                            "eventgrid",
                            "system-topic",
                            "event-subscription",
                            "list",
                            "--subscription",
                            sub,
                            "-g",
                            rg,
                            "--system-topic-name",
                            str(topic["name"]),
                        ],
                        check=False,
                    )
                    or []
                )
                for es in subs:
                    if is_our_event_subscription(str(es.get("name", "")), ctx.env_name,
                                                 ctx.event_subscription_base):
                        print(
                            f"[teardown] {sub}: deleting event subscription {es['name']} on {topic['name']}"
                        )
                        _az(
                            [
                                "eventgrid",
                                "system-topic",
                                "event-subscription",
                                "delete",
                                "--subscription",
                                sub,
                                "-g",
                                rg,
                                "--system-topic-name",
                                str(topic["name"]),
                                "--name",
                                str(es["name"]),
                                "--yes",
                            ],
                            check=False,
                        )
        if sub != ctx.subscription_id:
            events_rg = ctx.events_resource_group(sub)
            group = _az(["group", "show", "--subscription", sub, "--name", events_rg], check=False)
            tags = (group or {}).get("tags") or {}
            if tags.get("managed-by") == MANAGED_BY and tags.get("azd-env-name") == ctx.env_name:
                print(f"[teardown] {sub}: deleting resource group {events_rg}")
                _az(
                    ["group", "delete", "--subscription", sub, "--name", events_rg, "--yes", "--no-wait"],
                    check=False,
                )
    for scope in role_cleanup_scopes(ctx):
        assignments = _az(["role", "assignment", "list", "--scope", scope], check=False) or []
        ids = [
            a["id"]
            for a in assignments
            if str(a.get("principalId", "")).lower() == ctx.function_principal_id.lower()
            and str(a.get("scope", "")).lower() == scope.lower()
        ]
        if ids:
            print(f"[teardown] removing {len(ids)} role assignment(s) of the importer on {scope}")
            _az(["role", "assignment", "delete", "--ids", *ids], check=False)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    command = args[0] if args else "plan"
    try:
        if command == "validate":
            raw_scopes = env.get("IMPORTER_SCOPES", "")
            raw_apim = env.get("IMPORTER_APIM_ID", "")
            if raw_scopes:
                for plan in plan_subscriptions(parse_scopes(raw_scopes)):
                    print(f"[validate] {plan.subscription_id}: {list(plan.subject_prefixes) or ['(whole)']}")
            else:
                print("[validate] IMPORTER_SCOPES is not set yet: azd will ask for watchScopes")
            if raw_apim:
                parse_apim_id(raw_apim)
            else:
                print("[validate] IMPORTER_APIM_ID is not set yet: azd will ask for apimResourceId")
            return 0
        ctx = AppContext.from_env(env)
        if command == "plan":
            for plan in plan_subscriptions(ctx.scopes, ctx.apim_id):
                print(
                    json.dumps(
                        {
                            "subscription": plan.subscription_id,
                            "parameters": events_parameters(ctx, plan, None),
                        },
                        indent=2,
                    )
                )
            print(json.dumps({"role_cleanup_scopes": role_cleanup_scopes(ctx)}, indent=2))
            return 0
        if command == "deploy":
            deploy(ctx)
            return 0
        if command == "teardown":
            teardown(ctx)
            return 0
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
