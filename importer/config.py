"""Config: settings defaults, then the account's ARM tags, then explicit overrides → Options.

Pure. No I/O. Which setting, tag and JSON key feed which option, and how each value is parsed, is
the table in options.py; this module layers them. Anything invalid is refused with InvalidInput
naming its source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from importer.model import (
    AccountRef,
    ContentSafety,
    InvalidInput,
    Options,
    SemanticCache,
    TokenLimit,
    TokenMetrics,
)
from importer.options import (
    BY_KEY,
    BY_TAG,
    FROM_SETTINGS,
    KEYS,
    TAG_ENABLED,
    TAG_PREFIX,
    TAGS,
    Source,
    check_base_path,
    check_content_safety_id,
    check_deployment_name,
    check_display_name,
    check_fragment_id,
    check_logger_id,
    check_namespace,
    check_openapi_base_url,
    check_product_id,
    fail,
    parse_enabled,
    parse_openapi,
    setting_flag,
)
from importer.settings import Settings

# ---------------------------------------------------------------------------------------------
# Layers


def _tags_lower(tags: Mapping[str, str], where: str) -> dict[str, str]:
    """Tag keys are case-insensitive in Azure; keep only ours, refuse unknown ones of our prefix."""
    out: dict[str, str] = {}
    for key, value in tags.items():
        k = str(key).strip().lower()
        if k != TAG_PREFIX and not k.startswith(TAG_PREFIX + "-"):
            continue
        if k not in BY_TAG:
            raise InvalidInput(f"unknown tag {key!r}{where}: the importer reads only "
                               + ", ".join(TAGS) + " (see docs/tags.md)")
        text = "" if value is None else str(value)
        if k in out and out[k] != text:
            raise InvalidInput(f"tag {k!r}{where} appears twice with different values")
        out[k] = text
    return out


# Scratch for one resolution: option field → value. Token limit, metrics, cache and safety are kept
# as parts so a later layer can change one part (say the quota) and keep the others; _build folds them.
Values = dict[str, Any]


def _build(values: Values) -> Options:
    parts = dict(values)
    tpm, quota = parts.pop("tokens_per_minute"), parts.pop("token_quota")
    metrics, namespace = parts.pop("token_metrics"), parts.pop("metrics_namespace")
    cache, safety = parts.pop("semantic_cache_deployment"), parts.pop("content_safety_id")
    limit = None
    if tpm is not None or quota is not None:
        limit = TokenLimit(tokens_per_minute=tpm, quota=None if quota is None else quota[0],
                           quota_period=None if quota is None else quota[1])
    return replace(
        Options(**parts),
        token_limit=limit,
        token_metrics=TokenMetrics(namespace=namespace) if metrics else None,
        semantic_cache=None if cache is None else SemanticCache(cache),
        content_safety=None if safety is None else ContentSafety(safety),
    )


def _apply_settings(values: Values, s: Settings) -> None:
    retired = s.retired()
    if retired:
        name, advice = sorted(retired.items())[0]
        raise InvalidInput(f"setting {name} is no longer read: {advice}")
    for option in FROM_SETTINGS:
        values[option.field] = option.from_setting(s.get(option.setting).strip(),
                                                   Source(f"setting {option.setting}"))


def _apply_tags(values: Values, tags: dict[str, str], where: str, s: Settings) -> None:
    for tag, raw in sorted(tags.items()):
        if tag == TAG_ENABLED:
            continue  # read by enabled()
        src = Source(f"tag {tag}", where)
        value = raw.strip()
        if not value:
            raise fail(src, raw, "a value (see docs/tags.md; 'off' turns a feature off)")
        option = BY_TAG[tag]
        values[option.field] = option.from_tag(value, src, s)


def _apply_overrides(values: Values, overrides: Mapping[str, object]) -> None:
    unknown = sorted(k for k in overrides if k not in BY_KEY)
    if unknown:
        raise InvalidInput(f"unknown option(s) {', '.join(map(repr, unknown))}: expected "
                           + ", ".join(KEYS))
    for key, value in overrides.items():
        option = BY_KEY[key]
        values[option.field] = option.parse(value, Source(f"option {key}"))


def enabled(settings: Settings, tags: Mapping[str, str], account: str = "") -> bool:
    """The opt-in/opt-out rule alone: IMPORTER_OPT_IN=true imports only accounts tagged
    ``apim-importer=enabled``; otherwise every account unless tagged ``apim-importer=disabled``."""
    where = f" on account {account}" if account else ""
    opt_in = setting_flag(settings.get("IMPORTER_OPT_IN").strip(), Source("setting IMPORTER_OPT_IN"))
    # Read only this tag: a disabled account's other tags, even bad ones, must not block offboarding.
    found = {"" if v is None else str(v) for k, v in tags.items() if str(k).strip().lower() == TAG_ENABLED}
    if len(found) > 1:
        raise InvalidInput(f"tag {TAG_ENABLED!r}{where} appears twice with different values")
    raw = found.pop() if found else None
    if raw is None:
        return not opt_in
    return parse_enabled(raw, Source(f"tag {TAG_ENABLED}", where))


def resolve_options(settings: Settings, tags: Mapping[str, str],
                    overrides: Mapping[str, object] | None = None, *, account: str = "") -> Options:
    """Options for one account: settings < the account's tags < explicit overrides.

    An account that is not enabled gets ``enabled=False`` and its other tags are not read (a
    disabled account's tags cannot block anything); settings and overrides are still checked.
    ``account`` (a name or id) only makes error messages say which account a tag sits on.
    """
    where = f" on account {account}" if account else ""
    values: Values = {}
    _apply_settings(values, settings)
    values["enabled"] = enabled(settings, tags, account)
    if values["enabled"]:
        _apply_tags(values, _tags_lower(tags, where), where, settings)
    _apply_overrides(values, overrides or {})
    return _build(values)


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
