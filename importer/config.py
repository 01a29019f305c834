"""Config: settings defaults, then the account's ARM tags, then explicit overrides → Options.

Pure. No I/O. Every value that may reach policy XML, an expression or a URL is checked here against
a narrow pattern, and anything else is refused with InvalidInput naming its source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from enum import StrEnum
from typing import NamedTuple, TypeVar
from urllib.parse import SplitResult, urlsplit

from importer.model import (
    DEPLOYMENT_NAME,
    AccountRef,
    ContentSafety,
    InvalidInput,
    Mode,
    OpenApi,
    Options,
    SemanticCache,
    TokenLimit,
    TokenMetrics,
)
from importer.settings import Settings

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)

# ---------------------------------------------------------------------------------------------
# Vocabulary

TAG_PREFIX = "apim-importer"
TAG_ENABLED = "apim-importer"
TAG_MODE = "apim-importer-mode"
TAG_BASE_PATH = "apim-importer-base-path"
TAG_PRODUCTS = "apim-importer-products"
TAG_TPM = "apim-importer-tpm"
TAG_QUOTA = "apim-importer-quota"
TAG_METRICS = "apim-importer-metrics"
TAG_CACHE = "apim-importer-cache"
TAG_SAFETY = "apim-importer-safety"
TAG_CIRCUIT_BREAKER = "apim-importer-circuit-breaker"
TAG_OPENAPI = "apim-importer-openapi"
TAG_LLM_LOGGING = "apim-importer-llm-logging"
TAGS: tuple[str, ...] = (TAG_ENABLED, TAG_MODE, TAG_BASE_PATH, TAG_PRODUCTS, TAG_TPM, TAG_QUOTA,
                         TAG_METRICS, TAG_CACHE, TAG_SAFETY, TAG_CIRCUIT_BREAKER, TAG_OPENAPI,
                         TAG_LLM_LOGGING)

OVERRIDE_KEYS: tuple[str, ...] = (
    "mode", "basePath", "products", "tokensPerMinute", "tokenQuota", "tokenMetrics",
    "semanticCacheDeployment", "contentSafetyId", "circuitBreaker", "policyFragment", "adopt",
    "enableApimIdentity", "displayName", "openapi", "llmLogging",
)

QUOTA_PERIODS: tuple[str, ...] = ("Hourly", "Daily", "Weekly", "Monthly", "Yearly")

_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")
PRODUCT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")
FRAGMENT_ID = PRODUCT_ID
LOGGER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")
NAMESPACE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_URL_CHARS = re.compile(r"^[A-Za-z0-9._~:/-]+$")
_URL_PATH = re.compile(r"^[A-Za-z0-9._~/-]*$")
# A base URL the official documents are fetched from (and APIM imports them from): RFC 3986 path
# characters and percent escapes; never whitespace, quotes, '<', '>', '&', '?' or '#'.
_BASE_URL_CHARS = re.compile(r"^[A-Za-z0-9._~:/%@!$()*+,;=-]+$")
_LOOPBACK = ("127.0.0.1", "localhost")
MAX_URL = 500
_INT = re.compile(r"^[0-9]{1,12}$")
MAX_BASE_PATH = 200
MAX_DISPLAY_NAME = 300
MAX_INT = 2_000_000_000  # APIM stores these as 32-bit integers

_ON = ("on", "true", "enabled", "yes")
_OFF = ("off", "false", "disabled", "no")


# ---------------------------------------------------------------------------------------------
# Validators. Each takes the raw value and a `source` phrase used in the error.


class Source(NamedTuple):
    """Where a value came from, for error messages: ``tag apim-importer-tpm`` + `` on account X``."""

    name: str
    where: str = ""


Src = str | Source


def _fail(source: Src, value: object, expected: str) -> InvalidInput:
    name, where = (source.name, source.where) if isinstance(source, Source) else (source, "")
    return InvalidInput(f"{name}={value!r}{where}: expected {expected}")


def _choice(kind: type[E], value: object, source: Src) -> E:
    """A member of the string enum ``kind`` (case-insensitive), or a clear error naming them all."""
    text = value.value if isinstance(value, kind) else value
    if isinstance(text, str):
        for member in kind:
            if text.strip().lower() == member.value:
                return member
    raise _fail(source, value, "one of " + ", ".join(m.value for m in kind))


def parse_mode(value: object, source: Src) -> Mode:
    return _choice(Mode, value, source)


def parse_modes(value: object, source: Src) -> tuple[Mode, ...]:
    """A comma-separated set of modes (``azure-openai,azure-openai-v1``), or a list of them: each a
    mode, none twice. Returned in canonical order (Mode's), so the same set is always the same."""
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(value, Mode):
        items = [value]
    if not isinstance(items, (list, tuple)) or not items:
        raise _fail(source, value, "one or more of " + ", ".join(m.value for m in Mode)
                    + ", separated by commas")
    modes = [_choice(Mode, item, source) for item in items]
    if len(set(modes)) != len(modes):
        raise _fail(source, value, "each mode at most once")
    return tuple(m for m in Mode if m in modes)


def check_base_path(value: object, source: Src) -> str:
    expected = ("path segments of letters, digits and ._~- separated by '/', no leading or trailing "
                f"'/', at most {MAX_BASE_PATH} characters; '{{account}}' may stand for the account name")
    if not isinstance(value, str) or not value or len(value) > MAX_BASE_PATH:
        raise _fail(source, value, expected)
    for segment in value.split("/"):
        bare = segment.replace("{account}", "a")
        if not _SEGMENT.fullmatch(bare) or segment in (".", ".."):
            raise _fail(source, value, expected)
    return value


def check_product_id(value: object, source: Src) -> str:
    if not isinstance(value, str) or not PRODUCT_ID.fullmatch(value):
        raise _fail(source, value, "a product id: a letter or digit, then up to 79 letters, digits, "
                    "'_' or '-'")
    return value


def check_products(value: object, source: Src) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[object] = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _fail(source, value, "a comma-separated list (or JSON array) of product ids")
    return tuple(sorted({check_product_id(p, source) for p in items}))


def check_fragment_id(value: object, source: Src) -> str:
    if not isinstance(value, str) or not FRAGMENT_ID.fullmatch(value):
        raise _fail(source, value, "a policy fragment id: a letter or digit, then up to 79 letters, "
                    "digits, '_' or '-'")
    return value


def check_content_safety_id(value: object, source: Src) -> str:
    """The ARM id of a Content Safety resource (a Cognitive Services account), canonical form."""
    expected = ("the resource id of an Azure AI Content Safety resource: /subscriptions/<sub>/"
                "resourceGroups/<rg>/providers/Microsoft.CognitiveServices/accounts/<name>")
    if not isinstance(value, str):
        raise _fail(source, value, expected)
    try:
        ref = AccountRef.parse(value.strip())
    except InvalidInput as exc:
        raise _fail(source, value, expected) from exc
    if ref.key != value.strip().rstrip("/").lower() and ref.key != value.strip().lower():
        raise _fail(source, value, expected)
    return ref.id


def check_logger_id(value: object, source: Src) -> str:
    if not isinstance(value, str) or not LOGGER_ID.fullmatch(value):
        raise _fail(source, value, "an APIM logger id: a letter or digit, then up to 79 letters, digits, "
                    "'_' or '-'")
    return value


def check_namespace(value: object, source: Src) -> str:
    if not isinstance(value, str) or not NAMESPACE.fullmatch(value):
        raise _fail(source, value, "a metric namespace of 1-64 letters, digits, '.', '_' or '-'")
    return value


def check_deployment_name(value: object, source: Src) -> str:
    if not isinstance(value, str) or not DEPLOYMENT_NAME.fullmatch(value):
        raise _fail(source, value, "a deployment name: a letter or digit, then up to 63 letters, digits, "
                    "'.', '_' or '-'")
    return value


def _split_url(value: object, source: Src, expected: str, max_len: int,
               chars: re.Pattern[str]) -> tuple[str, SplitResult, str, int | None]:
    """(value, parts, host, port) of a URL whose every character is in ``chars``. The whole-string
    check comes first: urlsplit silently drops tabs and newlines."""
    if not isinstance(value, str) or len(value) > max_len or not chars.fullmatch(value):
        raise _fail(source, value, expected)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise _fail(source, value, expected) from exc
    return value, parts, parts.hostname or "", port


def check_https_endpoint(value: object, source: Src) -> str:
    expected = "an https:// URL with a plain host name, optional port and path, no query or fragment"
    value, parts, host, port = _split_url(value, source, expected, 500, _URL_CHARS)
    if (parts.scheme != "https" or parts.query or parts.fragment or "?" in value or "#" in value
            or parts.username is not None or parts.password is not None or not _HOST.fullmatch(host)
            or not _URL_PATH.fullmatch(parts.path) or (port is not None and not 0 < port < 65536)
            or value != value.strip()):
        raise _fail(source, value, expected)
    return value


def parse_openapi(value: object, source: Src) -> OpenApi:
    return _choice(OpenApi, value, source)


def check_openapi_base_url(value: object, source: Src) -> str:
    """The folder the official OpenAPI documents are linked from: https (http only to 127.0.0.1 or
    localhost, the local stand-in), a plain host, a path ending in '/', no query, fragment or user."""
    expected = ("an https:// URL ending in '/' (http:// only to 127.0.0.1 or localhost), with a plain host "
                "name, optional port and path, no query, fragment, credentials, whitespace, quotes, "
                "'<', '>' or '&'")
    value, parts, host, port = _split_url(value, source, expected, MAX_URL, _BASE_URL_CHARS)
    scheme_ok = parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK)
    if (not scheme_ok or parts.username is not None or parts.password is not None or "@" in parts.netloc
            or not _HOST.fullmatch(host) or (port is not None and not 0 < port < 65536)
            or not parts.path.startswith("/") or not value.endswith("/")):
        raise _fail(source, value, expected)
    return value


def check_display_name(value: object, source: Src) -> str:
    if (not isinstance(value, str) or not value.strip() or len(value) > MAX_DISPLAY_NAME
            or not value.isprintable()):
        raise _fail(source, value, f"printable text of 1-{MAX_DISPLAY_NAME} characters without control "
                    "characters")
    return value


def _positive_int(value: object, source: Src, what: str = "a positive integer") -> int:
    if isinstance(value, bool):
        raise _fail(source, value, what)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise _fail(source, value, what)
    if not 0 < number <= MAX_INT:
        raise _fail(source, value, what)
    return number


def _switch(value: object, source: Src) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _ON:
            return True
        if text in _OFF:
            return False
    raise _fail(source, value, "'on' or 'off'")


def _setting_flag(value: str, source: Src) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise _fail(source, value, "true or false")


def _is_off(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "off"))


def parse_tpm(value: object, source: Src) -> int | None:
    return None if _is_off(value) else _positive_int(value, source, "a positive integer or 'off'")


def parse_quota(value: object, source: Src) -> tuple[int, str] | None:
    """``N/Period`` (Period one of QUOTA_PERIODS, any case) or 'off'."""
    if _is_off(value):
        return None
    expected = "N/Period with Period one of " + ", ".join(QUOTA_PERIODS) + ", or 'off'"
    if not isinstance(value, str) or value.count("/") != 1:
        raise _fail(source, value, expected)
    number, period = (p.strip() for p in value.split("/"))
    for p in QUOTA_PERIODS:
        if period.lower() == p.lower():
            try:
                return _positive_int(number, source, expected), p
            except InvalidInput:
                raise _fail(source, value, expected) from None  # echo the whole value, not its number
    raise _fail(source, value, expected)


def _optional(check: Callable[[object, Src], T]) -> Callable[[object, Src], T | None]:
    def parse(value: object, source: Src) -> T | None:
        return None if _is_off(value) else check(value, source)
    return parse


# ---------------------------------------------------------------------------------------------
# Layers


def _tags_lower(tags: Mapping[str, str], where: str) -> dict[str, str]:
    """Tag keys are case-insensitive in Azure; keep only ours, refuse unknown ones of our prefix."""
    out: dict[str, str] = {}
    for key, value in tags.items():
        k = str(key).strip().lower()
        if k != TAG_PREFIX and not k.startswith(TAG_PREFIX + "-"):
            continue
        if k not in TAGS:
            raise InvalidInput(f"unknown tag {key!r}{where}: the importer reads only "
                               + ", ".join(TAGS) + " (see docs/tags.md)")
        text = "" if value is None else str(value)
        if k in out and out[k] != text:
            raise InvalidInput(f"tag {k!r}{where} appears twice with different values")
        out[k] = text
    return out


class _Layers:
    """Scratch for one resolution. Token limit, metrics and safety are kept as parts so a later
    layer can change one part (say the quota) and keep the others; ``build`` folds them."""

    def __init__(self) -> None:
        self.options = Options()
        self.tpm: int | None = None
        self.quota: tuple[int, str] | None = None
        self.metrics = False
        self.namespace = TokenMetrics().namespace
        self.cache: str | None = None
        self.safety_id: str | None = None

    def build(self) -> Options:
        limit = None
        if self.tpm is not None or self.quota is not None:
            limit = TokenLimit(tokens_per_minute=self.tpm,
                               quota=None if self.quota is None else self.quota[0],
                               quota_period=None if self.quota is None else self.quota[1])
        return replace(
            self.options,
            token_limit=limit,
            token_metrics=TokenMetrics(namespace=self.namespace) if self.metrics else None,
            semantic_cache=None if self.cache is None else SemanticCache(self.cache),
            content_safety=None if self.safety_id is None else ContentSafety(self.safety_id),
        )


def _apply_settings(layers: _Layers, s: Settings) -> None:
    def get(name: str) -> tuple[str, Source]:
        return s.get(name).strip(), Source(f"setting {name}")

    retired = s.retired()
    if retired:
        name, advice = sorted(retired.items())[0]
        raise InvalidInput(f"setting {name} is no longer read: {advice}")
    o = layers.options
    o = replace(o, modes=parse_modes(*get("IMPORTER_MODE")))
    o = replace(o, openapi=parse_openapi(*get("IMPORTER_OPENAPI")))
    o = replace(o, openapi_base_url=check_openapi_base_url(*get("IMPORTER_OPENAPI_BASE_URL")))
    o = replace(o, base_path=check_base_path(*get("IMPORTER_BASE_PATH")))
    o = replace(o, products=check_products(*get("IMPORTER_PRODUCTS")))
    o = replace(o, circuit_breaker=_setting_flag(*get("IMPORTER_CIRCUIT_BREAKER")))
    o = replace(o, enable_apim_identity=_setting_flag(*get("IMPORTER_ENABLE_APIM_IDENTITY")))
    o = replace(o, adopt=_setting_flag(*get("IMPORTER_ADOPT")))
    o = replace(o, policy_fragment=_optional(check_fragment_id)(*get("IMPORTER_POLICY_FRAGMENT")))
    o = replace(o, apim_logger=_optional(check_logger_id)(*get("IMPORTER_APIM_LOGGER")))
    o = replace(o, llm_logging=_setting_flag(*get("IMPORTER_LLM_LOGGING")))
    layers.options = o
    layers.tpm = parse_tpm(*get("IMPORTER_TOKENS_PER_MINUTE"))
    layers.quota = parse_quota(*get("IMPORTER_TOKEN_QUOTA"))
    layers.metrics = _setting_flag(*get("IMPORTER_TOKEN_METRICS"))
    layers.namespace = check_namespace(*get("IMPORTER_METRICS_NAMESPACE"))
    layers.cache = _optional(check_deployment_name)(*get("IMPORTER_SEMANTIC_CACHE_DEPLOYMENT"))
    layers.safety_id = _optional(check_content_safety_id)(*get("IMPORTER_CONTENT_SAFETY_ID"))


def _apply_tags(layers: _Layers, tags: dict[str, str], where: str, s: Settings) -> None:
    o = layers.options
    for tag, raw in sorted(tags.items()):
        src = Source(f"tag {tag}", where)
        value = raw.strip()
        if tag == TAG_ENABLED:
            continue  # read by enabled()
        if not value:
            raise _fail(src, raw, "a value (see docs/tags.md; 'off' turns a feature off)")
        if tag == TAG_MODE:
            o = replace(o, modes=parse_modes(value, src))
        elif tag == TAG_BASE_PATH:
            o = replace(o, base_path=check_base_path(value, src))
        elif tag == TAG_PRODUCTS:
            o = replace(o, products=check_products(value, src))
        elif tag == TAG_TPM:
            layers.tpm = parse_tpm(value, src)
        elif tag == TAG_QUOTA:
            layers.quota = parse_quota(value, src)
        elif tag == TAG_METRICS:
            layers.metrics = _switch(value, src)
        elif tag == TAG_CACHE:
            layers.cache = None if value.lower() == "off" else check_deployment_name(value, src)
        elif tag == TAG_SAFETY:
            layers.safety_id = _safety_from_tag(_switch(value, src), raw, src, s)
        elif tag == TAG_CIRCUIT_BREAKER:
            o = replace(o, circuit_breaker=_switch(value, src))
        elif tag == TAG_OPENAPI:
            o = replace(o, openapi=parse_openapi(value, src))
        elif tag == TAG_LLM_LOGGING:
            o = replace(o, llm_logging=_switch(value, src))
    layers.options = o


def _safety_from_tag(on: bool, raw: str, src: Source, s: Settings) -> str | None:
    if not on:
        return None
    resource = s.get("IMPORTER_CONTENT_SAFETY_ID").strip()
    if not resource:
        raise InvalidInput(f"{src.name}={raw!r}{src.where}: content safety needs the setting "
                           "IMPORTER_CONTENT_SAFETY_ID (the resource id of an Azure AI Content Safety "
                           "resource); set it, or tag the account 'off'")
    return check_content_safety_id(resource, Source("setting IMPORTER_CONTENT_SAFETY_ID"))


def _strict_bool(value: object, source: Src) -> bool:
    if isinstance(value, bool):
        return value
    raise _fail(source, value, "true or false")


def _apply_overrides(layers: _Layers, overrides: Mapping[str, object]) -> None:
    unknown = sorted(k for k in overrides if k not in OVERRIDE_KEYS)
    if unknown:
        raise InvalidInput(f"unknown option(s) {', '.join(map(repr, unknown))}: expected "
                           + ", ".join(OVERRIDE_KEYS))
    o = layers.options
    for key, value in overrides.items():
        src = Source(f"option {key}")
        if key == "mode":
            o = replace(o, modes=parse_modes(value, src))
        elif key == "basePath":
            o = replace(o, base_path=check_base_path(value, src))
        elif key == "products":
            o = replace(o, products=() if value is None else check_products(value, src))
        elif key == "tokensPerMinute":
            layers.tpm = parse_tpm(value, src)
        elif key == "tokenQuota":
            layers.quota = parse_quota(value, src)
        elif key == "tokenMetrics":
            layers.metrics = _strict_bool(value, src)
        elif key == "semanticCacheDeployment":
            layers.cache = _optional(check_deployment_name)(value, src)
        elif key == "contentSafetyId":
            layers.safety_id = _optional(check_content_safety_id)(value, src)
        elif key == "circuitBreaker":
            o = replace(o, circuit_breaker=_strict_bool(value, src))
        elif key == "policyFragment":
            o = replace(o, policy_fragment=_optional(check_fragment_id)(value, src))
        elif key == "adopt":
            o = replace(o, adopt=_strict_bool(value, src))
        elif key == "enableApimIdentity":
            o = replace(o, enable_apim_identity=_strict_bool(value, src))
        elif key == "displayName":
            o = replace(o, display_name=None if value is None else check_display_name(value, src))
        elif key == "openapi":
            o = replace(o, openapi=parse_openapi(value, src))
        elif key == "llmLogging":
            o = replace(o, llm_logging=_strict_bool(value, src))
    layers.options = o


def enabled(settings: Settings, tags: Mapping[str, str], account: str = "") -> bool:
    """The opt-in/opt-out rule alone: IMPORTER_OPT_IN=true imports only accounts tagged
    ``apim-importer=enabled``; otherwise every account unless tagged ``apim-importer=disabled``."""
    where = f" on account {account}" if account else ""
    opt_in = _setting_flag(settings.get("IMPORTER_OPT_IN").strip(), Source("setting IMPORTER_OPT_IN"))
    # Read only this tag: a disabled account's other tags, even bad ones, must not block offboarding.
    found = {"" if v is None else str(v) for k, v in tags.items() if str(k).strip().lower() == TAG_ENABLED}
    if len(found) > 1:
        raise InvalidInput(f"tag {TAG_ENABLED!r}{where} appears twice with different values")
    raw = found.pop() if found else None
    if raw is None:
        return not opt_in
    value = raw.strip().lower()
    if value not in ("enabled", "disabled"):
        raise _fail(Source(f"tag {TAG_ENABLED}", where), raw, "'enabled' or 'disabled'")
    return value == "enabled"


def resolve_options(settings: Settings, tags: Mapping[str, str],
                    overrides: Mapping[str, object] | None = None, *, account: str = "") -> Options:
    """Options for one account: settings < the account's tags < explicit overrides.

    An account that is not enabled gets ``enabled=False`` and its other tags are not read (a
    disabled account's tags cannot block anything); settings and overrides are still checked.
    ``account`` (a name or id) only makes error messages say which account a tag sits on.
    """
    where = f" on account {account}" if account else ""
    layers = _Layers()
    _apply_settings(layers, settings)
    is_enabled = enabled(settings, tags, account)
    layers.options = replace(layers.options, enabled=is_enabled)
    if is_enabled:
        _apply_tags(layers, _tags_lower(tags, where), where, settings)
    _apply_overrides(layers, overrides or {})
    return layers.build()


def check_options(options: Options) -> Options:
    """Re-check every option value that reaches XML, an expression or a URL. Options built by
    resolve_options always pass; this guards Options built some other way."""
    src = "option"
    check_base_path(options.base_path, f"{src} base_path")
    for p in options.products:
        check_product_id(p, f"{src} products")
    if options.policy_fragment is not None:
        check_fragment_id(options.policy_fragment, f"{src} policy_fragment")
    if options.display_name is not None:
        check_display_name(options.display_name, f"{src} display_name")
    if options.token_metrics is not None:
        check_namespace(options.token_metrics.namespace, f"{src} token_metrics.namespace")
    if options.semantic_cache is not None:
        check_deployment_name(options.semantic_cache.embeddings_deployment,
                              f"{src} semantic_cache.embeddings_deployment")
    if options.content_safety is not None:
        check_content_safety_id(options.content_safety.resource_id, f"{src} content_safety.resource_id")
    if options.apim_logger is not None:
        check_logger_id(options.apim_logger, f"{src} apim_logger")
    parse_openapi(options.openapi, f"{src} openapi")
    check_openapi_base_url(options.openapi_base_url, f"{src} openapi_base_url")
    return options


def resolve_base_path(options: Options, account: AccountRef) -> str:
    """The API's base path with ``{account}`` replaced by the lowercase account name."""
    path = check_base_path(options.base_path, "option base_path")
    return path.replace("{account}", account.name.lower())
