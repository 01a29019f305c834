"""Set-up for the policy-expression tests: Mono's C# compiler (mono-mcs) and one compilation of every
policy the importer renders. Without mcs these tests skip with the reason and the install hint; in
CI (the CI variable set) a missing compiler is a failure, not a skip."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from importer.model import Mode
from tests.expressions import csharp, policies

REPORT: list[str] = []


@dataclass(frozen=True)
class Family:
    """Rendered policies and their distinct XMLs, each compiled as one class (``prefix`` + number)."""
    rendered: list[policies.Rendered]
    classes: dict[str, str]  # class name -> policy XML (distinct policies)
    class_of: dict[str, str]  # policy XML -> class name

    @classmethod
    def of(cls, rendered: list[policies.Rendered], prefix: str) -> Family:
        classes: dict[str, str] = {}
        class_of: dict[str, str] = {}
        for r in rendered:
            if r.xml not in class_of:
                class_of[r.xml] = f"{prefix}{len(classes)}"
                classes[class_of[r.xml]] = r.xml
        return cls(rendered, classes, class_of)

    @cached_property
    def _modes(self) -> dict[str, frozenset[Mode]]:
        out: dict[str, set[Mode]] = {}
        for r in self.rendered:
            out.setdefault(self.class_of[r.xml], set()).add(r.mode)
        return {name: frozenset(modes) for name, modes in out.items()}

    def modes(self, name: str) -> frozenset[Mode]:
        """The modes whose rendered policies compiled to class ``name``."""
        return self._modes[name]


@dataclass(frozen=True)
class Build:
    mono: str
    mcs: str
    compiled: csharp.Compiled
    workdir: Path
    account: Family  # the account APIs' policies (classes P0, P1, ...)
    # The unified pool APIs' policies (IMPORTER_POOL_PATH), compiled in the same run: the same shapes.
    pool: Family  # classes Pool0, Pool1, ...


# Expressions that the allowed-types check must refuse (a test of the check), compiled alongside.
CANARY_POLICY = """<policies><inbound>
<set-variable name="file" value="@(System.IO.File.Exists(&quot;/etc/hostname&quot;))"/>
<set-variable name="reflection" value="@(context.GetType().Assembly.FullName)"/>
<set-variable name="environment" value="@(Environment.GetEnvironmentVariable(&quot;HOME&quot;))"/>
<choose><when condition="@(context.Request.Body.As&lt;JObject&gt;() != null)"><return-response>
<set-status code="418"/></return-response></when></choose>
</inbound><backend/><outbound/><on-error/></policies>"""


@pytest.fixture(scope="session")
def mono_tools() -> tuple[str, str]:
    found = csharp.tools()
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the policy-expression tests: {found}")
        pytest.skip(found)
    return found


@pytest.fixture(scope="session")
def build(mono_tools: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Build:
    mcs, mono = mono_tools
    account = Family.of(policies.every_policy(), "P")
    pool = Family.of(policies.every_pool_policy(), "Pool")
    workdir = tmp_path_factory.mktemp("expressions")
    compiled = csharp.compile_policies({**account.classes, **pool.classes, "Canary": CANARY_POLICY}, workdir,
                                       mcs)
    rendered, classes = account.rendered, account.classes
    occurrences = sum(len(csharp.expressions(r.xml)) for r in rendered)
    distinct = {e.text for r in rendered for e in csharp.expressions(r.xml)}
    compiled_count = sum(len(csharp.expressions(x)) for x in classes.values())
    REPORT.append(f"policy expressions: {len(rendered)} rendered policies ({len(classes)} distinct), "
                  f"{occurrences} expressions in them ({compiled_count} in the distinct policies, "
                  f"{len(distinct)} distinct texts); one mcs run compiled them in "
                  f"{compiled.seconds:.2f} s; with them {len(pool.rendered)} unified pool API policies "
                  f"({len(pool.classes)} distinct)")
    return Build(mono, mcs, compiled, workdir, account, pool)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in REPORT:
        terminalreporter.write_line(line)
