"""Render: account + APIM service + options → the desired APIM objects (an API, main backend and policy
per mode; feature backends, product links and the role assignment per account).

Pure. No I/O. Ids and ownership marks come from identity.py (deterministic, derived from the account
id), every object carries the mark, and the policy is built with lxml: data only ever lands in
literal attribute values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from lxml import etree

from importer import config, identity, openapi
from importer.identity import (
    api_id,
    backend_id,
    owner_description,
    role_assignment_name,
)
from importer.model import (
    MODES_BY_KIND,
    OFFICIAL_OPENAPI_FILES,
    OWNER_MARK,
    Account,
    AccountRef,
    ApimRef,
    ApimService,
    ApiSpec,
    BackendSpec,
    ContentSafety,
    Deployment,
    Desired,
    DiagnosticSpec,
    InvalidInput,
    LinkedDocument,
    Mode,
    OpenApi,
    Options,
    PolicySpec,
    ProductLinkSpec,
    Reference,
    RoleAssignmentSpec,
    SemanticCache,
    TokenLimit,
    TokenMetrics,
    modes_for_kind,
)
from importer.options import (
    MAX_INT,
    QUOTA_PERIODS,
    check_content_safety_id,
    check_deployment_name,
    check_fragment_id,
    check_https_endpoint,
    check_logger_id,
    check_namespace,
    check_openapi_base_url,
)

# Built-in roles granted to APIM's system identity at the account's scope.
ROLE_OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"  # Cognitive Services OpenAI User
ROLE_COGNITIVE_SERVICES_USER = "a97b65f3-24c7-4388-baec-2e87135dc908"  # Cognitive Services User
ROLE_BY_MODE: dict[Mode, str] = {
    Mode.AZURE_OPENAI: ROLE_OPENAI_USER,
    Mode.AZURE_OPENAI_V1: ROLE_OPENAI_USER,
    Mode.AZURE_AI: ROLE_COGNITIVE_SERVICES_USER,
}

# Modes whose clients may send the subscription key as ``Authorization: Bearer <key>`` (the plain
# OpenAI SDK does): their APIs turn on subscriptionKeyParameterNames.bearer.
BEARER_MODES = (Mode.AZURE_OPENAI, Mode.AZURE_OPENAI_V1)

# The API diagnostics the importer manages (docs/policy.md): custom metrics on the Application
# Insights one (token metrics), LLM message logging on the Azure Monitor one (its built-in logger).
DIAGNOSTIC_APP_INSIGHTS = "applicationinsights"
DIAGNOSTIC_AZURE_MONITOR = "azuremonitor"
AZURE_MONITOR_LOGGER = "azuremonitor"
LLM_LOGGING_NOTE = "LLM message logging: on"
COGNITIVE_RESOURCE = "https://cognitiveservices.azure.com"


def account_role(modes: Iterable[Mode]) -> str:
    """The one role the account's modes share: Cognitive Services User (which also covers the
    OpenAI routes) when the set holds azure-ai, else Cognitive Services OpenAI User."""
    roles = {ROLE_BY_MODE[Mode(m)] for m in modes}
    return ROLE_COGNITIVE_SERVICES_USER if ROLE_COGNITIVE_SERVICES_USER in roles else ROLE_OPENAI_USER


# ---------------------------------------------------------------------------------------------
# Policy

ALLOWED_VARIABLE = "ai-allowed-deployments"
REQUESTED_VARIABLE = "ai-requested-deployment"
COUNTER_KEY = "@(context.Subscription.Id)"
VARY_BY = "@(context.Subscription.Id)"
# The cache also varies by the deployment the request names (path or body ``model``): one API fronts
# every deployment of the account, and one model's answer must never be served for another.
VARY_BY_DEPLOYMENT = f'@(context.Variables.GetValueOrDefault<string>("{REQUESTED_VARIABLE}", ""))'
# Built-in dimensions allowed in the inbound token-metric statement. "Backend ID" is outbound only
# (llm-emit-token-metric reference), and the importer emits from inbound.
BUILTIN_DIMENSIONS = ("API ID", "Operation ID", "Product ID", "User ID", "Subscription ID", "Location",
                      "Gateway ID")
MAX_DIMENSIONS = 5
SAFETY_CATEGORIES = ("Hate", "Sexual", "SelfHarm", "Violence")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")

# Fixed expressions, chosen by mode, never built from data. Each yields the deployment a request
# names, lower-cased, or "" when it names none: the path's {deployment-id} (Azure OpenAI mode), else
# the top-level "model" of the JSON body of a POST whose Content-Type says JSON (in any case).
# Requests under /fine_tuning/ are skipped: their "model" is a base model, not a deployment. A
# "model" that is not a string yields "||", and a name with a character no deployment name has yields
# "|" + the name as sent: no allow-list holds a "|" (so no Unicode case table decides anything), and
# the 404 still names what was asked for. A body that does not parse as
# JSON yields INVALID_JSON_MARK, which has upper-case letters, so no lower-cased name can equal it:
# the policy answers it with a 400 instead of letting the parse error become a 500.
INVALID_JSON_MARK = "!InvalidJson"
_JSON_WHITESPACE = '" \\t\\r\\n".ToCharArray()'
_BODY_MODEL = (
    'string s = context.Request.Body?.As<string>(preserveContent: true) ?? ""; '
    f'if (s.Trim({_JSON_WHITESPACE}).Length > 0) {{ JToken t; '
    f'try {{ t = JToken.Parse(s); }} catch (Exception) {{ return "{INVALID_JSON_MARK}"; }} '
    'JToken m = (t as JObject)?["model"]; '
    'd = m == null || m.Type == JTokenType.Null ? "" : m.Type == JTokenType.String ? (string)m : "|"; } ')
_IS_JSON_POST = ('context.Request.Method == "POST" && '
                 'context.Request.Headers.GetValueOrDefault("Content-Type", "").ToLowerInvariant()'
                 '.Contains("json") && !context.Request.Url.Path.Contains("/fine_tuning/")')
_READ_BODY = (f'{{ {_BODY_MODEL}}} '
              'return Regex.IsMatch(d, @"^[A-Za-z0-9._-]*\\z") ? d.ToLowerInvariant() : "|" + d; }')
REQUESTED_EXPRESSION: dict[Mode, str] = {
    Mode.AZURE_OPENAI: (
        '@{ string d = context.Request.MatchedParameters.ContainsKey("deployment-id") ? '
        f'context.Request.MatchedParameters["deployment-id"] : ""; if (d.Length == 0 && {_IS_JSON_POST}) '
        + _READ_BODY),
    Mode.AZURE_AI: f'@{{ string d = ""; if ({_IS_JSON_POST}) ' + _READ_BODY,
    Mode.AZURE_OPENAI_V1: f'@{{ string d = ""; if ({_IS_JSON_POST}) ' + _READ_BODY,
}
INVALID_JSON_CONDITION = (
    f'@(context.Variables.GetValueOrDefault<string>("{REQUESTED_VARIABLE}", "") == "{INVALID_JSON_MARK}")')
DENY_CONDITION = (
    f'@{{ string d = context.Variables.GetValueOrDefault<string>("{REQUESTED_VARIABLE}", ""); '
    f'string allowed = context.Variables.GetValueOrDefault<string>("{ALLOWED_VARIABLE}", "|"); '
    'return d.Length > 0 && (d.Contains("|") || !allowed.Contains("|" + d + "|")); }')
INVALID_JSON_BODY = ('{"error":{"code":"InvalidJson","message":"The request body is not valid JSON. Its '
                     'Content-Type says JSON, and the gateway reads the deployment the request names from '
                     'the body\'s \\"model\\" field: send a well-formed JSON body."}}')
NOT_FOUND_CODE = "DeploymentNotFound"
NOT_FOUND_MESSAGE = ("The deployment '{}' is not served by this API: it does not exist on the account or has "
                     "not finished provisioning.")
# The allow-list's 404 body: JSON naming the requested deployment (as the policy read it, lower-cased).
# The name reaches the body only through JsonConvert.SerializeObject, which escapes it as a JSON string.
_BEFORE, _AFTER = NOT_FOUND_MESSAGE.split("{}")
NOT_FOUND_BODY = (
    '@("{\\"error\\":{\\"code\\":\\"' + NOT_FOUND_CODE + '\\",\\"message\\":" + '
    f'Newtonsoft.Json.JsonConvert.SerializeObject("{_BEFORE}" + '
    f'context.Variables.GetValueOrDefault<string>("{REQUESTED_VARIABLE}", "") + "{_AFTER}") + "}}}}")')


def not_found_body(requested: str) -> str:
    """The allow-list's 404 body for a request naming ``requested``: what NOT_FOUND_BODY evaluates to
    (the name lower-cased, or "|" + the name as sent when it has a character no deployment name has)."""
    shown = requested.lower() if re.fullmatch(r"[A-Za-z0-9._-]*", requested) else "|" + requested
    error = {"code": NOT_FOUND_CODE, "message": NOT_FOUND_MESSAGE.format(shown)}
    return json.dumps({"error": error}, separators=(",", ":"), ensure_ascii=False)


def policy_family(mode: Mode) -> str:
    """``azure-openai`` statements for the Azure OpenAI mode, ``llm`` for the others (docs/policy.md)."""
    return "azure-openai" if mode is Mode.AZURE_OPENAI else "llm"


def allow_list_value(deployments: Iterable[str]) -> str:
    """``|a|b|``: sorted, lower-cased, de-duplicated; every name must be a valid deployment name."""
    names = sorted({check_deployment_name(n, "deployment name").lower() for n in deployments})
    return "|" + "".join(f"{n}|" for n in names)


def _sub(parent: Any, tag: str, attrs: Iterable[tuple[str, str]] = (), text: str | None = None) -> Any:
    el = etree.SubElement(parent, tag)
    for name, value in attrs:
        el.set(name, value)
    if text is not None:
        el.text = text
    return el


def _check_backend_ref(value: str, what: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9-]{1,80}", value):
        raise InvalidInput(f"{what} {value!r}: expected 1-80 letters, digits or hyphens")
    return value


def _check_token_limit(limit: TokenLimit) -> None:
    if limit.counter_key != COUNTER_KEY:
        raise InvalidInput(f"token limit counter key {limit.counter_key!r}: the counter key is fixed to "
                           f"{COUNTER_KEY}")
    for value, what in ((limit.tokens_per_minute, "tokens per minute"), (limit.quota, "token quota")):
        if value is not None and (isinstance(value, bool) or not 0 < value <= MAX_INT):
            raise InvalidInput(f"{what} {value!r}: expected a positive integer")
    if limit.tokens_per_minute is None and limit.quota is None:
        raise InvalidInput("token limit: set tokens per minute, a quota, or both")
    if (limit.quota is None) != (limit.quota_period is None) or (
            limit.quota_period is not None and limit.quota_period not in QUOTA_PERIODS):
        raise InvalidInput(f"token quota period {limit.quota_period!r}: a quota needs a period, one of "
                           + ", ".join(QUOTA_PERIODS))
    for header in (limit.remaining_tokens_header, limit.consumed_tokens_header, limit.retry_after_header):
        if header is not None and not _HEADER_NAME.fullmatch(header):
            raise InvalidInput(f"token limit header name {header!r}: expected 1-64 letters, digits or '-'")


def _check_metrics(metrics: TokenMetrics) -> None:
    check_namespace(metrics.namespace, "token metrics namespace")
    dims = metrics.dimensions
    if len(dims) > MAX_DIMENSIONS or len(set(dims)) != len(dims) or any(
            d not in BUILTIN_DIMENSIONS for d in dims):
        raise InvalidInput(f"token metric dimensions {dims!r}: expected at most {MAX_DIMENSIONS} distinct "
                           "names from " + ", ".join(BUILTIN_DIMENSIONS))


def _check_cache(cache: SemanticCache) -> None:
    t = cache.score_threshold
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 < t <= 1:
        raise InvalidInput(f"semantic cache score threshold {t!r}: expected a number in (0, 1]")
    d = cache.duration_seconds
    if isinstance(d, bool) or not isinstance(d, int) or not 0 < d <= 31_536_000:
        raise InvalidInput(f"semantic cache duration {d!r}: expected whole seconds in 1..31536000")


def _check_safety(safety: ContentSafety) -> None:
    check_content_safety_id(safety.resource_id, "content safety resource id")
    names = [name for name, _ in safety.categories]
    if not names or len(set(names)) != len(names):
        raise InvalidInput(f"content safety categories {names!r}: expected distinct names")
    for name, threshold in safety.categories:
        if name not in SAFETY_CATEGORIES or isinstance(threshold, bool) or threshold not in (0, 2, 4, 6):
            raise InvalidInput(f"content safety category {name!r} threshold {threshold!r}: expected a name "
                               "from " + ", ".join(SAFETY_CATEGORIES) + " and a threshold of 0, 2, 4 or 6")


def render_policy(mode: Mode, options: Options, *, backend: str, deployments: Iterable[str],
                  embeddings_backend: str | None = None, safety_backend: str | None = None) -> str:
    """The API-scope policy, ``xml`` format (well-formed; expressions XML-escaped)."""
    mode = Mode(mode)
    family = policy_family(mode)
    root = etree.Element("policies")
    inbound = _sub(root, "inbound")
    _sub(inbound, "base")

    # Allow-list: data in a literal attribute; the expressions are fixed text.
    _sub(inbound, "set-variable", [("name", ALLOWED_VARIABLE), ("value", allow_list_value(deployments))])
    _sub(inbound, "set-variable", [("name", REQUESTED_VARIABLE), ("value", REQUESTED_EXPRESSION[mode])])
    choose = _sub(inbound, "choose")
    for condition, code, reason, body in (
            (INVALID_JSON_CONDITION, "400", "Invalid JSON", INVALID_JSON_BODY),
            (DENY_CONDITION, "404", "Deployment Not Found", NOT_FOUND_BODY)):
        ret = _sub(_sub(choose, "when", [("condition", condition)]), "return-response")
        _sub(ret, "set-status", [("code", code), ("reason", reason)])
        header = _sub(ret, "set-header", [("name", "Content-Type"), ("exists-action", "override")])
        _sub(header, "value", text="application/json")
        _sub(ret, "set-body", text=body)

    _sub(inbound, "authentication-managed-identity", [("resource", COGNITIVE_RESOURCE)])
    _sub(inbound, "set-backend-service", [("backend-id", _check_backend_ref(backend, "backend id"))])

    if options.content_safety is not None:
        _check_safety(options.content_safety)
        if safety_backend is None:
            raise InvalidInput("content safety is on but no content safety backend was given")
        cs = _sub(inbound, "llm-content-safety", [
            ("backend-id", _check_backend_ref(safety_backend, "content safety backend id")),
            ("shield-prompt", "true" if options.content_safety.shield_prompt else "false")])
        cats = _sub(cs, "categories", [("output-type", "FourSeverityLevels")])
        for name, threshold in options.content_safety.categories:
            _sub(cats, "category", [("name", name), ("threshold", str(threshold))])

    if options.semantic_cache is not None:
        # Before the token limit: a cache hit answers without spending the caller's token budget.
        _check_cache(options.semantic_cache)
        if embeddings_backend is None:
            raise InvalidInput("semantic caching is on but no embeddings backend was given")
        lookup = _sub(inbound, f"{family}-semantic-cache-lookup", [
            ("score-threshold", f"{options.semantic_cache.score_threshold:g}"),
            ("embeddings-backend-id", _check_backend_ref(embeddings_backend, "embeddings backend id")),
            ("embeddings-backend-auth", "system-assigned")])
        _sub(lookup, "vary-by", text=VARY_BY)
        _sub(lookup, "vary-by", text=VARY_BY_DEPLOYMENT)

    if options.token_limit is not None:
        limit = options.token_limit
        _check_token_limit(limit)
        attrs = [("counter-key", COUNTER_KEY)]
        if limit.tokens_per_minute is not None:
            attrs.append(("tokens-per-minute", str(limit.tokens_per_minute)))
        if limit.quota is not None and limit.quota_period is not None:
            attrs += [("token-quota", str(limit.quota)), ("token-quota-period", limit.quota_period)]
        attrs.append(("estimate-prompt-tokens", "true" if limit.estimate_prompt_tokens else "false"))
        for attr, value in (("retry-after-header-name", limit.retry_after_header),
                            ("remaining-tokens-header-name", limit.remaining_tokens_header),
                            ("tokens-consumed-header-name", limit.consumed_tokens_header)):
            if value is not None:
                attrs.append((attr, value))
        _sub(inbound, f"{family}-token-limit", attrs)

    if options.token_metrics is not None:
        _check_metrics(options.token_metrics)
        metric = _sub(inbound, f"{family}-emit-token-metric",
                      [("namespace", options.token_metrics.namespace)])
        for dim in options.token_metrics.dimensions:
            _sub(metric, "dimension", [("name", dim)])

    if options.policy_fragment is not None:
        _sub(inbound, "include-fragment",
             [("fragment-id", check_fragment_id(options.policy_fragment, "policy fragment id"))])

    _sub(_sub(root, "backend"), "base")
    outbound = _sub(root, "outbound")
    _sub(outbound, "base")
    if options.semantic_cache is not None:
        _sub(outbound, f"{family}-semantic-cache-store",
             [("duration", str(options.semantic_cache.duration_seconds))])
    _sub(_sub(root, "on-error"), "base")

    etree.indent(root, space="    ")
    return str(etree.tostring(root, encoding="unicode"))


# ---------------------------------------------------------------------------------------------
# The desired objects


def routable_deployments(account: Account) -> tuple[Deployment, ...]:
    """Deployments the gateway routes to: provisioning Succeeded and a valid name."""
    return tuple(sorted((d for d in account.deployments if d.routable), key=lambda d: d.name))


def _endpoint(account: Account) -> str:
    endpoint = account.endpoint.strip()
    if not endpoint.endswith("/"):
        endpoint += "/"
    check_https_endpoint(endpoint, f"endpoint of account {account.ref.name}")
    return endpoint


def _check_mode(account: Account, mode: Mode) -> None:
    supported = modes_for_kind(account.kind)
    if supported is None:
        raise InvalidInput(f"account {account.ref.name} is of kind {account.kind!r}: the importer serves "
                           "kinds " + ", ".join(MODES_BY_KIND))
    if mode not in supported:
        raise InvalidInput(f"mode {mode.value!r} cannot be served by account {account.ref.name} of kind "
                           f"{account.kind!r}: that kind supports " + ", ".join(m.value for m in supported)
                           + " (set the tag apim-importer-mode or IMPORTER_MODE)")


def openapi_link(options: Options, mode: Mode | None = None) -> str | None:
    """The official document's URL for ``mode`` (default: the options' first) when the options ask
    for it (IMPORTER_OPENAPI / tag apim-importer-openapi = official), else None: the bundled document
    is imported inline."""
    if OpenApi(options.openapi) is not OpenApi.OFFICIAL:
        return None
    base = check_openapi_base_url(options.openapi_base_url, "setting IMPORTER_OPENAPI_BASE_URL")
    return base + OFFICIAL_OPENAPI_FILES[Mode(mode or options.mode)]


def openapi_links(options: Options) -> tuple[str, ...]:
    """The official documents the options' modes import by link (none for the bundled ones)."""
    return tuple(link for m in options.modes if (link := openapi_link(options, m)) is not None)


def bundled_document(mode: Mode, title: str, description: str) -> str:
    """The project's document for ``mode`` with the API's display name and description (ownership
    mark included) as its ``info``: APIM takes an imported API's description from the document, so
    the mark survives the import by construction."""
    doc = json.loads(openapi.document_text(mode))
    doc["info"] = {**doc.get("info", {}), "title": title, "description": description}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True)


def _import(options: Options, mode: Mode, linked: Iterable[LinkedDocument], title: str,
            description: str) -> tuple[str, str, tuple[tuple[str, str], ...], str]:
    """(format, value, operations, the description the import leaves) of the API import: inline
    bundled document, or the link."""
    link = openapi_link(options, mode)
    if link is None:
        return ("openapi+json", bundled_document(mode, title, description),
                openapi.operations(openapi.document(mode)), description)
    found = [d for d in linked if d.url == link]
    if not found:
        raise ValueError(f"the official OpenAPI document {link} was not fetched (got "
                         f"{', '.join(d.url for d in linked) or 'none'}): the caller fetches it before "
                         "render")
    return "openapi+json-link", link, found[0].operations, found[0].description


def _cache_backend(account: Account, apim: ApimService, options: Options,
                   deployments: tuple[Deployment, ...]) -> BackendSpec | None:
    ref, cache = account.ref, options.semantic_cache
    if cache is None:
        return None
    if not apim.has_external_cache:
        raise InvalidInput(
            f"semantic caching needs an external Redis-compatible cache with the RediSearch module "
            f"registered on API Management service {apim.ref.name} ({apim.ref.id}/caches); register "
            "one (for example Azure Managed Redis with RediSearch), or turn caching off (tag "
            "apim-importer-cache=off)")
    wanted = cache.embeddings_deployment.lower()
    match = [d for d in deployments if d.name.lower() == wanted]
    if not match:
        raise InvalidInput(
            f"semantic caching names embeddings deployment {cache.embeddings_deployment!r}, which is not "
            f"a deployment with provisioning state Succeeded on account {ref.name} (routable: "
            + (", ".join(d.name for d in deployments) or "none") + ")")
    return BackendSpec(
        backend_id=backend_id(ref, "embeddings"),
        url=f"{_endpoint(account)}openai/deployments/{match[0].name}/embeddings",
        description=owner_description(ref, apim.ref,
                                      f"Embeddings for semantic caching on account {ref.name}."),
        title=f"{ref.name} embeddings ({match[0].name})", circuit_breaker=options.circuit_breaker)


def safety_grant_mark(apim: ApimRef) -> str:
    """The mark on APIM's role assignment on a Content Safety resource: shared by every account that
    uses that resource, so it names the APIM instance (whose identity it grants), not an account."""
    return f"[{OWNER_MARK} content-safety apim={apim.id}]"


def owns_safety_grant(description: str | None, apim: ApimRef) -> bool:
    return identity.last_line(description).lower() == safety_grant_mark(apim).lower()


SAFETY_RESOURCE_LINE = "Content Safety resource: "


def safety_resource_of(description: str | None) -> str | None:
    """The Content Safety resource id a safety backend's description names (render writes it), in
    canonical form; None when there is none or it is not an account id (a description is anyone's
    to edit in APIM: what it says reaches ARM URLs only once checked)."""
    for line in (description or "").splitlines():
        if line.strip().startswith(SAFETY_RESOURCE_LINE):
            return safety_resource_id(line.strip()[len(SAFETY_RESOURCE_LINE):])
    return None


def safety_resource_id(value: str) -> str | None:
    """``value`` as a Content Safety resource id (canonical), or None when it is not one."""
    try:
        return check_content_safety_id(value, "Content Safety resource") if value.strip() else None
    except InvalidInput:
        return None


def safety_grant(apim: ApimService, resource_id: str) -> RoleAssignmentSpec:
    """Cognitive Services User for APIM's identity on the Content Safety resource."""
    if apim.principal_id is None:
        raise InvalidInput(f"API Management service {apim.ref.name} has no system-assigned identity")
    role = ROLE_COGNITIVE_SERVICES_USER
    return RoleAssignmentSpec(
        name=role_assignment_name(resource_id, role, apim.principal_id), scope=resource_id,
        role_definition_guid=role, principal_id=apim.principal_id,
        description=f"API Management {apim.ref.name} calls Content Safety (llm-content-safety).\n"
                    + safety_grant_mark(apim.ref))


def diagnostics(api: str, options: Options) -> tuple[DiagnosticSpec, ...]:
    """The API diagnostics the options ask for: Application Insights with metrics on (token metrics
    and a logger named), Azure Monitor with LLM message logging on or off."""
    out = []
    if options.token_metrics is not None and options.apim_logger is not None:
        out.append(DiagnosticSpec(api, DIAGNOSTIC_APP_INSIGHTS,
                                  check_logger_id(options.apim_logger, "setting IMPORTER_APIM_LOGGER"),
                                  metrics=True))
    out.append(DiagnosticSpec(api, DIAGNOSTIC_AZURE_MONITOR, AZURE_MONITOR_LOGGER,
                              llm_logging=options.llm_logging))
    return tuple(out)


def _checked_modes(account: Account, options: Options) -> tuple[Mode, ...]:
    """The options' modes, once the options and each mode are known to be usable."""
    config.check_options(options)
    modes = tuple(Mode(m) for m in options.modes)
    if not modes:
        raise InvalidInput("no mode: set IMPORTER_MODE or the tag apim-importer-mode")
    for mode in modes:
        _check_mode(account, mode)
    return modes


def _safety_backend(ref: AccountRef, apim: ApimService, options: Options,
                    safety_endpoint: str | None) -> tuple[BackendSpec, RoleAssignmentSpec] | None:
    """Content safety on: its backend, and the role APIM's identity needs on the resource."""
    if options.content_safety is None:
        return None
    resource = options.content_safety.resource_id
    if safety_endpoint is None:
        raise ValueError(f"the endpoint of Content Safety resource {resource} was not read: the "
                         "caller reads it before render")
    url = check_https_endpoint(safety_endpoint.strip(), f"endpoint of Content Safety resource "
                                                               f"{resource}")
    # llm-content-safety calls this backend with the backend's own credentials: APIM's identity,
    # for Cognitive Services, which needs Cognitive Services User on the resource (granted below).
    backend = BackendSpec(
        backend_id=backend_id(ref, "safety"), url=url,
        description=owner_description(ref, apim.ref, f"Azure AI Content Safety for account {ref.name}.\n"
                                                     f"{SAFETY_RESOURCE_LINE}{resource}"),
        title=f"{ref.name} content safety", circuit_breaker=options.circuit_breaker,
        identity_resource=COGNITIVE_RESOURCE)
    return backend, safety_grant(apim, resource)


def _main_backend(ref: AccountRef, apim: ApimService, options: Options, mode: Mode,
                  endpoint: str) -> BackendSpec:
    main_text = f"Azure AI account {ref.name}, {mode.value} route."
    if options.llm_logging:
        # Records that LLM logging was on, so turning it off is noticed without reading diagnostics.
        main_text += f"\n{LLM_LOGGING_NOTE}"
    return BackendSpec(
        backend_id=backend_id(ref, "main", mode), url=endpoint + mode.suffix,
        description=owner_description(ref, apim.ref, main_text),
        title=f"{ref.name} ({mode.value})", circuit_breaker=options.circuit_breaker)


def _api_description(ref: AccountRef, apim: ApimService, options: Options, mode: Mode) -> str:
    text = options.description or (
        f"Azure AI Foundry API for account {ref.name} ({mode.value} mode), imported by apim-ai-importer.")
    link = openapi_link(options, mode)
    if link is not None:
        # Switching bundled <-> official changes the description, so the plan re-imports the API.
        text = f"{text.rstrip()}\nOpenAPI document: {link}"
    return owner_description(ref, apim.ref, text)


def _api(ref: AccountRef, apim: ApimService, options: Options, mode: Mode, endpoint: str,
         docs: tuple[LinkedDocument, ...], several: bool) -> ApiSpec:
    display = f"{options.display_name} ({mode.value})" if options.display_name and several \
        else options.display_name or f"{ref.name} ({mode.value})"
    description = _api_description(ref, apim, options, mode)
    import_format, import_value, operations, left = _import(options, mode, docs, display, description)
    return ApiSpec(
        api_id=api_id(ref, mode),
        display_name=display,
        description=description,
        path=f"{config.resolve_base_path(options, ref)}/{mode.suffix}",
        service_url=endpoint + mode.suffix,
        import_format=import_format,
        import_value=import_value,
        operations=operations,
        imported_description=left,
        key_bearer=mode in BEARER_MODES,
    )


def render(account: Account, apim: ApimService, options: Options,
           linked: LinkedDocument | Iterable[LinkedDocument] | None = None, *,
           safety_endpoint: str | None = None) -> Desired:
    """``linked``: the official documents, fetched by the caller, when the options ask for them.
    ``safety_endpoint``: the Content Safety resource's endpoint, read by the caller (content safety
    on). Each mode of ``options.modes`` gets its own API, main backend, policy and diagnostics; the
    account's feature backends (embeddings, content safety) and its role assignment are shared."""
    ref = account.ref
    docs = () if linked is None else (linked,) if isinstance(linked, LinkedDocument) else tuple(linked)
    modes = _checked_modes(account, options)
    if apim.principal_id is None:
        raise InvalidInput(
            f"API Management service {apim.ref.name} has no system-assigned identity, which the gateway "
            "needs to call the account: turn it on (portal: Security > Managed identities > System "
            "assigned; or az apim update --set identity.type=SystemAssigned), or set "
            "IMPORTER_ENABLE_APIM_IDENTITY=true to let the importer turn it on")
    endpoint = _endpoint(account)
    deployments = routable_deployments(account)
    references = [Reference("product", p) for p in sorted(set(options.products))]
    if options.policy_fragment is not None:
        references.append(Reference("policy_fragment", options.policy_fragment))

    backends: list[BackendSpec] = []
    embeddings = _cache_backend(account, apim, options, deployments)
    if embeddings is not None:
        backends.append(embeddings)

    safety = _safety_backend(ref, apim, options, safety_endpoint)
    roles = [safety[1]] if safety else []
    backends += [safety[0]] if safety else []

    apis: list[ApiSpec] = []
    policies: list[PolicySpec] = []
    diags: list[DiagnosticSpec] = []
    for mode in modes:
        main = _main_backend(ref, apim, options, mode, endpoint)
        backends.append(main)
        api = _api(ref, apim, options, mode, endpoint, docs, len(modes) > 1)
        apis.append(api)
        policies.append(PolicySpec(api.api_id, render_policy(
            mode, options, backend=main.backend_id, deployments=[d.name for d in deployments],
            embeddings_backend=None if embeddings is None else embeddings.backend_id,
            safety_backend=safety[0].backend_id if safety else None)))
        diags += diagnostics(api.api_id, options)
    role = account_role(modes)
    assignment = RoleAssignmentSpec(
        name=role_assignment_name(ref.id, role, apim.principal_id), scope=ref.id,
        role_definition_guid=role, principal_id=apim.principal_id,
        description=owner_description(ref, apim.ref,
                                      f"API Management {apim.ref.name} calls account {ref.name}."))
    return Desired(
        account=ref,
        apis=tuple(apis),
        backends=tuple(sorted(backends, key=lambda b: b.backend_id)),
        policies=tuple(policies),
        product_links=tuple(ProductLinkSpec(p, a.api_id)
                            for a in apis for p in sorted(set(options.products))),
        role_assignments=(assignment, *roles),
        diagnostics=tuple(diags),
        apim=apim.ref,
        references=tuple(references),
    )
