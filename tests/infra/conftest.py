"""Fixtures for the infra tests. The checkov scan runs once per session (it takes ~15-30 s)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep import INFRA


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "checkov: runs checkov over infra/ (offline; part of the default run, ~15-30 s)"
    )


def checkov_command() -> list[str]:
    # checkov lives in its own virtualenv (.tools/checkov, made by `make test`): its pins
    # (packaging<24, …) conflict with pytest's and the Azure SDKs', so it never shares ours.
    isolated = Path(__file__).resolve().parents[2] / ".tools" / "checkov" / "bin" / "checkov"
    exe = str(isolated) if isolated.exists() else (
        shutil.which("checkov") or str(Path(sys.executable).with_name("checkov")))
    return [
        exe,
        "-d",
        str(INFRA),
        "--framework",
        "bicep",
        "--quiet",
        "--compact",
        "-o",
        "json",
        "--skip-download",
    ]


def checkov_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_API_KEY", "PRISMA_"))}
    env.update(
        {
            "BC_SKIP_MAPPING": "TRUE",  # no guideline download
            "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",  # no package scan (needs the platform)
            "CHECKOV_NO_OUTPUT_VERSION_CHECK": "true",
            "BC_SKIP_VERSION_CHECK": "true",
            "ANSI_COLORS_DISABLED": "true",
        }
    )
    return env


@pytest.fixture(scope="session")
def checkov_report() -> dict[str, Any]:
    if not Path(checkov_command()[0]).exists():
        pytest.fail("checkov is not installed: run `make test` (it makes .tools/checkov)")
    started = time.monotonic()
    proc = subprocess.run(checkov_command(), capture_output=True, text=True, env=checkov_env(), timeout=600)
    elapsed = time.monotonic() - started
    out = proc.stdout.strip()
    try:
        data = json.loads(out) if out else {}
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON (exit {proc.returncode}): {out[:500]} {proc.stderr[-1500:]}")
    if isinstance(data, list):  # one report per framework; only bicep is asked for
        data = next((d for d in data if d.get("check_type") == "bicep"), data[0])
    data["_elapsed_seconds"] = round(elapsed, 1)
    data["_returncode"] = proc.returncode
    return data
