"""Offline Bicep reading for the infra tests: tree-sitter-bicep parse trees turned into Python values.

No Bicep compiler is available here, so the tests read the source structurally: literals become
Python values, every other expression an `Expr` holding its node (and text), so a test can tell the
literal `''` from an expression and never greps loosely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"

_PARSER = Parser(Language(tree_sitter_bicep.language()))
GUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_ESCAPES = {"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@dataclass(frozen=True)
class Expr:
    """A non-literal Bicep expression (identifier, call, ternary, interpolated string, ...)."""

    node: Node = field(compare=False, repr=False)
    text: str

    @property
    def type(self) -> str:
        return self.node.type

    def field(self, name: str) -> Node | None:
        return self.node.child_by_field_name(name)


def parse(path: Path) -> Node:
    return _parse_bytes(path.read_bytes()).root_node


@lru_cache(maxsize=64)
def _parse_bytes(data: bytes) -> Any:
    return _PARSER.parse(data)


def syntax_errors(root: Node) -> list[str]:
    """ERROR and MISSING nodes, with their positions (1-based line)."""
    found: list[str] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            kind = "MISSING" if node.is_missing else "ERROR"
            snippet = (node.text or b"").decode(errors="replace")[:60]
            found.append(f"{kind} at line {node.start_point[0] + 1}: {snippet!r}")
        stack.extend(node.children)
    return found


def string_value(node: Node) -> str | None:
    """The value of a string literal without interpolation, else None."""
    if node.type != "string" or node.child_count == 0:  # a leaf `string` is the type keyword
        return None
    parts: list[str] = []
    for child in node.named_children:
        text = (child.text or b"").decode()
        if child.type == "string_content":
            parts.append(text)
        elif child.type == "escape_sequence":
            parts.append(_ESCAPES.get(text, text))
        else:  # interpolation
            return None
    value = "".join(parts)
    if (node.children[0].text or b"") == b"'''" and value.startswith("\n"):
        value = value[1:]  # a multi-line string drops the newline right after '''
    return value


def value(node: Node) -> Any:
    """Literal -> Python value; object -> dict; array -> list; anything else -> Expr."""
    kind = node.type
    if kind == "string":
        literal = string_value(node)
        return literal if literal is not None else Expr(node, _text(node))
    if kind == "number":
        return int(_text(node))
    if kind == "boolean":
        return _text(node) == "true"
    if kind == "null":
        return None
    if kind == "object":
        result: dict[str, Any] = {}
        for prop in node.named_children:
            if prop.type != "object_property":
                continue
            key_node, val_node = prop.named_children[0], prop.named_children[-1]
            key = string_value(key_node) if key_node.type == "string" else _text(key_node)
            result[str(key)] = value(val_node)
        return result
    if kind == "array":
        return [
            value(child)
            for child in node.named_children
            if child.type not in ("comment", "diagnostic_comment")
        ]
    if kind == "parenthesized_expression":
        return value(node.named_children[0])
    return Expr(node, _text(node))


def _text(node: Node) -> str:
    return (node.text or b"").decode()


@dataclass
class Declaration:
    kind: str  # param | var | resource | module | output
    name: str
    node: Node
    type: str = ""  # resource type string, module path, or param/output type
    existing: bool = False
    loop: bool = False
    condition: Any = None
    body: Any = None  # resource/module body (dict), param default, var/output value


class BicepFile:
    def __init__(self, path: Path):
        self.path = path
        self.root = parse(path)
        self.decls: list[Declaration] = [d for d in (_declaration(n) for n in self.root.named_children) if d]

    def _find(self, kind: str, name: str) -> Declaration:
        for decl in self.decls:
            if decl.kind == kind and decl.name == name:
                return decl
        raise KeyError(f"{self.path.name}: no {kind} {name}")

    def param(self, name: str) -> Declaration:
        return self._find("param", name)

    def var(self, name: str) -> Declaration:
        return self._find("var", name)

    def resource(self, name: str) -> Declaration:
        return self._find("resource", name)

    def module(self, name: str) -> Declaration:
        return self._find("module", name)

    def of_kind(self, kind: str) -> list[Declaration]:
        return [d for d in self.decls if d.kind == kind]

    def resources_of_type(self, prefix: str) -> list[Declaration]:
        return [d for d in self.of_kind("resource") if d.type.split("@")[0].lower() == prefix.lower()]

    def string_literals(self) -> list[str]:
        out: list[str] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.type == "string" and node.child_count:
                literal = string_value(node)
                if literal is not None:
                    out.append(literal)
                else:
                    out.extend(_text(c) for c in node.named_children if c.type == "string_content")
            stack.extend(node.children)
        return out

    def guids(self) -> set[str]:
        return {g.lower() for s in self.string_literals() for g in GUID_RE.findall(s)}

    def calls(self) -> list[str]:
        """Names of every function called (call_expression.function), e.g. 'listKeys', 'guid'."""
        names: list[str] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.type == "call_expression":
                fn = node.child_by_field_name("function")
                if fn is not None:
                    names.append(_text(fn).split(".")[-1])
            stack.extend(node.children)
        return names


def _declaration(node: Node) -> Declaration | None:
    kinds = {
        "parameter_declaration": "param",
        "variable_declaration": "var",
        "resource_declaration": "resource",
        "module_declaration": "module",
        "output_declaration": "output",
    }
    kind = kinds.get(node.type)
    if kind is None:
        return None
    named = node.named_children
    decl = Declaration(kind=kind, name=_text(named[0]), node=node)
    if kind in ("resource", "module"):
        decl.type = string_value(named[1]) or ""
        decl.existing = any(c.type == "existing" for c in node.children)
        target = named[-1]
        if target.type == "if_statement":
            decl.condition = value(target.named_children[0])
            target = target.named_children[-1]
        if target.type == "for_statement":
            decl.loop = True
            target = target.child_by_field_name("body") or target.named_children[-1]
            if target.type == "if_statement":
                decl.condition = value(target.named_children[0])
                target = target.named_children[-1]
        decl.body = value(target)
    elif kind in ("param", "output"):
        type_node = next((c for c in named[1:] if c.type == "type"), None)
        decl.type = _text(type_node) if type_node is not None else ""
        after_eq = False
        for child in node.children:
            if after_eq and child.is_named:
                decl.body = value(child)
                break
            if child.type == "=":
                after_eq = True
        else:
            decl.body = _NO_DEFAULT if kind == "param" else None
    else:  # var
        decl.body = value(named[-1])
    return decl


class _NoDefault:
    def __repr__(self) -> str:
        return "<no default>"


_NO_DEFAULT = _NoDefault()


def has_default(decl: Declaration) -> bool:
    return decl.body is not _NO_DEFAULT


@lru_cache(maxsize=32)
def load(relative: str) -> BicepFile:
    return BicepFile(INFRA / relative)
