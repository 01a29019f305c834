"""Settings: the one place that reads the environment.

Every setting the code reads is declared once in ``SETTINGS`` (name, default, meaning); the Bicep
app settings, local.settings.example.json and the README's reference are checked against this table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from importer.model import OFFICIAL_OPENAPI_BASE_URL


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    doc: str
    example: str = ""


SETTINGS: tuple[Setting, ...] = (
    Setting("IMPORTER_APIM_ID", "", "Resource id of the target API Management instance.",
            "/subscriptions/<sub>/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/contoso-apim"),
    Setting("IMPORTER_SCOPES", "", "Comma-separated subscription and/or resource-group ids to watch.",
            "/subscriptions/<sub>,/subscriptions/<sub2>/resourceGroups/rg-ai"),
    Setting("IMPORTER_ARM_ENDPOINT", "", "ARM base URL override; set it to the local stand-in "
            "(http://127.0.0.1:PORT). Empty means the public cloud with DefaultAzureCredential.",
            "http://127.0.0.1:8780"),
    Setting("IMPORTER_MODE", "azure-openai", "Default client-compatibility mode(s), comma-separated, each "
            "published as its own API: azure-openai, azure-ai, azure-openai-v1.", "azure-openai"),
    Setting("IMPORTER_OPENAPI", "bundled", "Default OpenAPI document: bundled (the project's own, imported "
            "inline) or official (Microsoft's per-mode document, imported by link from "
            "IMPORTER_OPENAPI_BASE_URL).", "official"),
    Setting("IMPORTER_OPENAPI_BASE_URL", OFFICIAL_OPENAPI_BASE_URL, "Where the official documents "
            "(AIFoundryOpenAI.json, AIFoundryAzureAI.json, AIFoundryOpenAIV1.json) are; ends with '/'. "
            "https only (http only to 127.0.0.1 or localhost, for the stand-in).",
            "https://mirror.contoso.com/ai-gateway/specs/"),
    Setting("IMPORTER_BASE_PATH", "{account}", "Default API base path; `{account}` is replaced by the "
            "account name.", "ai/{account}"),
    Setting("IMPORTER_PRODUCTS", "", "Comma-separated ids of existing APIM products to link the API to.",
            "ai-consumers"),
    Setting("IMPORTER_OPT_IN", "false", "When true, only accounts tagged apim-importer=enabled are "
            "imported; when false, every account in scope unless tagged apim-importer=disabled.", "false"),
    Setting("IMPORTER_TOKENS_PER_MINUTE", "", "Default token limit per subscription key (empty = no "
            "token-limit policy).", "10000"),
    Setting("IMPORTER_TOKEN_QUOTA", "", "Default token quota as N/Period (Hourly, Daily, Weekly, "
            "Monthly, Yearly); empty = none.", "1000000/Monthly"),
    Setting("IMPORTER_TOKEN_METRICS", "false", "Emit token metrics (llm-emit-token-metric).", "true"),
    Setting("IMPORTER_METRICS_NAMESPACE", "ai-gateway", "Metric namespace for token metrics.", "ai-gateway"),
    Setting("IMPORTER_SEMANTIC_CACHE_DEPLOYMENT", "", "Embeddings deployment (on the same account) "
            "used for semantic caching; empty = no caching.", "text-embedding-3-small"),
    Setting("IMPORTER_CONTENT_SAFETY_ID", "", "Resource id of an Azure AI Content Safety resource (a "
            "Cognitive Services account). The importer reads its endpoint, creates a backend that "
            "authenticates with APIM's managed identity and grants that identity Cognitive Services "
            "User on the resource; empty = no content-safety policy.",
            "/subscriptions/<sub>/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices/accounts/"
            "contoso-safety"),
    Setting("IMPORTER_APIM_LOGGER", "", "Id of an existing APIM logger of type applicationInsights. With "
            "token metrics on, each imported API's applicationinsights diagnostic sends to it with "
            "custom metrics on (llm-emit-token-metric emits nothing without one).",
            "apim-ai-importer-appinsights"),
    Setting("IMPORTER_LLM_LOGGING", "false", "Log LLM request and response messages through the API's "
            "azuremonitor diagnostic (largeLanguageModel); prompts and completions then reach Log "
            "Analytics.", "false"),
    Setting("IMPORTER_CIRCUIT_BREAKER", "false", "Add a circuit breaker to each backend.", "true"),
    Setting("IMPORTER_POLICY_FRAGMENT", "", "Id of a policy fragment (owned by you) included in every "
            "imported API's inbound policy.", "org-ai-policy"),
    Setting("IMPORTER_ENABLE_APIM_IDENTITY", "false", "Turn on APIM's system-assigned identity when it "
            "is off (otherwise that is an error).", "false"),
    Setting("IMPORTER_ADOPT", "false", "Take over a foreign API or backend that has the importer's id "
            "(a path clash stays a conflict).", "false"),
    Setting("IMPORTER_TIMER_SCHEDULE", "0 */30 * * * *", "NCRONTAB schedule of the drift reconcile.",
            "0 */30 * * * *"),
    Setting("IMPORTER_PRINCIPAL_ID", "", "Object id of the importer's own identity: ARM change events "
            "it caused (its own writes) are ignored, so repairs never trigger repairs. Empty: the oid "
            "claim of its ARM token.", "00000000-0000-0000-0000-000000000000"),
    Setting("IMPORTER_EVENT_TOPIC_ENDPOINT", "", "Optional Event Grid custom topic for outcome events.",
            "https://importer-events.westeurope-1.eventgrid.azure.net/api/events"),
    Setting("IMPORTER_EVENT_SUBSCRIPTION", "", "Name of the Event Grid event subscriptions the deployment "
            "made for the watched scopes (the postdeploy hook; a resource-group scope's name has '-' and a "
            "13-character suffix added); `doctor` checks they exist. Empty = none made: nothing to check.",
            "apim-ai-importer-prod"),
    Setting("IMPORTER_PROBE", "routing", "Probe after an apply that changed the API or policy: off, "
            "routing (no tokens) or call (one tiny request per deployment).", "routing"),
    Setting("IMPORTER_POOL_PATH", "", "Base path of the unified, capacity-aware APIs: one per mode in "
            "use ({path}/openai, {path}/openai/v1, {path}/models), routing each deployment name to a "
            "backend pool over every account that serves it (docs/pools.md); empty = off.", "ai/pool"),
    Setting("AzureWebJobsStorage", "", "Storage for the queue, lease locks and run history "
            "(connection string, or use AzureWebJobsStorage__accountName for identity-based access).",
            "UseDevelopmentStorage=true"),
    Setting("AzureWebJobsStorage__accountName", "", "Storage account name for identity-based access.",
            "stimporter"),
)

_BY_NAME = {s.name: s for s in SETTINGS}

# Settings the importer no longer reads. Set to anything but empty, they stop every run with this
# advice rather than being silently ignored (Settings.retired, checked by config when options resolve).
RETIRED: dict[str, str] = {
    "IMPORTER_CONTENT_SAFETY_ENDPOINT": "set IMPORTER_CONTENT_SAFETY_ID to the Content Safety resource's "
    "id instead: the importer reads the endpoint from it and grants APIM's identity the role the "
    "llm-content-safety call needs (see docs/policy.md)",
}


class SettingsError(ValueError):
    """A setting holds a value the importer cannot use."""


def parse_flag(raw: str) -> bool | None:
    """A true-or-false setting's value (1/true/yes/on, 0/false/no/off/empty; any case), or None when
    it is neither: the caller names the setting in its own error."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    return None


def _bool(name: str, raw: str) -> bool:
    value = parse_flag(raw)
    if value is None:
        raise SettingsError(f"{name}={raw!r}: expected true or false")
    return value


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


@dataclass(frozen=True)
class Settings:
    """Typed view over the environment. Parse, don't validate twice: build once per process."""

    raw: Mapping[str, str]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if env is None else env
        raw = {s.name: source.get(s.name, s.default) for s in SETTINGS}
        raw.update({name: source[name] for name in RETIRED if source.get(name, "").strip()})
        return cls(raw)

    def retired(self) -> dict[str, str]:
        """Retired settings that are set, with what to do instead."""
        return {name: advice for name, advice in RETIRED.items() if self.raw.get(name, "").strip()}

    def get(self, name: str) -> str:
        if name not in _BY_NAME:
            raise KeyError(f"undeclared setting {name}")
        return self.raw.get(name, _BY_NAME[name].default)

    def flag(self, name: str) -> bool:
        return _bool(name, self.get(name))

    def items(self, name: str) -> tuple[str, ...]:
        return _csv(self.get(name))

    @property
    def arm_endpoint(self) -> str:
        return self.get("IMPORTER_ARM_ENDPOINT").rstrip("/")

    @property
    def apim_id(self) -> str:
        return self.get("IMPORTER_APIM_ID")

    @property
    def scopes(self) -> tuple[str, ...]:
        return self.items("IMPORTER_SCOPES")

    @property
    def storage_connection(self) -> str:
        return self.get("AzureWebJobsStorage")

    @property
    def storage_account_name(self) -> str:
        return self.get("AzureWebJobsStorage__accountName")
