"""Options: the one table of per-account options, and the parsers of their values.

Each row says where an option comes from (setting, tag, JSON key), how its value is parsed and
what the docs say of it; config's layering, the HTTP body schema, the CLI's choices and docs/tags.md
derive from it. Pure. No I/O. Every value that may reach policy XML, an expression or a URL is
checked here against a narrow pattern, and anything else is refused with InvalidInput naming its source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, TypeVar
from urllib.parse import SplitResult, urlsplit

from importer.model import DEPLOYMENT_NAME, AccountRef, InvalidInput, Mode, OpenApi
from importer.settings import Settings, parse_flag

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)

TAG_PREFIX = "apim-importer"
TAG_ENABLED = "apim-importer"
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


def fail(source: Src, value: object, expected: str) -> InvalidInput:
    name, where = (source.name, source.where) if isinstance(source, Source) else (source, "")
    return InvalidInput(f"{name}={value!r}{where}: expected {expected}")


def _choice(kind: type[E], value: object, source: Src) -> E:
    """A member of the string enum ``kind`` (case-insensitive), or a clear error naming them all."""
    text = value.value if isinstance(value, kind) else value
    if isinstance(text, str):
        for member in kind:
            if text.strip().lower() == member.value:
                return member
    raise fail(source, value, "one of " + ", ".join(m.value for m in kind))


def parse_mode(value: object, source: Src) -> Mode:
    return _choice(Mode, value, source)


def parse_modes(value: object, source: Src) -> tuple[Mode, ...]:
    """A comma-separated set of modes (``azure-openai,azure-openai-v1``), or a list of them: each a
    mode, none twice. Returned in canonical order (Mode's), so the same set is always the same."""
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(value, Mode):
        items = [value]
    if not isinstance(items, (list, tuple)) or not items:
        raise fail(source, value, "one or more of " + ", ".join(m.value for m in Mode)
                    + ", separated by commas")
    modes = [_choice(Mode, item, source) for item in items]
    if len(set(modes)) != len(modes):
        raise fail(source, value, "each mode at most once")
    return tuple(m for m in Mode if m in modes)


def check_base_path(value: object, source: Src) -> str:
    expected = ("path segments of letters, digits and ._~- separated by '/', no leading or trailing "
                f"'/', at most {MAX_BASE_PATH} characters; '{{account}}' may stand for the account name")
    if not isinstance(value, str) or not value or len(value) > MAX_BASE_PATH:
        raise fail(source, value, expected)
    for segment in value.split("/"):
        bare = segment.replace("{account}", "a")
        if not _SEGMENT.fullmatch(bare) or segment in (".", ".."):
            raise fail(source, value, expected)
    return value


def _matching(pattern: re.Pattern[str], expected: str) -> Callable[[object, Src], str]:
    """A check that a value is a string ``pattern`` matches whole; else ``expected`` in the error."""
    def check(value: object, source: Src) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise fail(source, value, expected)
        return value
    return check


_ID_CHARS = "a letter or digit, then up to 79 letters, digits, '_' or '-'"
check_product_id = _matching(PRODUCT_ID, f"a product id: {_ID_CHARS}")
check_fragment_id = _matching(FRAGMENT_ID, f"a policy fragment id: {_ID_CHARS}")
check_logger_id = _matching(LOGGER_ID, f"an APIM logger id: {_ID_CHARS}")
check_namespace = _matching(NAMESPACE, "a metric namespace of 1-64 letters, digits, '.', '_' or '-'")
check_deployment_name = _matching(DEPLOYMENT_NAME, "a deployment name: a letter or digit, then up to 63 "
                                  "letters, digits, '.', '_' or '-'")


def check_products(value: object, source: Src) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[object] = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise fail(source, value, "a comma-separated list (or JSON array) of product ids")
    return tuple(sorted({check_product_id(p, source) for p in items}))


def check_content_safety_id(value: object, source: Src) -> str:
    """The ARM id of a Content Safety resource (a Cognitive Services account), canonical form."""
    expected = ("the resource id of an Azure AI Content Safety resource: /subscriptions/<sub>/"
                "resourceGroups/<rg>/providers/Microsoft.CognitiveServices/accounts/<name>")
    if not isinstance(value, str):
        raise fail(source, value, expected)
    try:
        ref = AccountRef.parse(value.strip())
    except InvalidInput as exc:
        raise fail(source, value, expected) from exc
    if ref.key != value.strip().rstrip("/").lower() and ref.key != value.strip().lower():
        raise fail(source, value, expected)
    return ref.id


def _split_url(value: object, source: Src, expected: str, max_len: int,
               chars: re.Pattern[str]) -> tuple[str, SplitResult, str, int | None]:
    """(value, parts, host, port) of a URL whose every character is in ``chars``. The whole-string
    check comes first: urlsplit silently drops tabs and newlines."""
    if not isinstance(value, str) or len(value) > max_len or not chars.fullmatch(value):
        raise fail(source, value, expected)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise fail(source, value, expected) from exc
    return value, parts, parts.hostname or "", port


def check_https_endpoint(value: object, source: Src) -> str:
    expected = "an https:// URL with a plain host name, optional port and path, no query or fragment"
    value, parts, host, port = _split_url(value, source, expected, 500, _URL_CHARS)
    if (parts.scheme != "https" or parts.query or parts.fragment or "?" in value or "#" in value
            or parts.username is not None or parts.password is not None or not _HOST.fullmatch(host)
            or not _URL_PATH.fullmatch(parts.path) or (port is not None and not 0 < port < 65536)
            or value != value.strip()):
        raise fail(source, value, expected)
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
        raise fail(source, value, expected)
    return value


def check_display_name(value: object, source: Src) -> str:
    if (not isinstance(value, str) or not value.strip() or len(value) > MAX_DISPLAY_NAME
            or not value.isprintable()):
        raise fail(source, value, f"printable text of 1-{MAX_DISPLAY_NAME} characters without control "
                    "characters")
    return value


def _positive_int(value: object, source: Src, what: str = "a positive integer") -> int:
    if isinstance(value, bool):
        raise fail(source, value, what)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise fail(source, value, what)
    if not 0 < number <= MAX_INT:
        raise fail(source, value, what)
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
    raise fail(source, value, "'on' or 'off'")


def setting_flag(value: str, source: Src) -> bool:
    on = parse_flag(value)
    if on is None:
        raise fail(source, value, "true or false")
    return on


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
        raise fail(source, value, expected)
    number, period = (p.strip() for p in value.split("/"))
    for p in QUOTA_PERIODS:
        if period.lower() == p.lower():
            try:
                return _positive_int(number, source, expected), p
            except InvalidInput:
                raise fail(source, value, expected) from None  # echo the whole value, not its number
    raise fail(source, value, expected)


def _optional(check: Callable[[object, Src], T]) -> Callable[[object, Src], T | None]:
    def parse(value: object, source: Src) -> T | None:
        return None if _is_off(value) else check(value, source)
    return parse


def _strict_bool(value: object, source: Src) -> bool:
    if isinstance(value, bool):
        return value
    raise fail(source, value, "true or false")


def parse_products(value: object, source: Src) -> tuple[str, ...]:
    """Product ids; None (an explicit option) is no products."""
    return () if value is None else check_products(value, source)


def parse_display_name(value: object, source: Src) -> str | None:
    """Free text, so 'off' is a name like any other: only None means none."""
    return None if value is None else check_display_name(value, source)


def parse_enabled(value: object, source: Src) -> bool:
    """The opt-in/opt-out tag's value: 'enabled' or 'disabled' (any case)."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in ("enabled", "disabled"):
        raise fail(source, value, "'enabled' or 'disabled'")
    return text == "enabled"


def _safety_from_tag(value: str, source: Source, settings: Settings) -> str | None:
    """The safety tag only switches: 'on' means the resource the setting names."""
    if not _switch(value, source):
        return None
    resource = settings.get("IMPORTER_CONTENT_SAFETY_ID").strip()
    if not resource:
        raise InvalidInput(f"{source.name}={value!r}{source.where}: content safety needs the setting "
                           "IMPORTER_CONTENT_SAFETY_ID (the resource id of an Azure AI Content Safety "
                           "resource); set it, or tag the account 'off'")
    return check_content_safety_id(resource, Source("setting IMPORTER_CONTENT_SAFETY_ID"))


# ---------------------------------------------------------------------------------------------
# The table

Parser = Callable[[object, Src], object]
TagParser = Callable[[str, Source, Settings], object]


@dataclass(frozen=True)
class Option:
    """One per-account option. ``field`` is the Options field it sets, or a part config folds into
    one (tokens_per_minute + token_quota → token_limit; token_metrics + metrics_namespace →
    token_metrics; semantic_cache_deployment → semantic_cache; content_safety_id → content_safety).
    ``parse`` reads a JSON value (an explicit option); a setting's text and a tag's value go through
    it too unless the row names its own parser for them (flags read 'true'/'on' words)."""

    field: str
    parse: Parser
    setting: str = ""
    tag: str = ""
    key: str = ""  # the JSON key of the HTTP body and of explicit options
    json: type = str  # the JSON type the HTTP body takes for ``key``
    cli: str = ""  # the plan/apply flag that sets ``key``
    values: str = ""  # docs/tags.md: what the tag takes
    doc: str = ""  # docs/tags.md: what the tag does
    default_doc: str = ""  # docs/tags.md: the default column, when not the setting's default
    parse_setting: Callable[[str, Src], object] | None = None
    parse_tag: TagParser | None = None

    def from_setting(self, text: str, source: Source) -> object:
        return (self.parse_setting or self.parse)(text, source)

    def from_tag(self, value: str, source: Source, settings: Settings) -> object:
        if self.parse_tag is not None:
            return self.parse_tag(value, source, settings)
        return self.parse(value, source)


def _tag_switch(value: str, source: Source, settings: Settings) -> bool:
    return _switch(value, source)


def flag(field: str, **where: str) -> Option:
    """An on/off option: a setting reads true/false words, a tag on/off words, JSON only a boolean."""
    return Option(field, _strict_bool, json=bool, values="`on` \\| `off`", parse_setting=setting_flag,
                  parse_tag=_tag_switch, **where)


def _either(items: Iterable[str]) -> str:
    """``a, b or c``."""
    *rest, last = items
    return f"{', '.join(rest)} or {last}" if rest else last


def _one_of(kind: type[StrEnum]) -> str:
    return " \\| ".join(f"`{m.value}`" for m in kind)


OPTIONS: tuple[Option, ...] = (
    Option(
        "enabled", parse_enabled, tag=TAG_ENABLED, values="`enabled` \\| `disabled`",
        doc="Opt in or out. With `IMPORTER_OPT_IN=false` (the default), every account in scope is imported "
        "unless it has `disabled`. With `IMPORTER_OPT_IN=true`, only accounts with `enabled` are imported. "
        "A disabled account is offboarded: the objects the importer made for it are deleted. Its other "
        "tags are then not read."),
    Option(
        "modes", parse_modes, setting="IMPORTER_MODE", tag="apim-importer-mode", key="mode", cli="--mode",
        values=_one_of(Mode) + ", or a comma-separated set of them",
        doc="The client-compatibility mode(s). Each mode is its own API, path "
        + _either(f"`{{base}}/{m.suffix}`" for m in Mode) + "; the tag replaces the set of the setting. "
        "Removing a mode removes its API. An `OpenAI`-kind "
        "account can't serve `azure-ai`: a set naming it is refused."),
    Option(
        "base_path", check_base_path, setting="IMPORTER_BASE_PATH", tag="apim-importer-base-path",
        key="basePath", values="path such as `ai/{account}`",
        doc="The API's base path. Segments of letters, digits and `._~-` separated by `/`, with no leading "
        f"or trailing `/`, at most {MAX_BASE_PATH} characters. `{{account}}` stands for the lowercase "
        "account name."),
    Option(
        "products", parse_products, setting="IMPORTER_PRODUCTS", tag="apim-importer-products",
        key="products", json=list, values="comma list of product ids",
        doc="Existing APIM products the API is linked to. Each id is a letter or digit, then up to 79 "
        "letters, digits, `_` or `-`. The importer only adds links. It never removes a link someone else "
        "added."),
    Option(
        "tokens_per_minute", parse_tpm, setting="IMPORTER_TOKENS_PER_MINUTE", tag="apim-importer-tpm",
        key="tokensPerMinute", json=int, values="positive integer \\| `off`",
        doc="Token rate limit per subscription key, in tokens per minute. Over the limit, callers get "
        "429."),
    Option(
        "token_quota", parse_quota, setting="IMPORTER_TOKEN_QUOTA", tag="apim-importer-quota",
        key="tokenQuota", values="`N/Period` \\| `off`",
        doc="Token quota per subscription key. Period is one of "
        + _either(f"`{p}`" for p in QUOTA_PERIODS) + ". Over the quota, "
        "callers get 403. It combines with `apim-importer-tpm`: each tag switches only its own part."),
    flag(
        "token_metrics", setting="IMPORTER_TOKEN_METRICS", tag="apim-importer-metrics", key="tokenMetrics",
        doc="Emit token-usage metrics in namespace `IMPORTER_METRICS_NAMESPACE`, with dimensions API ID, "
        "Subscription ID and Operation ID. They reach Application Insights only through an "
        "`applicationinsights` diagnostic with metrics on: with `IMPORTER_APIM_LOGGER` set, the importer "
        "keeps the API's own on that logger; otherwise a service-level one must exist."),
    Option("metrics_namespace", check_namespace, setting="IMPORTER_METRICS_NAMESPACE"),
    Option(
        "semantic_cache_deployment", _optional(check_deployment_name),
        setting="IMPORTER_SEMANTIC_CACHE_DEPLOYMENT", tag="apim-importer-cache",
        key="semanticCacheDeployment", values="embeddings deployment name \\| `off`",
        doc="Semantic caching that uses this embeddings deployment on the same account. The deployment "
        "must exist and be Succeeded. APIM needs an external Redis-compatible cache with RediSearch "
        "registered at `{apim}/caches`."),
    Option(
        "content_safety_id", _optional(check_content_safety_id), setting="IMPORTER_CONTENT_SAFETY_ID",
        tag="apim-importer-safety", key="contentSafetyId", values="`on` \\| `off`",
        default_doc="on when `IMPORTER_CONTENT_SAFETY_ID` is set", parse_tag=_safety_from_tag,
        doc="Azure AI Content Safety on prompts (`llm-content-safety`). `on` needs "
        "`IMPORTER_CONTENT_SAFETY_ID`. The importer reads that resource's endpoint, writes a backend that "
        "authenticates with APIM's managed identity, and grants that identity Cognitive Services User on "
        "the resource (removed when no imported API uses it; docs/policy.md)."),
    flag(
        "circuit_breaker", setting="IMPORTER_CIRCUIT_BREAKER", tag="apim-importer-circuit-breaker",
        key="circuitBreaker", doc="Add a circuit breaker to the account's backends."),
    Option("policy_fragment", _optional(check_fragment_id), setting="IMPORTER_POLICY_FRAGMENT",
           key="policyFragment"),
    flag("adopt", setting="IMPORTER_ADOPT", key="adopt"),
    flag("enable_apim_identity", setting="IMPORTER_ENABLE_APIM_IDENTITY", key="enableApimIdentity"),
    Option("display_name", parse_display_name, key="displayName"),
    Option(
        "openapi", parse_openapi, setting="IMPORTER_OPENAPI", tag="apim-importer-openapi", key="openapi",
        cli="--openapi", values=_one_of(OpenApi),
        doc="Which OpenAPI document the API is imported from. `bundled` is the project's own document for "
        "the mode, sent inline. `official` is Microsoft's document for the mode, imported by link from "
        "`IMPORTER_OPENAPI_BASE_URL` (`AIFoundryOpenAI.json`, `AIFoundryAzureAI.json` or "
        "`AIFoundryOpenAIV1.json`). The importer downloads it too, to know its operations; in this mode "
        "operations are compared by method and path without the query part, because how APIM templates a "
        "third-party document's required query parameters can't be checked offline. Switching re-imports "
        "the API: the link is a line of the API's description."),
    Option("openapi_base_url", check_openapi_base_url, setting="IMPORTER_OPENAPI_BASE_URL"),
    Option("apim_logger", _optional(check_logger_id), setting="IMPORTER_APIM_LOGGER"),
    flag(
        "llm_logging", setting="IMPORTER_LLM_LOGGING", tag="apim-importer-llm-logging", key="llmLogging",
        doc="Log LLM request and response messages (prompts and completions) through the API's "
        "`azuremonitor` diagnostic (`largeLanguageModel`). `off` turns it off again on that diagnostic."),
)

BY_TAG: dict[str, Option] = {o.tag: o for o in OPTIONS if o.tag}
BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS if o.key}
FROM_SETTINGS: tuple[Option, ...] = tuple(o for o in OPTIONS if o.setting)
TAGS: tuple[str, ...] = tuple(BY_TAG)
KEYS: tuple[str, ...] = tuple(BY_KEY)
# The JSON type of each option key in an HTTP body (POST /api/imports).
JSON_TYPES: dict[str, type] = {o.key: o.json for o in OPTIONS if o.key}
CLI_FLAGS: dict[str, str] = {o.cli: o.key for o in OPTIONS if o.cli}


# ---------------------------------------------------------------------------------------------
# docs/tags.md


def _default_doc(option: Option, settings: Settings) -> str:
    if option.default_doc:
        return option.default_doc
    if not option.setting:
        return "none"
    default = settings.get(option.setting)
    return f"`{option.setting}` ({f'`{default}`' if default else 'none'})"


def tags_table() -> str:
    """The table of tags in docs/tags.md, as the table above says it (tests keep the doc in step)."""
    defaults = Settings({})
    rows = ["| tag | values | default (setting) | what it does |", "| --- | --- | --- | --- |"]
    rows += [f"| `{o.tag}` | {o.values} | {_default_doc(o, defaults)} | {o.doc} |" for o in OPTIONS if o.tag]
    return "\n".join(rows) + "\n"
