"""Policy XML tools: parse safely, canonicalise, diff, list statements.

Pure. No I/O (no network, no entity resolution). APIM re-serialises what it stores (CRLF, its own
indentation, self-closed empty elements, escaped expressions), so policies are compared as canonical
trees, never as text.
"""

from __future__ import annotations

import difflib
import html
from typing import Any

from lxml import etree

from importer.model import InvalidInput

SECTIONS = ("inbound", "backend", "outbound", "on-error")


def _parser() -> Any:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_pis=True, strip_cdata=True)


def parse(xml: str) -> Any:
    """Parse policy XML (the ``xml`` format) into an lxml element; InvalidInput when it is not
    well-formed or holds a DOCTYPE (entities are never expanded)."""
    if not isinstance(xml, str):
        raise InvalidInput(f"policy XML must be text, got {type(xml).__name__}")
    text = xml.lstrip("\ufeff")
    try:
        root = etree.fromstring(text.encode("utf-8"), _parser())
    except etree.XMLSyntaxError as exc:
        raise InvalidInput(f"policy is not well-formed XML: {exc}") from exc
    tree = root.getroottree()
    if tree.docinfo.doctype:
        raise InvalidInput("policy XML may not carry a DOCTYPE")
    return root


def _lines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _normalise(element: Any) -> Any:
    """A copy of ``element`` with sorted attributes, whitespace-only text dropped, text trimmed and
    line ends normalised. Attribute newlines and tabs become spaces, as an XML parser would make
    literal ones, so ``&#10;`` and a raw newline compare equal."""
    out = etree.Element(element.tag)
    for name in sorted(element.attrib):
        value = _lines(str(element.attrib[name])).replace("\n", " ").replace("\t", " ")
        out.set(name, value)
    text = _lines(element.text or "").strip()
    if text:
        out.text = text
    for child in element:
        if not isinstance(child.tag, str):  # comments / PIs that survived the parser
            continue
        out.append(_normalise(child))
    return out


def canonical_tree(xml: str) -> Any:
    return _normalise(parse(xml))


def canonical(xml: str) -> str:
    """One-line deterministic serialisation of the canonical tree: equal for equivalent policies."""
    return str(etree.tostring(canonical_tree(xml), encoding="unicode"))


def pretty(xml: str) -> str:
    """The canonical tree, indented two spaces a level: what humans diff."""
    tree = canonical_tree(xml)
    etree.indent(tree, space="  ")
    return str(etree.tostring(tree, encoding="unicode"))


def equal(a: str, b: str) -> bool:
    return canonical(a) == canonical(b)


def diff_lines(old_xml: str | None, new_xml: str) -> tuple[str, ...]:
    """Unified line diff of the pretty canonical forms (old may be absent or not well-formed), as
    plain text: entities unescaped, expressions shown as APIM's editor shows them."""
    new = pretty(new_xml).splitlines()
    if old_xml is None:
        old: list[str] = []
    else:
        try:
            old = pretty(old_xml).splitlines()
        except InvalidInput:
            old = _lines(old_xml).splitlines()
    return tuple(html.unescape(line) for line in
                 difflib.unified_diff(old, new, "policy (actual)", "policy (desired)", n=2, lineterm=""))


def statements(xml: str) -> list[tuple[str, str]]:
    """(section, element tag) of every top-level statement, in document order."""
    root = parse(xml)
    out: list[tuple[str, str]] = []
    for section in root:
        if not isinstance(section.tag, str):
            continue
        for child in section:
            if isinstance(child.tag, str):
                out.append((str(section.tag), str(child.tag)))
    return out
