"""The layers hold: the import contracts in .importlinter are kept, and each kind of contract bites.

`make check` runs `lint-imports` too; this test is how `make test` (and so CI) enforces it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("importer", "armsim", "devhost")
CONTRACTS = len(re.findall(r"^\[importlinter:contract:", (ROOT / ".importlinter").read_text(), re.M))


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_the_import_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert CONTRACTS == 7
    assert f"Contracts: {CONTRACTS} kept, 0 broken." in result.stdout


def test_the_urllib_exceptions_parse_strings_only() -> None:
    # import-linter sees an external package by its root (urllib), so .importlinter names the core's
    # two imports and the adapters' as exceptions; what they import must stay urllib.parse.
    graph = grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)
    for module in ("importer.options", "importer.probe_rules"):
        assert graph.get_import_details(importer=module, imported="urllib"), (
            f"{module} no longer imports urllib: drop its exception from .importlinter")
    # Nor do the adapters use urllib for I/O: their HTTP goes through azure-core's pipeline.
    for module in sorted(graph.find_modules_that_directly_import("urllib")):
        if not module.startswith("importer."):
            continue
        for detail in graph.get_import_details(importer=module, imported="urllib"):
            assert detail["line_contents"].startswith("from urllib.parse import"), detail


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three packages and the contracts, copied: each case below plants one import there."""
    root = tmp_path_factory.mktemp("layers")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", root / ".importlinter")
    return root


PURE, ADAPTERS = "The pure core imports no adapter", "Only the adapters import the Azure SDK"
TOP, HOST = "Top level: devhost runs the product", "The product never imports the function app"
TIERS = "importer in tiers"
ARMSIM = "armsim: the server starts the gateway"


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("importer/plan.py", "import importer.azure.arm", {PURE, TIERS}),
    ("importer/azure/fetch.py", "import importer.reconcile", {TIERS}),
    ("importer/azure/errors.py", "import importer.state.storage", {TIERS}),
    ("importer/render.py", "import urllib.request", {PURE, ADAPTERS}),
    ("importer/reconcile.py", "import azure.core.exceptions", {ADAPTERS}),
    ("importer/fleet.py", "import devhost.seed", {TOP}),
    ("importer/cli.py", "import armsim.server", {TOP}),
    ("importer/service.py", "import function_app", {HOST}),
    ("armsim/answers.py", "import azure.core", {"The stand-in imports no azure.*"}),
    ("armsim/gateway.py", "import armsim.server", {ARMSIM}),
    # the shared state never imports the request context that holds it (Ctx reaches it through a protocol)
    ("armsim/state.py", "import armsim.context", {ARMSIM}),
    # the ground floor imports nothing from the floors above it
    ("armsim/answers.py", "import armsim.store", {ARMSIM}),
])
def test_each_contract_catches_a_planted_import(copy: Path, module: str, line: str, broken: set[str]) -> None:
    path = copy / module
    original = path.read_text()
    path.write_text(f"{original}\n{line}  # planted\n")
    try:
        result = lint_imports(copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0, result.stdout
    broken_section = result.stdout.split("Broken contracts", 1)[-1]
    assert all(name in broken_section for name in broken), result.stdout
    assert f"Contracts: {CONTRACTS - len(broken)} kept, {len(broken)} broken." in result.stdout, result.stdout
