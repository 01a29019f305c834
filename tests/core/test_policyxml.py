"""policyxml: canonical equality across APIM's re-serialisations, inequality on real change, diff."""

from __future__ import annotations

import pytest

from importer import policyxml
from importer.model import InvalidInput

OURS = (
    '<policies><inbound><base />'
    '<set-variable name="v" '
    'value="@(context.Request.Headers.Any(h =&gt; h.Key == &quot;k&quot;) &amp;&amp; true)" />'
    '<set-backend-service backend-id="b1" />'
    '<set-header name="Content-Type" exists-action="override"><value>application/json</value></set-header>'
    '</inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error>'
    '</policies>'
)

EQUIVALENT = {
    "crlf and apim indentation": OURS.replace("><", ">\r\n\t<"),
    "indented with spaces": OURS.replace("><", ">\n    <"),
    "expanded empty elements": OURS.replace("<base />", "<base></base>"),
    "attribute order": OURS.replace('<set-header name="Content-Type" exists-action="override">',
                                    '<set-header exists-action="override" name="Content-Type">'),
    "unescaped > and single quotes": OURS.replace(
        'value="@(context.Request.Headers.Any(h =&gt; h.Key == &quot;k&quot;) &amp;&amp; true)"',
        "value='@(context.Request.Headers.Any(h => h.Key == \"k\") &amp;&amp; true)'"),
    "numeric character references": OURS.replace("application/json", "application&#x2F;json"),
    "cdata text": OURS.replace("<value>application/json</value>",
                               "<value><![CDATA[application/json]]></value>"),
    "comments": OURS.replace("<base />", "<!-- inherited --><base />", 1),
    "xml declaration and bom": '\ufeff<?xml version="1.0" encoding="utf-8"?>\r\n' + OURS,
    "whitespace around text": OURS.replace("<value>application/json</value>",
                                           "<value>\r\n  application/json\r\n</value>"),
}


@pytest.mark.parametrize("variant", list(EQUIVALENT))
def test_equivalent_forms_canonicalise_equal(variant: str) -> None:
    assert policyxml.canonical(EQUIVALENT[variant]) == policyxml.canonical(OURS)
    assert policyxml.equal(EQUIVALENT[variant], OURS)


DIFFERENT = {
    "backend id": OURS.replace('backend-id="b1"', 'backend-id="b2"'),
    "statement removed": OURS.replace('<set-backend-service backend-id="b1" />', ""),
    "statement added": OURS.replace("<outbound><base />", "<outbound><base /><set-status code=\"200\" />"),
    "statements reordered": OURS.replace(
        '<set-variable name="v" value="@(context.Request.Headers.Any(h =&gt; h.Key == &quot;k&quot;) '
        '&amp;&amp; true)" /><set-backend-service backend-id="b1" />',
        '<set-backend-service backend-id="b1" /><set-variable name="v" value="@(context.Request.Headers.'
        'Any(h =&gt; h.Key == &quot;k&quot;) &amp;&amp; true)" />'),
    "expression changed": OURS.replace("&amp;&amp; true", "|| true"),
    "text changed": OURS.replace("application/json", "text/plain"),
    "attribute added": OURS.replace('<set-backend-service backend-id="b1" />',
                                    '<set-backend-service backend-id="b1" base-url="https://x" />'),
}


@pytest.mark.parametrize("variant", list(DIFFERENT))
def test_real_changes_canonicalise_different(variant: str) -> None:
    assert policyxml.canonical(DIFFERENT[variant]) != policyxml.canonical(OURS)


def test_canonical_is_deterministic_and_idempotent() -> None:
    once = policyxml.canonical(EQUIVALENT["crlf and apim indentation"])
    assert policyxml.canonical(once) == once
    assert "\r" not in policyxml.pretty(OURS)


@pytest.mark.parametrize("bad", [
    "<policies><inbound>",
    "not xml",
    "<policies>@(x => x)</policies><x/>",
    '<policies condition="@(a && b)" />',  # rawxml form: not well-formed, refused
    '<!DOCTYPE p [<!ENTITY e "boom">]><policies>&e;</policies>',
    '<!DOCTYPE p SYSTEM "http://example.com/x.dtd"><policies/>',
])
def test_bad_or_dangerous_xml_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        policyxml.canonical(bad)


def test_diff_lines_shows_only_the_change() -> None:
    lines = policyxml.diff_lines(OURS, DIFFERENT["backend id"])
    assert lines[0] == "--- policy (actual)" and lines[1] == "+++ policy (desired)"
    changed = [line for line in lines[2:] if line[:1] in "+-"]
    assert changed == ['-    <set-backend-service backend-id="b1"/>',
                       '+    <set-backend-service backend-id="b2"/>']


def test_diff_lines_equal_and_absent() -> None:
    assert policyxml.diff_lines(EQUIVALENT["crlf and apim indentation"], OURS) == ()
    created = policyxml.diff_lines(None, OURS)
    assert all(line.startswith("+") for line in created[2:] if not line.startswith("@@"))


def test_diff_lines_with_unparsable_old() -> None:
    lines = policyxml.diff_lines('<policies a="@(x && y)"/>', OURS)
    assert '-<policies a="@(x && y)"/>' in lines


def test_statements_in_order() -> None:
    assert policyxml.statements(EQUIVALENT["comments"]) == [
        ("inbound", "base"), ("inbound", "set-variable"), ("inbound", "set-backend-service"),
        ("inbound", "set-header"), ("backend", "base"), ("outbound", "base"), ("on-error", "base")]
