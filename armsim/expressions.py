"""A very small evaluator of APIM policy expressions: single-statement string expressions only.

Rule: evaluate what it understands exactly, refuse the rest (``Unsupported``); never guess. Grammar:
``@( term (+ term)* )`` where a term is a C# regular string literal, a parenthesised expression,
``context.Variables.GetValueOrDefault<string>("name", "default")`` or
``Newtonsoft.Json.JsonConvert.SerializeObject(expr)`` of a string (a JSON string literal, escaped
as Newtonsoft escapes by default). Enough for the importer's not-found body; see docs/sandbox.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\\n]|\\.)*")'
                    r'|(?P<name>[A-Za-z_][\w.]*(?:<string>)?)|(?P<p>[(),+]))')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
_VARIABLE = "context.Variables.GetValueOrDefault<string>"
_SERIALIZE = ("Newtonsoft.Json.JsonConvert.SerializeObject", "JsonConvert.SerializeObject")


class Unsupported(ValueError):
    """The expression uses more of C# than this evaluator knows."""


def _literal(token: str) -> str:
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "u":
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            raise Unsupported(f"escape \\{nxt}")
    return "".join(out)


def _newtonsoft(value: str) -> str:
    """JsonConvert.SerializeObject of a string: quotes, backslashes and control characters escaped,
    everything else as is."""
    return json.dumps(value, ensure_ascii=False)


class _Parser:
    def __init__(self, text: str, variables: Mapping[str, str]) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if not text[pos:].strip():
                break
            m = _TOKEN.match(text, pos)
            if m is None:
                raise Unsupported(f"cannot read {text[pos:pos + 20]!r}")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0
        self.variables = variables

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise Unsupported(f"expected {value or 'more'}, got {token[1] if token else 'the end'}")
        self.i += 1
        return token

    def expression(self) -> str:
        value = self.term()
        while self.peek() == ("p", "+"):
            self.take("+")
            value += self.term()
        return value

    def term(self) -> str:
        kind, value = self.take()
        if kind == "str":
            return _literal(value)
        if value == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if value == _VARIABLE:
            self.take("(")
            name = self.term()
            self.take(",")
            default = self.expression()
            self.take(")")
            return self.variables.get(name, default)
        if value in _SERIALIZE:
            self.take("(")
            inner = self.expression()
            self.take(")")
            return _newtonsoft(inner)
        raise Unsupported(f"{value!r}")


def evaluate(text: str, variables: Mapping[str, str]) -> str:
    """The value of ``@(…)`` (or of literal text, returned as it is) with ``variables`` set."""
    if not text.startswith("@"):
        return text
    if not (text.startswith("@(") and text.endswith(")")):
        raise Unsupported("only single-statement @(...) expressions")
    parser = _Parser(text[2:-1], variables)
    value = parser.expression()
    if parser.peek() is not None:
        raise Unsupported(f"unexpected {parser.peek()}")
    return value
