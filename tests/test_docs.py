"""The README and examples stay true to the code: every setting is documented and exemplified."""

from __future__ import annotations

import json
from pathlib import Path

from importer.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_in_the_readme_and_the_local_settings_example() -> None:
    readme = (ROOT / "README.md").read_text()
    example = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    for s in SETTINGS:
        assert f"`{s.name}`" in readme, s.name
        if s.name != "AzureWebJobsStorage__accountName":  # identity-based: Azure only
            assert s.name in example, s.name
    extra = set(example) - {s.name for s in SETTINGS} - {"FUNCTIONS_WORKER_RUNTIME",
                                                          "AzureWebJobsFeatureFlags"}
    assert not extra, f"example sets settings the code never reads: {extra}"


def test_readme_links_resolve() -> None:
    import re

    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_readme_commands_match_the_cli() -> None:
    from importer.cli import parser

    commands = set(parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    readme = (ROOT / "README.md").read_text()
    for command in commands:
        assert f"python -m importer {command}" in readme, command
    assert "make demo" in readme and "make test" in readme
