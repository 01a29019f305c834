"""checkov over infra/ (offline, --framework bicep): zero failed checks, every file parsed, and each skip
written inline next to the resource as `// checkov:skip=CKV_...:reason`.

Runs in the default test run. One scan takes about 10-15 s on a 2-core machine; the session runs two
(the --quiet one shared through the `checkov_report` fixture in conftest.py, and a full one that lists
skipped checks). Deselect with -m "not checkov".
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.infra.bicep import INFRA, bicep_files
from tests.infra.conftest import checkov_command, checkov_env

pytestmark = pytest.mark.checkov

SKIP_RE = re.compile(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def _inline_skips() -> dict[tuple[str, str], str]:
    skips: dict[tuple[str, str], str] = {}
    for path in bicep_files():
        for line in path.read_text().splitlines():
            match = SKIP_RE.search(line)
            if match:
                assert line.strip().startswith("// checkov:skip="), (
                    f"{path.name}: skip must be a // comment: {line}"
                )
                skips[(path.relative_to(INFRA).as_posix(), match.group(1))] = (match.group(2) or "").strip()
    return skips


def test_checkov_finds_no_failed_checks(checkov_report) -> None:
    failed = checkov_report["results"].get("failed_checks", [])
    summary = [f"{c['check_id']} {c['file_path']} {c['resource']}: {c['check_name']}" for c in failed]
    assert summary == [], f"checkov took {checkov_report['_elapsed_seconds']} s"


def test_checkov_parsed_every_file(checkov_report) -> None:
    summary = checkov_report["summary"]
    # pycep (checkov's Bicep parser) silently skips files it cannot parse; a skipped file is unchecked.
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 40
    assert summary["failed"] == 0


def test_every_inline_skip_has_a_reason() -> None:
    skips = _inline_skips()
    assert skips, "expected the documented skips"
    for (file, check), reason in skips.items():
        assert len(reason) >= 30, f"{file}: {check} needs a real reason, got {reason!r}"


def test_inline_skips_match_what_checkov_skipped() -> None:
    """A skip that no longer matches a check is stale; the non-quiet run would list it, so compare
    against a second, non-quiet run (--quiet drops skipped checks from the JSON): every skip in the
    Bicep must be a check checkov runs on that file, and checkov must have read its reason."""
    command = [c for c in checkov_command() if c != "--quiet"]
    proc = subprocess.run(command, capture_output=True, text=True, env=checkov_env(), timeout=600)
    data = json.loads(proc.stdout)
    if isinstance(data, list):
        data = next(d for d in data if d.get("check_type") == "bicep")
    skipped = {(c["file_path"].lstrip("/"), c["check_id"]) for c in data["results"].get("skipped_checks", [])}
    assert set(_inline_skips()) == skipped
    for check in data["results"].get("skipped_checks", []):
        assert check["check_result"].get("suppress_comment"), check["check_id"]
