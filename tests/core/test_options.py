"""options.OPTIONS is the one option table: config, the HTTP schema, the CLI and docs/tags.md follow it.

The contract lists below are what tooling outside the repository relies on (tag names, JSON keys
and their types, CLI flags): the table may grow, but these must not change by accident.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from importer import cli, config, options, service
from importer.model import InvalidInput, Mode, OpenApi, Options
from importer.settings import SETTINGS
from tests.core.factory import settings

ROOT = Path(__file__).resolve().parents[2]
TAGS_DOC = (ROOT / "docs" / "tags.md").read_text()

CONTRACT_TAGS = (
    "apim-importer", "apim-importer-mode", "apim-importer-base-path", "apim-importer-products",
    "apim-importer-tpm", "apim-importer-quota", "apim-importer-metrics", "apim-importer-cache",
    "apim-importer-safety", "apim-importer-circuit-breaker", "apim-importer-openapi",
    "apim-importer-llm-logging",
)
CONTRACT_BODY = {
    "account": str, "dryRun": bool, "wait": bool, "mode": str, "basePath": str, "products": list,
    "tokensPerMinute": int, "tokenQuota": str, "tokenMetrics": bool, "semanticCacheDeployment": str,
    "contentSafetyId": str, "circuitBreaker": bool, "policyFragment": str, "adopt": bool,
    "enableApimIdentity": bool, "displayName": str, "openapi": str, "llmLogging": bool,
}
# Parts config folds into one Options field (config._build).
PARTS = {"tokens_per_minute", "token_quota", "token_metrics", "metrics_namespace",
         "semantic_cache_deployment", "content_safety_id"}


def test_the_contract_names_are_the_tables() -> None:
    assert options.TAGS == CONTRACT_TAGS
    assert service._IMPORT_FIELDS == CONTRACT_BODY
    assert list(service._IMPORT_FIELDS) == list(CONTRACT_BODY)  # the order type errors are checked in
    assert options.KEYS == tuple(k for k in CONTRACT_BODY if k not in ("account", "dryRun", "wait"))
    assert options.CLI_FLAGS == {"--mode": "mode", "--openapi": "openapi"}


def test_every_row_names_a_declared_setting_and_a_field_it_can_set() -> None:
    declared = {s.name for s in SETTINGS}
    fields = {f.name for f in dataclasses.fields(Options)}
    for option in options.OPTIONS:
        assert option.setting == "" or option.setting in declared, option
        assert option.field in fields | PARTS, option
        assert option.setting or option.tag or option.key, option
        assert (option.tag == "") == (option.doc == ""), option  # a tag is documented, only a tag
    assert len({o.field for o in options.OPTIONS}) == len(options.OPTIONS)


@pytest.mark.parametrize("option", [o for o in options.OPTIONS if o.key], ids=lambda o: o.key)
def test_each_json_key_sets_its_field(option: options.Option) -> None:
    """An override that is wrong for the key's type is refused, naming the key: the row's parser ran."""
    wrong: object = 12345 if option.json is not int else "twelve"
    if option.json is str and option.key == "displayName":
        wrong = ["not", "text"]
    with pytest.raises(InvalidInput, match=f"option {option.key}="):
        config.resolve_options(settings(), {}, {option.key: wrong})


def test_the_tag_table_in_the_doc_is_the_tables() -> None:
    expected = options.tags_table()
    assert expected in TAGS_DOC, ("docs/tags.md's table differs from options.tags_table(); paste its "
                                  "output:\n" + expected)


def test_the_doc_lists_the_explicit_options_and_flags() -> None:
    line = re.search(r"3\. \*\*Explicit options\*\*:(.*?)An unknown key", TAGS_DOC, re.S)
    assert line is not None
    flags, body = line.group(1).split("HTTP API body")
    assert re.findall(r"`(--[a-z-]+)`", flags) == list(options.CLI_FLAGS)
    assert re.findall(r"`([A-Za-z]+)`", body.split(")")[0]) == list(options.KEYS)


def test_the_doc_names_every_setting_without_a_tag() -> None:
    section = TAGS_DOC.split("## Settings with no tag", 1)[1].split("\n## ", 1)[0]
    for option in options.OPTIONS:
        if option.setting and not option.tag:
            assert f"`{option.setting}`" in section, option.setting


def test_the_cli_choices_are_the_enums() -> None:
    plan = cli.parser()._subparsers._group_actions[0].choices["plan"]  # type: ignore[union-attr]
    by_flag = {a.option_strings[0]: a for a in plan._actions if a.option_strings}
    assert list(by_flag["--openapi"].choices) == [m.value for m in OpenApi]
    for mode in Mode:
        assert mode.value in by_flag["--mode"].help
    for flag in options.CLI_FLAGS:
        assert flag in by_flag
