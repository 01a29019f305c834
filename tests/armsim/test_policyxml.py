"""armsim.policyxml: the rawxml tokenizer and APIM-style re-serialisation, held against the REST examples."""

from __future__ import annotations

import pytest

from armsim import policyxml
from tests.armsim.wire import example


def request_value(name: str) -> tuple[str, str]:
    props = example(name)["parameters"]["parameters"]["properties"]
    return props["value"], props.get("format", "xml")


def response_value(name: str, status: str) -> str:
    return str(example(name, status)["body"]["properties"]["value"])


def test_xml_put_is_reindented_with_crlf_like_the_example():
    value, fmt = request_value("ApiManagementCreateApiPolicy")
    assert policyxml.normalise(value, fmt) == response_value("ApiManagementCreateApiPolicy", "201")


def test_rawxml_put_comes_back_escaped_like_the_example():
    value, fmt = request_value("ApiManagementCreateApiPolicyNonXmlEncoded")
    assert fmt == "rawxml"
    expected = response_value("ApiManagementCreateApiPolicyNonXmlEncoded", "201")
    assert policyxml.normalise(value, fmt) == expected


def test_get_example_is_a_fixed_point_comments_tabs_and_multiline_expressions_kept():
    value = response_value("ApiManagementGetApiPolicy", "200")
    assert policyxml.normalise(value) == value
    raw = policyxml.normalise(value, "xml", "rawxml")
    assert ".Select(s => s[Random.Next(s.Length)])" in raw
    assert policyxml.normalise(raw, "rawxml") == value


@pytest.mark.parametrize("expression", [
    '@(context.Request.Headers.GetValueOrDefault("a)b", "") == "x")',
    '@{ var s = "}"; return s.Length > 0 && s != "\\"" ? "y" : "n"; }',
    "@(context.Variables.GetValueOrDefault<string>('c'.ToString()) ?? \"none\")",
    '@(@"C:\\path"".txt".Length > 1)',
    '@($"{context.Deployment.Region}-{(1 < 2)}")',
    "@(new [] { 1, 2 }.Any(i => (i & 1) == 1))",
])
def test_expressions_are_opaque_in_attributes_and_text(expression):
    raw = (f'<policies><inbound><set-variable name="v" value="{expression}" />'
           f"<set-body>{expression}</set-body></inbound></policies>")
    doc = policyxml.parse(raw, "rawxml")
    element = doc.root.children[0]
    assert isinstance(element, policyxml.Element)
    variable, body = (c for c in element.children if isinstance(c, policyxml.Element))
    assert variable.attrs == [("name", "v"), ("value", expression)]
    assert "".join(body.texts()) == expression
    as_xml = policyxml.serialize(doc, "xml")
    assert policyxml.parse(as_xml).canonical() == doc.canonical()
    as_raw = policyxml.serialize(doc, "rawxml")
    assert f'value="{expression}"' in as_raw and f"<set-body>{expression}</set-body>" in as_raw


def test_literal_text_is_still_escaped_in_rawxml_and_entities_decode_outside_expressions():
    raw = "<policies><inbound><set-body>a &amp; b @(1 &lt; 2)</set-body></inbound></policies>"
    doc = policyxml.parse(raw, "rawxml")
    assert "".join(doc.root.texts()) == "a & b @(1 &lt; 2)"  # entities inside expressions are literal
    assert "<set-body>a &amp; b @(1 &lt; 2)</set-body>" in policyxml.serialize(doc, "rawxml")


@pytest.mark.parametrize("bad, fmt", [
    ('<policies><inbound><set-body>@(1 + (2)</set-body></inbound></policies>', "rawxml"),
    ('<policies><inbound><x a="@(1)" /></policies>', "rawxml"),
    ('<policies a="@(x == "y")" />', "xml"),
    ("<policies /><policies />", "xml"),
    ("text only", "xml"),
])
def test_malformed_policies_are_refused(bad, fmt):
    with pytest.raises(policyxml.PolicyError):
        policyxml.parse(bad, fmt)


def test_serialisation_rules():
    doc = policyxml.parse('<?xml version="1.0"?><policies><inbound><base/><!-- note -->'
                          '<rate-limit calls="5" renewal-period="60"></rate-limit></inbound></policies>')
    assert policyxml.serialize(doc) == (
        "<policies>\r\n  <inbound>\r\n    <base />\r\n    <!-- note -->\r\n"
        '    <rate-limit calls="5" renewal-period="60" />\r\n  </inbound>\r\n</policies>')
    assert policyxml.serialize(doc, indent="\t").startswith("<policies>\r\n\t<inbound>\r\n\t\t<base />")


def test_canonical_ignores_layout_but_not_content():
    a = policyxml.parse("<policies>\n  <inbound><base /></inbound>\n</policies>")
    b = policyxml.parse("<policies><inbound>\r\n<base/>\r\n</inbound></policies>")
    c = policyxml.parse('<policies><inbound><base a="1" /></inbound></policies>')
    assert a.canonical() == b.canonical() != c.canonical()
