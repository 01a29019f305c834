"""Human output: plans and runs as a terraform-like diff, coloured by rich on a TTY.

Presentation only. JSON output is ``Plan.to_json`` / ``Run.to_json``; this module never
decides anything. Works on the JSON form of changes so stored run history prints the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from importer.model import Plan

_SIGN = {"create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red"),
         "conflict": ("!", "magenta")}


def change_lines(changes: Iterable[Mapping[str, Any]], indent: str = "",
                 max_diff: int | None = None) -> list[tuple[str, str]]:
    """(text, style) lines: one header per change, then its indented field or policy diff.

    ``max_diff`` shortens each change's diff (creates show no body then: the header says it all)."""
    out: list[tuple[str, str]] = []
    for change in changes:
        sign, style = _SIGN.get(str(change.get("action")), ("?", ""))
        reason = change.get("reason")
        out.append((f"{indent}{sign} {change.get('kind')} {change.get('id')}: {change.get('action')}"
                    + (f" ({reason})" if reason else ""), style))
        lines = list(change.get("diff") or ())
        if max_diff is not None:
            if change.get("action") == "create":
                lines = []
            elif len(lines) > max_diff:
                lines = lines[:max_diff] + [f"… {len(lines) - max_diff} more line(s)"]
        for line in lines:
            line_style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
            out.append((f"{indent}      {line}", line_style))
    return out


def plan_lines(plan: Plan) -> list[tuple[str, str]]:
    if not plan.changes:
        return [(f"No changes. {plan.account} is up to date on the gateway.", "bold")]
    out = change_lines(c.to_json() for c in plan.changes)
    s = plan.summary()
    out.append((f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete"
                + (f", {s['conflict']} conflict(s) reported, not written" if s["conflict"] else "")
                + ".", "bold"))
    return out


def wrap_marked(text: str, width: int) -> list[str]:
    """``text`` cut to ``width`` columns, each piece keeping the line's indent and diff marker
    (``+``/``-``), so a wrapped policy line still reads as added or removed."""
    if width <= 0 or len(text) <= width:
        return [text]
    body = text.lstrip(" ")
    indent = text[: len(text) - len(body)]
    marker = body[:1] if body[:1] in ("+", "-") and not body.startswith(("+++", "---")) else ""
    lead = indent + marker
    room = max(width - len(lead) - 1, 10)
    rest = body[len(marker):]
    pieces = [rest[i:i + room] for i in range(0, len(rest), room)]
    return [lead + (" " if i else "") + piece for i, piece in enumerate(pieces)]


def print_lines(console: Any, lines: list[tuple[str, str]]) -> None:
    """On a terminal, long lines wrap with their marker; elsewhere they are never wrapped."""
    for text, style in lines:
        for piece in wrap_marked(text, console.width) if console.is_terminal else [text]:
            console.print(piece, style=style or None, markup=False, highlight=False, soft_wrap=True)
