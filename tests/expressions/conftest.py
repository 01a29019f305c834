"""Set-up for the policy-expression tests: Mono's C# compiler (mono-mcs) and one compilation of every
policy the importer renders. Without mcs these tests skip with the reason and the install hint; in
CI (the CI variable set) a missing compiler is a failure, not a skip."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.expressions import csharp, policies

REPORT: list[str] = []


@dataclass(frozen=True)
class Build:
    mono: str
    mcs: str
    compiled: csharp.Compiled
    workdir: Path
    rendered: list[policies.Rendered]
    classes: dict[str, str]  # class name -> policy XML (distinct policies)
    class_of: dict[str, str]  # policy XML -> class name
    # The unified pool APIs' policies (IMPORTER_POOL_PATH), compiled in the same run: the same shapes.
    pool_rendered: list[policies.Rendered]
    pool_classes: dict[str, str]
    pool_class_of: dict[str, str]


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
    rendered = policies.every_policy()
    classes: dict[str, str] = {}
    class_of: dict[str, str] = {}
    for r in rendered:
        if r.xml not in class_of:
            class_of[r.xml] = f"P{len(classes)}"
            classes[class_of[r.xml]] = r.xml
    pool_rendered = policies.every_pool_policy()
    pool_classes: dict[str, str] = {}
    pool_class_of: dict[str, str] = {}
    for r in pool_rendered:
        if r.xml not in pool_class_of:
            pool_class_of[r.xml] = f"Pool{len(pool_classes)}"
            pool_classes[pool_class_of[r.xml]] = r.xml
    workdir = tmp_path_factory.mktemp("expressions")
    compiled = csharp.compile_policies({**classes, **pool_classes, "Canary": CANARY_POLICY}, workdir, mcs)
    occurrences = sum(len(csharp.expressions(r.xml)) for r in rendered)
    distinct = {e.text for r in rendered for e in csharp.expressions(r.xml)}
    compiled_count = sum(len(csharp.expressions(x)) for x in classes.values())
    REPORT.append(f"policy expressions: {len(rendered)} rendered policies ({len(classes)} distinct), "
                  f"{occurrences} expressions in them ({compiled_count} in the distinct policies, "
                  f"{len(distinct)} distinct texts); one mcs run compiled them in "
                  f"{compiled.seconds:.2f} s; with them {len(pool_rendered)} unified pool API policies "
                  f"({len(pool_classes)} distinct)")
    return Build(mono, mcs, compiled, workdir, rendered, classes, class_of, pool_rendered, pool_classes,
                 pool_class_of)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in REPORT:
        terminalreporter.write_line(line)
