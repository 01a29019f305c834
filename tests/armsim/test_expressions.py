"""armsim/expressions.py: the small evaluator reads the string expressions it knows exactly and
refuses the rest."""

from __future__ import annotations

import pytest

from armsim.expressions import Unsupported, evaluate

V = {"name": "gpt-4o", "odd": 'a"b\\c'}


@pytest.mark.parametrize(("text", "expected"), [
    ("plain text", "plain text"),
    ('@("a" + "b")', "ab"),
    ('@("q\\"uote\\\\ \\u00e9\\n")', 'q"uote\\ é\n'),
    ('@("x" + context.Variables.GetValueOrDefault<string>("name", "none"))', "xgpt-4o"),
    ('@(context.Variables.GetValueOrDefault<string>("missing", "de" + "fault"))', "default"),
    ('@(Newtonsoft.Json.JsonConvert.SerializeObject(context.Variables.GetValueOrDefault<string>("odd", "")))',
     '"a\\"b\\\\c"'),
    ('@(("a") + (JsonConvert.SerializeObject("b")))', 'a"b"'),
])
def test_evaluates_string_expressions(text: str, expected: str) -> None:
    assert evaluate(text, V) == expected


@pytest.mark.parametrize("text", [
    '@{ return "a"; }', "@(context.Request.Method)", '@("a" + )', '@("a" "b")', "@(1 + 2)",
    '@(context.Variables["name"])', '@("\\q")',
])
def test_refuses_what_it_does_not_know(text: str) -> None:
    with pytest.raises(Unsupported):
        evaluate(text, V)
