"""APIM policy documents: read either wire format into one tree, write either back as APIM does.

Rule: store structure, never text. ``rawxml`` lets C# expressions ``@(...)``/``@{...}`` stand raw in
attributes and text, so it is not XML: a tokenizer escapes the expressions first, then an XML parser
reads it. Output: CRLF, re-indented, empty elements self-closed, expressions escaped only in ``xml``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

FORMATS = ("xml", "rawxml")


class PolicyError(ValueError):
    """The policy text cannot be read."""


@dataclass
class Text:
    value: str


@dataclass
class Comment:
    value: str


@dataclass
class Element:
    tag: str
    attrs: list[tuple[str, str]] = field(default_factory=list)
    children: list[Element | Text | Comment] = field(default_factory=list)

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def texts(self) -> Iterator[str]:
        for child in self.children:
            if isinstance(child, Text):
                yield child.value
            elif isinstance(child, Element):
                yield from child.texts()


Node = Element | Text | Comment


@dataclass
class Document:
    """Top-level nodes: comments around one root element."""

    nodes: list[Node]

    @property
    def root(self) -> Element:
        return next(n for n in self.nodes if isinstance(n, Element))

    def canonical(self) -> tuple[object, ...]:
        """A comparable form: tags, attributes (in order) and non-blank text; comments dropped."""

        def canon(e: Element) -> tuple[object, ...]:
            kids: list[object] = []
            for c in e.children:
                if isinstance(c, Element):
                    kids.append(canon(c))
                elif isinstance(c, Text) and c.value.strip():
                    kids.append(c.value.replace("\r\n", "\n"))
            return (e.tag, tuple(e.attrs), tuple(kids))

        return canon(self.root)


# ---------------------------------------------------------------------------------------------
# Expressions


def expression_end(text: str, start: int) -> int:
    """Index just past the C# expression that starts with ``@(`` or ``@{`` at ``start``.

    Brackets nest; string literals (regular, verbatim ``@"…"``, interpolated ``$"…"``) and char
    literals are skipped whole, so a ``)`` or ``"`` inside them does not end the expression.
    """
    closers = {"(": ")", "{": "}", "[": "]"}
    stack = [closers[text[start + 1]]]
    i = start + 2
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in closers:
            stack.append(closers[ch])
        elif ch in ")}]":
            if not stack or ch != stack[-1]:
                raise PolicyError(f"unbalanced {ch!r} in expression at offset {start}")
            stack.pop()
            if not stack:
                return i + 1
        elif ch == '"' or (ch in "@$" and text.startswith('"', i + 1)) or (
                text.startswith(('$@"', '@$"'), i)):
            i = _string_end(text, i)
            continue
        elif ch == "'":
            i = _char_end(text, i)
            continue
        i += 1
    raise PolicyError(f"unterminated expression at offset {start}")


def _string_end(text: str, i: int) -> int:
    prefix_end = text.index('"', i)
    verbatim = "@" in text[i:prefix_end]
    j = prefix_end + 1
    while j < len(text):
        ch = text[j]
        if verbatim and ch == '"':
            if text.startswith('""', j):
                j += 2
                continue
            return j + 1
        if not verbatim and ch == "\\":
            j += 2
            continue
        if ch == '"':
            return j + 1
        j += 1
    raise PolicyError(f"unterminated string literal at offset {i}")


def _char_end(text: str, i: int) -> int:
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == "'":
            return j + 1
        j += 1
    raise PolicyError(f"unterminated character literal at offset {i}")


def _is_expression(text: str, i: int) -> bool:
    return text.startswith(("@(", "@{"), i)


def split_expressions(value: str) -> list[tuple[bool, str]]:
    """``value`` as (is_expression, text) segments."""
    parts: list[tuple[bool, str]] = []
    i = start = 0
    while i < len(value):
        if _is_expression(value, i):
            try:
                end = expression_end(value, i)
            except PolicyError:
                break  # not an expression after all: the rest is literal text
            if start < i:
                parts.append((False, value[start:i]))
            parts.append((True, value[i:end]))
            i = start = end
        else:
            i += 1
    if start < len(value):
        parts.append((False, value[start:]))
    return parts


# ---------------------------------------------------------------------------------------------
# Reading


def _escape(text: str, attribute: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if attribute:
        text = text.replace('"', "&quot;").replace("'", "&apos;")
    return text


def rawxml_to_xml(raw: str) -> str:
    """Tokenize APIM's rawxml: escape every expression so the result is well-formed XML."""
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        for opener, closer in (("<!--", "-->"), ("<![CDATA[", "]]>"), ("<?", "?>")):
            if raw.startswith(opener, i):
                end = raw.find(closer, i)
                if end < 0:
                    raise PolicyError(f"unterminated {opener} at offset {i}")
                out.append(raw[i:end + len(closer)])
                i = end + len(closer)
                break
        else:
            ch = raw[i]
            if ch == "<":
                i = _copy_tag(raw, i, out)
            elif _is_expression(raw, i):
                end = expression_end(raw, i)
                out.append(_escape(raw[i:end]))
                i = end
            else:
                out.append(ch)
                i += 1
    return "".join(out)


def _copy_tag(raw: str, i: int, out: list[str]) -> int:
    """Copy one tag from ``<`` to ``>``, escaping expressions inside quoted attribute values."""
    j = i
    while j < len(raw):
        ch = raw[j]
        if ch in "\"'":
            out.append(ch)
            k = j + 1
            while k < len(raw) and raw[k] != ch:
                if _is_expression(raw, k):
                    end = expression_end(raw, k)
                    out.append(_escape(raw[k:end], attribute=True))
                    k = end
                else:
                    out.append(raw[k])
                    k += 1
            if k >= len(raw):
                raise PolicyError(f"unterminated attribute value at offset {j}")
            out.append(ch)
            j = k + 1
            continue
        out.append(ch)
        j += 1
        if ch == ">":
            return j
    raise PolicyError(f"unterminated tag at offset {i}")


_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_WRAPPER = "armsim-document"


def parse(value: str, fmt: str = "xml") -> Document:
    """Read a policy in ``xml`` or ``rawxml`` format into a tree."""
    if fmt not in FORMATS:
        raise PolicyError(f"unsupported policy format {fmt!r}: armsim reads xml and rawxml")
    text = _DECLARATION.sub("", value)
    if fmt == "rawxml":
        text = rawxml_to_xml(text)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)
    try:
        wrapper = etree.fromstring(f"<{_WRAPPER}>{text}</{_WRAPPER}>", parser)
    except etree.XMLSyntaxError as exc:
        hint = " (C# expressions need format rawxml, or escaping in xml)" if fmt == "xml" else ""
        raise PolicyError(f"the policy is not well-formed XML{hint}: {exc}") from exc
    nodes: list[Node] = []
    for child in wrapper:
        if isinstance(child, etree._Comment):
            nodes.append(Comment(child.text or ""))
        elif isinstance(child, etree._Element):
            nodes.append(_convert(child))
        if child.tail and child.tail.strip():
            raise PolicyError("text outside the root element")
    if (wrapper.text or "").strip():
        raise PolicyError("text outside the root element")
    if sum(isinstance(n, Element) for n in nodes) != 1:
        raise PolicyError("a policy document has exactly one root element")
    return Document(nodes)


def _convert(el: etree._Element) -> Element:
    node = Element(str(el.tag), [(str(k), str(v)) for k, v in el.attrib.items()])
    if el.text:
        node.children.append(Text(el.text))
    for child in el:
        if isinstance(child, etree._Comment):
            node.children.append(Comment(child.text or ""))
        elif isinstance(child, etree._Element):
            node.children.append(_convert(child))
        if child.tail:
            node.children.append(Text(child.tail))
    return node


# ---------------------------------------------------------------------------------------------
# Writing

_ATTR_CONTROL = {"\t": "&#x9;", "\n": "&#xA;", "\r": "&#xD;"}


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _text_out(value: str, fmt: str) -> str:
    if fmt == "rawxml":
        return _crlf("".join(seg if expr else _escape(seg) for expr, seg in split_expressions(value)))
    return _crlf(_escape(value))


def _attr_out(value: str, fmt: str) -> str:
    def literal(seg: str) -> str:
        seg = _escape(seg).replace('"', "&quot;")
        return "".join(_ATTR_CONTROL.get(ch, ch) for ch in seg)

    if fmt == "rawxml":
        return "".join(seg if expr else literal(seg) for expr, seg in split_expressions(value))
    return literal(value)


def serialize(doc: Document, fmt: str = "xml", indent: str = "  ") -> str:
    """Write the tree as APIM returns it for ``format=xml`` or ``format=rawxml``."""
    if fmt not in FORMATS:
        raise PolicyError(f"unsupported policy format {fmt!r}")
    lines = [_node(n, 0, fmt, indent) for n in doc.nodes]
    return "\r\n".join(lines)


def _open(e: Element, fmt: str) -> str:
    attrs = "".join(f' {k}="{_attr_out(v, fmt)}"' for k, v in e.attrs)
    return f"<{e.tag}{attrs}"


def _node(node: Node, level: int, fmt: str, indent: str) -> str:
    pad = indent * level
    if isinstance(node, Comment):
        return f"{pad}<!--{_crlf(node.value)}-->"
    if isinstance(node, Text):
        return _text_out(node.value, fmt)
    if not [c for c in node.children if not (isinstance(c, Text) and not c.value)]:
        return f"{pad}{_open(node, fmt)} />"
    if any(isinstance(c, Text) and c.value.strip() for c in node.children):
        # Mixed content: APIM keeps it verbatim on the element's line.
        return f"{pad}{_open(node, fmt)}>{''.join(_inline(c, fmt) for c in node.children)}</{node.tag}>"
    children = [c for c in node.children if not isinstance(c, Text)]
    if not children:
        return f"{pad}{_open(node, fmt)} />"
    inner = "\r\n".join(_node(c, level + 1, fmt, indent) for c in children)
    return f"{pad}{_open(node, fmt)}>\r\n{inner}\r\n{pad}</{node.tag}>"


def _inline(node: Node, fmt: str) -> str:
    if isinstance(node, Text):
        return _text_out(node.value, fmt)
    if isinstance(node, Comment):
        return f"<!--{_crlf(node.value)}-->"
    if not node.children:
        return f"{_open(node, fmt)} />"
    return f"{_open(node, fmt)}>{''.join(_inline(c, fmt) for c in node.children)}</{node.tag}>"


def normalise(value: str, fmt: str = "xml", out: str = "xml", indent: str = "  ") -> str:
    """Parse then serialize: what APIM answers for a PUT of ``value``."""
    return serialize(parse(value, fmt), out, indent)
