"""A tiny OData ``$filter``: what list calls need (eq, ne, startswith, endswith, contains; joined by
and), and a getter for ``properties/displayName`` style fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from armsim.answers import bad_request

_CLAUSE = re.compile(
    r"^\s*(?:(?P<fn>startswith|endswith|contains)\(\s*(?P<fa>[\w/]+)\s*,\s*'(?P<fv>(?:[^']|'')*)'\s*\)"
    r"|(?P<field>[\w/]+)\s+(?P<op>eq|ne)\s+'(?P<value>(?:[^']|'')*)')\s*$",
    re.IGNORECASE,
)


def odata_filter(expression: str | None, getter: Callable[[dict[str, Any], str], Any],
                 ) -> Callable[[dict[str, Any]], bool]:
    """Compile ``$filter``; ``getter(body, field)`` reads a field such as ``properties/path``."""
    if not expression or not expression.strip():
        return lambda _body: True
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for clause in re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(clause)
        if not match:
            raise bad_request(f"armsim supports only eq/ne/startswith/endswith/contains joined by 'and'; "
                              f"cannot evaluate $filter clause {clause!r}.", "InvalidFilter")
        if match["fn"]:
            tests.append(_function_test(getter, match["fn"].lower(), match["fa"], match["fv"]))
        else:
            tests.append(_compare_test(getter, match["field"], match["op"].lower(), match["value"]))
    return lambda body: all(t(body) for t in tests)


def _function_test(getter: Callable[[dict[str, Any], str], Any], fn: str, fld: str, literal: str,
                   ) -> Callable[[dict[str, Any]], bool]:
    val = literal.replace("''", "'").lower()

    def test(body: dict[str, Any]) -> bool:
        have = str(getter(body, fld) or "").lower()
        if fn == "startswith":
            return have.startswith(val)
        if fn == "endswith":
            return have.endswith(val)
        return val in have

    return test


def _compare_test(getter: Callable[[dict[str, Any], str], Any], fld: str, op: str, literal: str,
                  ) -> Callable[[dict[str, Any]], bool]:
    val = literal.replace("''", "'").lower()

    def test(body: dict[str, Any]) -> bool:
        equal = str(getter(body, fld) or "").lower() == val
        return equal if op == "eq" else not equal

    return test


def field_getter(body: dict[str, Any], path: str) -> Any:
    """Read ``name`` or ``properties/displayName`` style paths out of a body."""
    value: Any = body
    for part in path.split("/"):
        if not isinstance(value, dict):
            return None
        value = next((v for k, v in value.items() if k.lower() == part.lower()), None)
    return value
