"""Model: frozen value types shared by every stage.

Pure. No I/O. Resource ids are parsed and validated segment by segment here, once; everything
downstream holds typed refs, never raw strings from events, tags or callers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Generic, Self, TypeVar

# ---------------------------------------------------------------------------------------------
# Errors (STYLE §5): transient → retry later; conflict → read again and re-plan; permanent → report.


class ErrorKind(StrEnum):
    """Why a run failed, which decides what its trigger does next."""

    PERMANENT = "permanent"  # bad input, forbidden, missing: report, don't retry
    TRANSIENT = "transient"  # throttled, 5xx, network: retry later
    CONFLICT = "conflict"  # an ETag moved: read again and re-plan
    BUSY = "busy"  # another run holds the account's lock: retry later

    @property
    def retry(self) -> bool:
        """A later attempt may succeed (the queue re-delivers; HTTP says 503/409, not 400)."""
        return self is not ErrorKind.PERMANENT


class ImporterError(Exception):
    """Base of every error the importer raises on purpose."""

    kind: ErrorKind = ErrorKind.PERMANENT


class PermanentError(ImporterError):
    kind = ErrorKind.PERMANENT


class TransientError(ImporterError):
    kind = ErrorKind.TRANSIENT


class ConflictError(ImporterError):
    kind = ErrorKind.CONFLICT


class InvalidInput(PermanentError):
    """Bad input from a caller, an event, a tag or a setting. Nothing was written."""


class NotFound(PermanentError):
    """A resource the caller named does not exist. ``code`` is ARM's error code when ARM said so
    (``ResourceNotFound``, ``ResourceGroupNotFound``, ``SubscriptionNotFound``…)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# Resource ids

_GUIDISH = re.compile(r"^[0-9A-Za-z-]{1,64}$")
# Resource group names: 1–90 of letters, digits, '_', '-', '.', '(', ')'; not ending in '.' (so never
# '.' or '..', which a URL would resolve as path steps).
_RG = re.compile(r"^[-\w._()]{0,89}[-\w_()]$")
# Cognitive Services account names: 2–64, alphanumerics and hyphens, starting alphanumeric.
_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{1,63}$")
# APIM service names: 1–50, letters, digits, hyphens; starts with a letter.
_APIM = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,49}$")
# Deployment names: letters, digits, '-', '_', '.'; 2–64. Anything else is not routable safely.
DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _segments(resource_id: str) -> list[str]:
    if not isinstance(resource_id, str) or not resource_id.startswith("/") or len(resource_id) > 1024:
        raise InvalidInput(f"not a resource id: {resource_id!r}")
    parts = resource_id.strip("/").split("/")
    if any(p == "" for p in parts):
        raise InvalidInput(f"empty segment in resource id: {resource_id!r}")
    return parts


def _expect(parts: list[str], index: int, literal: str, rid: str) -> None:
    if len(parts) <= index or parts[index].lower() != literal.lower():
        raise InvalidInput(f"expected '{literal}' as segment {index + 1} of {rid!r}")


def _check(pattern: re.Pattern[str], value: str, what: str, rid: str) -> str:
    if not pattern.fullmatch(value):
        raise InvalidInput(f"invalid {what} {value!r} in {rid!r}")
    return value


@dataclass(frozen=True)
class _ProviderRef:
    """A resource ``name`` of type ``TYPE`` (``{provider}/{type}``) in a resource group."""

    TYPE: ClassVar[str]

    subscription: str
    resource_group: str
    name: str

    @classmethod
    def _walk(cls, resource_id: str) -> list[str]:
        """The segments of ``/subscriptions/S/resourceGroups/G/providers/{TYPE}/…``, checked that far;
        the caller checks what follows, then builds the ref with ``_named``."""
        provider, resource_type = cls.TYPE.split("/")
        p = _segments(resource_id)
        for index, literal in ((0, "subscriptions"), (2, "resourceGroups"), (4, "providers"), (5, provider),
                               (6, resource_type)):
            _expect(p, index, literal, resource_id)
        return p

    @classmethod
    def _named(cls, p: list[str], resource_id: str, pattern: re.Pattern[str], what: str) -> Self:
        return cls(_check(_GUIDISH, p[1], "subscription id", resource_id),
                   _check(_RG, p[3], "resource group", resource_id),
                   _check(pattern, p[7], what, resource_id))

    @property
    def id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/{self.TYPE}/{self.name}")

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True, order=True)
class AccountRef(_ProviderRef):
    """A Cognitive Services account. Compared case-insensitively through ``key``."""

    TYPE = "Microsoft.CognitiveServices/accounts"

    @classmethod
    def parse(cls, resource_id: str) -> AccountRef:
        """Parse an account id, or a child id (deployment…) of an account, to the account."""
        p = cls._walk(resource_id)
        if len(p) < 8:
            raise InvalidInput(f"no account name in {resource_id!r}")
        if len(p) not in (8, 10):
            raise InvalidInput(f"not an account or account child id: {resource_id!r}")
        if len(p) == 10:
            _expect(p, 8, "deployments", resource_id)
            _check(DEPLOYMENT_NAME, p[9], "deployment name", resource_id)
        return cls._named(p, resource_id, _ACCOUNT, "account name")

    @property
    def key(self) -> str:
        return self.id.lower()


@dataclass(frozen=True)
class ApimRef(_ProviderRef):
    """An API Management service."""

    TYPE = "Microsoft.ApiManagement/service"

    @classmethod
    def parse(cls, resource_id: str) -> ApimRef:
        p = cls._walk(resource_id)
        if len(p) != 8:
            raise InvalidInput(f"not an API Management service id: {resource_id!r}")
        return cls._named(p, resource_id, _APIM, "service name")


@dataclass(frozen=True)
class Scope:
    """A watched scope: a subscription, or a resource group in one."""

    subscription: str
    resource_group: str | None = None

    @classmethod
    def parse(cls, scope_id: str) -> Scope:
        p = _segments(scope_id)
        _expect(p, 0, "subscriptions", scope_id)
        sub = _check(_GUIDISH, p[1], "subscription id", scope_id)
        if len(p) == 2:
            return cls(sub)
        _expect(p, 2, "resourceGroups", scope_id)
        if len(p) != 4:
            raise InvalidInput(f"a scope is a subscription or resource group id: {scope_id!r}")
        return cls(sub, _check(_RG, p[3], "resource group", scope_id))

    def contains(self, ref: AccountRef) -> bool:
        if self.subscription.lower() != ref.subscription.lower():
            return False
        return self.resource_group is None or self.resource_group.lower() == ref.resource_group.lower()

    @property
    def id(self) -> str:
        base = f"/subscriptions/{self.subscription}"
        return base if self.resource_group is None else f"{base}/resourceGroups/{self.resource_group}"


def in_scopes(ref: AccountRef, scopes: tuple[Scope, ...]) -> bool:
    return any(s.contains(ref) for s in scopes)


# ---------------------------------------------------------------------------------------------
# Truth read from Azure (discover → these)


class Mode(StrEnum):
    AZURE_OPENAI = "azure-openai"
    AZURE_AI = "azure-ai"
    AZURE_OPENAI_V1 = "azure-openai-v1"

    @property
    def suffix(self) -> str:
        return {"azure-openai": "openai", "azure-ai": "models", "azure-openai-v1": "openai/v1"}[self.value]

    @property
    def deployment_in_path(self) -> bool:
        return self is Mode.AZURE_OPENAI


class OpenApi(StrEnum):
    """Which OpenAPI document an API is imported from: the project's own (inline) or the official one
    (imported by link from IMPORTER_OPENAPI_BASE_URL)."""

    BUNDLED = "bundled"
    OFFICIAL = "official"


# Where Microsoft's AI gateway samples keep the official per-mode documents, pinned to a commit (so
# the documents behind these links never change), and each mode's file name there.
OFFICIAL_OPENAPI_BASE_URL = ("https://raw.githubusercontent.com/Azure-Samples/AI-Gateway/"
                             "561d71992bd660af94efc76a8f2f21df0e6ac8e5/modules/apim/v3/specs/")
OFFICIAL_OPENAPI_FILES: dict[Mode, str] = {
    Mode.AZURE_OPENAI: "AIFoundryOpenAI.json",
    Mode.AZURE_AI: "AIFoundryAzureAI.json",
    Mode.AZURE_OPENAI_V1: "AIFoundryOpenAIV1.json",
}


@dataclass(frozen=True)
class LinkedDocument:
    """An OpenAPI document imported by link: its URL and the operations it yields (fetched and
    derived outside render, which stays pure)."""

    url: str
    operations: tuple[tuple[str, str], ...]
    description: str = ""  # its info.description: what APIM makes the API's description on import


# Which account kinds can serve which mode. An OpenAI account has no /models inference route.
MODES_BY_KIND: dict[str, tuple[Mode, ...]] = {
    "OpenAI": (Mode.AZURE_OPENAI, Mode.AZURE_OPENAI_V1),
    "AIServices": (Mode.AZURE_OPENAI, Mode.AZURE_AI, Mode.AZURE_OPENAI_V1),
}


def modes_for_kind(kind: str) -> tuple[Mode, ...] | None:
    """The modes an account kind can serve (ARM's kind, in any case); None for a kind not imported."""
    return {k.lower(): v for k, v in MODES_BY_KIND.items()}.get(kind.lower())


@dataclass(frozen=True)
class Deployment:
    name: str
    model_name: str = ""
    model_format: str = ""
    model_version: str = ""
    sku: str = ""
    provisioning_state: str = "Succeeded"
    capacity: int | None = None  # sku.capacity: thousands of TPM (standard) or PTUs (provisioned)

    @property
    def routable(self) -> bool:
        return self.unrouted_reason is None

    @property
    def unrouted_reason(self) -> str | None:
        """Why the gateway does not route to this deployment, or None when it does."""
        if not DEPLOYMENT_NAME.fullmatch(self.name):
            return (f"its name {self.name!r} is outside what the allow-list carries safely (1-64 letters, "
                    "digits, '.', '_' or '-', starting with a letter or digit)")
        if self.provisioning_state != "Succeeded":
            return (f"provisioningState is {self.provisioning_state or 'unknown'} "
                    "(only Succeeded is routed)")
        return None


@dataclass(frozen=True)
class Account:
    ref: AccountRef
    kind: str
    endpoint: str  # properties.endpoint, ends with '/'
    location: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    endpoints: tuple[tuple[str, str], ...] = ()
    deployments: tuple[Deployment, ...] = ()

    @property
    def tag_map(self) -> dict[str, str]:
        return dict(self.tags)


@dataclass(frozen=True)
class ApimService:
    ref: ApimRef
    principal_id: str | None  # system-assigned identity; None when off
    gateway_url: str = ""
    has_external_cache: bool = False


# ---------------------------------------------------------------------------------------------
# Options: settings defaults, overridden per account by tags (config.py)


@dataclass(frozen=True)
class TokenLimit:
    tokens_per_minute: int | None = None
    quota: int | None = None
    quota_period: str | None = None  # Hourly|Daily|Weekly|Monthly|Yearly
    estimate_prompt_tokens: bool = True
    counter_key: str = "@(context.Subscription.Id)"  # fixed expression, never from data
    remaining_tokens_header: str | None = "x-ratelimit-remaining-tokens"
    consumed_tokens_header: str | None = "x-tokens-consumed"
    retry_after_header: str | None = None


@dataclass(frozen=True)
class TokenMetrics:
    namespace: str = "ai-gateway"
    dimensions: tuple[str, ...] = ("API ID", "Subscription ID", "Operation ID")


@dataclass(frozen=True)
class SemanticCache:
    embeddings_deployment: str
    score_threshold: float = 0.05
    duration_seconds: int = 60


@dataclass(frozen=True)
class ContentSafety:
    """Azure AI Content Safety on prompts. ``resource_id``: the ARM id of the Content Safety resource
    (a Cognitive Services account); its endpoint is read from ARM at run time."""

    resource_id: str
    shield_prompt: bool = True
    categories: tuple[tuple[str, int], ...] = (("Hate", 4), ("Sexual", 4), ("SelfHarm", 4), ("Violence", 4))


@dataclass(frozen=True)
class Options:
    enabled: bool = True
    # Every mode the account is published in, each as its own API; canonical order (options.parse_modes).
    modes: tuple[Mode, ...] = (Mode.AZURE_OPENAI,)
    base_path: str = "{account}"  # resolved by config.resolve_base_path
    products: tuple[str, ...] = ()
    token_limit: TokenLimit | None = None
    token_metrics: TokenMetrics | None = None
    semantic_cache: SemanticCache | None = None
    content_safety: ContentSafety | None = None
    circuit_breaker: bool = False
    policy_fragment: str | None = None
    enable_apim_identity: bool = False
    adopt: bool = False
    display_name: str | None = None
    description: str | None = None
    openapi: OpenApi = OpenApi.BUNDLED
    openapi_base_url: str = OFFICIAL_OPENAPI_BASE_URL  # a setting only: where the official files are
    apim_logger: str | None = None  # a setting only: the APIM logger (applicationInsights) for metrics
    llm_logging: bool = False  # LLM request/response messages on the API's azuremonitor diagnostic

    @property
    def mode(self) -> Mode:
        """The first mode of the set: the one ``test`` and the after-apply probe call."""
        return self.modes[0]


# ---------------------------------------------------------------------------------------------
# Desired and actual APIM / ARM objects. Both sides use the same types so plan.diff is a
# field-by-field comparison.

OWNER_MARK = "managed-by=apim-ai-importer"


@dataclass(frozen=True)
class ApiSpec:
    api_id: str
    display_name: str
    description: str  # ends with the ownership mark line
    path: str
    service_url: str | None = None
    protocols: tuple[str, ...] = ("https",)
    subscription_required: bool = True
    key_header: str = "api-key"
    key_query: str = "api-key"
    # Also accept the key as ``Authorization: Bearer <key>`` (subscriptionKeyParameterNames.bearer,
    # api-version 2025-03-01-preview; the typed 2024-05-01 SDK models lack it).
    key_bearer: bool = False
    # The OpenAPI document (JSON text) imported inline, or a link when import_format endswith -link.
    import_format: str = "openapi+json"
    import_value: str = ""
    # (METHOD, urlTemplate) of every operation the document yields, sorted.
    operations: tuple[tuple[str, str], ...] = ()
    # The description an import of the document leaves (APIM takes it from the document): for the
    # bundled document our own, mark included; for a linked one the document's. Not compared.
    imported_description: str | None = field(default=None, compare=False)

    @property
    def linked(self) -> bool:
        """Imported by link (the official document) rather than inline."""
        return self.import_format.endswith("-link")


@dataclass(frozen=True)
class BackendSpec:
    backend_id: str
    url: str
    description: str  # carries the ownership mark
    title: str = ""
    protocol: str = "http"
    circuit_breaker: bool = False
    # credentials.managedIdentity.resource: APIM's identity authenticates the calls (2025-03-01-preview).
    identity_resource: str | None = None


@dataclass(frozen=True)
class PolicySpec:
    api_id: str
    xml: str  # well-formed XML, 'xml' format; compared after canonicalisation


@dataclass(frozen=True)
class DiagnosticSpec:
    """One of the API's diagnostics, as far as the importer manages it: ``applicationinsights`` with
    custom metrics on (token metrics), or ``azuremonitor``'s ``largeLanguageModel`` logging switch.
    ``logger`` is the logger's name (APIM answers with its full id; compared by the last segment)."""

    api_id: str
    name: str  # applicationinsights | azuremonitor
    logger: str
    metrics: bool | None = None  # applicationinsights: custom metrics (llm-emit-token-metric) on
    llm_logging: bool | None = None  # azuremonitor: largeLanguageModel.logs enabled / disabled


@dataclass(frozen=True)
class ProductLinkSpec:
    product_id: str
    api_id: str


@dataclass(frozen=True)
class RoleAssignmentSpec:
    name: str  # uuid5(scope|role|principal)
    scope: str  # account id
    role_definition_guid: str
    principal_id: str
    description: str = OWNER_MARK


@dataclass(frozen=True)
class SubscriptionSpec:
    """An APIM subscription (a key) the importer owns: the one ``test`` and the probes use.

    APIM caps a subscription's display name at 100 characters, too short for the ownership mark
    line, so ownership is the mark's text in the display name plus a scope on this account's API."""

    sid: str
    scope: str  # "/apis/{apiId}" when written; APIM answers with the full resource id
    display_name: str
    state: str = "active"


@dataclass(frozen=True)
class Reference:
    """An object the desired state names but does not own (a product, a policy fragment…): checked
    to exist before the first write of a plan that needs it (apply.preflight)."""

    kind: str  # a key of apply.REFERENCE_CHECKS
    id: str


@dataclass(frozen=True)
class Desired:
    account: AccountRef
    apis: tuple[ApiSpec, ...]  # one per mode, in the options' mode order
    backends: tuple[BackendSpec, ...]
    policies: tuple[PolicySpec, ...]  # one per API, same order
    product_links: tuple[ProductLinkSpec, ...]
    role_assignments: tuple[RoleAssignmentSpec, ...]
    diagnostics: tuple[DiagnosticSpec, ...] = ()  # for every API
    apim: ApimRef | None = None  # the instance whose marks are ours (role assignments)
    references: tuple[Reference, ...] = ()

    @property
    def api(self) -> ApiSpec:
        """The first mode's API."""
        return self.apis[0]

    @property
    def policy(self) -> PolicySpec:
        """The first mode's policy."""
        return self.policies[0]


_SpecT = TypeVar("_SpecT")


@dataclass(frozen=True)
class Found(Generic[_SpecT]):
    """An object read from APIM: what it holds, its ETag, and whether it carries our mark."""

    spec: _SpecT
    etag: str | None = None
    # this account's mark for this APIM instance: decided by discover alone, by identity's rule
    owned: bool = False


ActualApi = Found[ApiSpec]  # operations filled from the operation list
ActualBackend = Found[BackendSpec]
ActualSubscription = Found[SubscriptionSpec]


@dataclass(frozen=True)
class ActualPolicy:
    spec: PolicySpec
    etag: str | None = None


@dataclass(frozen=True)
class Actual:
    """What exists now for one account's APIM objects (absent = not there)."""

    apis: tuple[ActualApi, ...] = ()  # every API with one of the account's ids
    # (desired API id, id of another API already serving its path), for APIs about to be created
    path_clashes: tuple[tuple[str, str], ...] = ()
    # (id of such another API, the account named in its ownership mark) when the importer made it
    path_clash_owners: tuple[tuple[str, str], ...] = ()
    backends: tuple[ActualBackend, ...] = ()
    policies: tuple[ActualPolicy, ...] = ()
    product_links: tuple[ProductLinkSpec, ...] = ()
    role_assignments: tuple[RoleAssignmentSpec, ...] = ()
    subscription: ActualSubscription | None = None  # read only when offboarding
    diagnostics: tuple[DiagnosticSpec, ...] = ()  # read only when the desired state names some

    def api(self, api_id: str) -> ActualApi | None:
        return next((a for a in self.apis if a.spec.api_id.lower() == api_id.lower()), None)

    def policy(self, api_id: str) -> ActualPolicy | None:
        return next((p for p in self.policies if p.spec.api_id.lower() == api_id.lower()), None)


# ---------------------------------------------------------------------------------------------
# Plan


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    CONFLICT = "conflict"  # a foreign object blocks us: reported, never written


class Kind(StrEnum):
    """What a change writes. The definition order is apply's dependency order (deletes run in
    reverse): a subscription (the test key) is scoped to the API, so it goes before the API when
    both are deleted; the plan never creates one. Pools are planned and applied by ``pools`` and
    ``poolsync``, after the accounts' own objects."""

    ROLE_ASSIGNMENT = "role_assignment"
    BACKEND = "backend"
    API = "api"
    POLICY = "policy"
    DIAGNOSTIC = "diagnostic"
    PRODUCT_LINK = "product_link"
    SUBSCRIPTION = "subscription"
    POOL = "pool"


KIND_ORDER: tuple[Kind, ...] = tuple(Kind)

@dataclass(frozen=True)
class Change:
    """One planned write, as Terraform shows one: what APIM holds (``before``: update, delete, and a
    conflict where the blocking object is known), what the change writes (``after``: create,
    update; for a conflict, what was wanted), why, and the field diff. ``etag``: what ``before`` was
    read with (an update or delete is guarded by it)."""

    action: Action
    kind: Kind
    id: str
    reason: str = ""
    diff: tuple[str, ...] = ()  # human lines (field: old → new, or unified policy diff)
    before: object = field(default=None, compare=False, repr=False)
    after: object = field(default=None, compare=False, repr=False)
    etag: str | None = field(default=None, compare=False, repr=False)

    def spec(self, of: type[_SpecT]) -> _SpecT:
        """The object the write acts on, typed: ``after`` for a create or update (and a conflict),
        ``before`` for a delete. A change holding another type is a bug, named here."""
        subject = self.before if self.action is Action.DELETE else self.after
        if not isinstance(subject, of):
            raise TypeError(f"{self.action.value} {self.kind} {self.id}: holds "
                            f"{type(subject).__name__}, not {of.__name__}")
        return subject

    def order(self) -> tuple[int, int, str]:
        rank = KIND_ORDER.index(self.kind)
        if self.action is Action.DELETE:
            return (1, len(KIND_ORDER) - rank, self.id)
        return (0, rank, self.id)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action.value, "kind": self.kind.value, "id": self.id,
                "reason": self.reason, "diff": list(self.diff)}


class ChangeSet:
    """What an account's plan and the pools' plan share: their changes, split into the writes and
    the conflicts that block them (a conflict is reported, never written)."""

    changes: tuple[Change, ...]

    @property
    def empty(self) -> bool:
        return not self.writes

    @property
    def writes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is not Action.CONFLICT)

    @property
    def conflicts(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is Action.CONFLICT)


@dataclass(frozen=True)
class Plan(ChangeSet):
    account: AccountRef
    changes: tuple[Change, ...] = ()

    def summary(self) -> dict[str, int]:
        out = {a.value: 0 for a in Action}
        for c in self.changes:
            out[c.action.value] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account.id, "changes": [c.to_json() for c in self.changes],
                "summary": self.summary()}
