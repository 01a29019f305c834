"""present.wrap_marked: how a long diff line is cut for a terminal."""

from __future__ import annotations

import pytest

from importer.present import wrap_marked


@pytest.mark.parametrize("marker", ["+", "-"])
def test_each_piece_keeps_indent_and_marker(marker: str) -> None:
    text = "      " + marker + "x" * 95
    pieces = wrap_marked(text, 40)
    assert len(pieces) > 2 and all(len(p) <= 40 for p in pieces)
    assert all(p.startswith("      " + marker) for p in pieces)
    assert "".join(p[7:].lstrip(" ") for p in pieces) == "x" * 95


def test_short_lines_and_headers_are_left_alone() -> None:
    assert wrap_marked("  + short", 40) == ["  + short"]
    assert all(not p.startswith("+++") or i == 0 for i, p in enumerate(wrap_marked("+++ " + "y" * 60, 30)))
