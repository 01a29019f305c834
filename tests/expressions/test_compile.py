"""Every expression of every policy the importer renders compiles against the documented context,
uses only the .NET types Microsoft allows, and a broken expression fails the compile."""

from __future__ import annotations

from lxml import etree

from importer import options, pools, render
from importer.model import Mode
from tests.expressions import csharp, policies
from tests.expressions.conftest import Build


def _expected_count(r: policies.Rendered) -> int:
    """The requested-deployment value, the 400 and the 404 conditions, the 404's body naming the
    deployment; the counter key with a token limit; the two vary-by keys (subscription, requested
    deployment) with the semantic cache."""
    on = {k for k, v in r.overrides if v not in ("off", False)}
    return 4 + bool(on & {"tokensPerMinute", "tokenQuota"}) + 2 * ("semanticCacheDeployment" in on)


def test_every_expression_of_every_rendered_policy_compiles(build: Build) -> None:
    assert build.compiled.ok, build.compiled.output
    assert len(build.account.rendered) == len(Mode) * 2 ** len(policies.POLICY_OPTIONS)
    # Each mode's policy names its own backend (ids differ per mode), so no two modes share one; the
    # token limit has four shapes (off, per minute, quota, both).
    assert len(build.account.classes) == len(Mode) * 4 * 2 ** 4
    for r in build.account.rendered:
        found = csharp.expressions(r.xml)
        assert len(found) == _expected_count(r), (r.mode, r.overrides)
        fixed = {*render.REQUESTED_EXPRESSION.values(), render.COUNTER_KEY, render.INVALID_JSON_CONDITION,
                 render.DENY_CONDITION, render.NOT_FOUND_BODY, render.VARY_BY, render.VARY_BY_DEPLOYMENT}
        assert {e.text for e in found} <= fixed


def test_every_expression_of_every_unified_pool_policy_compiles(build: Build) -> None:
    """The unified pool APIs' policies (IMPORTER_POOL_PATH) compile in the same run: the account
    policy's expressions for the same options, plus the pool choice and the retry condition."""
    assert build.compiled.ok, build.compiled.output
    assert len(build.pool.rendered) == len(Mode) * 2 ** len(policies.POOL_POLICY_OPTIONS)
    for r in build.pool.rendered:
        found = sorted(e.text for e in csharp.expressions(r.xml))
        same = [e.text for e in csharp.expressions(policies.render_one(r.mode, dict(r.overrides)))]
        assert found == sorted([*same, pools.POOL_EXPRESSION, pools.RETRY_CONDITION]), (r.mode, r.overrides)


def test_the_options_left_out_do_not_change_the_policy() -> None:
    """The enumeration covers every option: the others leave the policy as it is."""
    assert set(policies.POLICY_OPTIONS) | set(policies.OTHER_OPTIONS) | {"mode"} == set(options.KEYS)
    for mode in Mode:
        for on in ({}, {k: v[1] for k, v in policies.POLICY_OPTIONS.items()}):
            base = policies.render_one(mode, on)
            for key, value in policies.OTHER_OPTIONS.items():
                assert policies.render_one(mode, {**on, key: value}) == base, (mode, key)


def test_no_expression_uses_a_type_outside_microsofts_list(build: Build) -> None:
    assert build.compiled.ok, build.compiled.output
    found = csharp.check_types(build.mono, build.compiled.exe, build.workdir)
    ours = [f for f in found if not f["method"].startswith("Canary.")]
    assert len([f for f in ours if "." not in f["method"].split(".", 1)[1]]) == sum(
        len(csharp.expressions(x)) for x in [*build.account.classes.values(), *build.pool.classes.values()])
    assert any(f["method"].startswith("Pool") for f in ours)  # the unified pool policies are checked too
    assert [f for f in ours if f["disallowed"]] == []
    # The check refuses what APIM refuses: file access, reflection, the environment.
    canary = {f["method"]: f["disallowed"] for f in found if f["method"].startswith("Canary.")}
    assert "System.IO.File::Exists" in canary["Canary.E0"]
    assert {"System.Object::GetType", "System.Type::Assembly"} <= set(canary["Canary.E1"])
    assert "System.Environment::GetEnvironmentVariable" in canary["Canary.E2"]
    assert canary["Canary.E3"] == []


def test_the_allowed_types_table_is_microsofts() -> None:
    table = csharp.allowed_types()
    assert len(table) == 129  # the rows of the table
    assert table["System.String"] == table["System.Collections.Generic.IReadOnlyDictionary`2"] == ["All"]
    assert table["System.Text.RegularExpressions.Regex"][0] == "(Constructor)"
    assert not {"System.IO.File", "System.Environment", "System.Object"} & set(table)


def test_a_broken_expression_fails_the_compile(build: Build, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The test of the test: one wrong member in one expression of one policy fails the compile,
    and the error names the policy and the expression."""
    xml = policies.defaults(Mode.AZURE_AI)
    broken = xml.replace("d.Length &gt; 0", "d.Lenght &gt; 0")
    assert broken != xml
    result = csharp.compile_policies({"Good": xml, "Broken": broken}, tmp_path, build.mcs)
    assert not result.ok
    [error] = result.errors()
    assert "/Broken/inbound/choose/when[2]/@condition(1," in error and "error CS1061" in error
    assert "Lenght" in error
    # A condition that is not a bool fails too.
    root = etree.fromstring(xml.encode())
    root.find("inbound/choose/when").set("condition", '@("yes")')
    wrong_type = etree.tostring(root, encoding="unicode")
    result = csharp.compile_policies({"WrongType": wrong_type}, tmp_path, build.mcs)
    assert not result.ok and "WrongType/inbound/choose/when[1]/@condition" in result.output
