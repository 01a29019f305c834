"""Human output: plans and runs as a terraform-like diff, coloured by rich on a TTY.

Presentation only. JSON output is ``Plan.to_json`` / ``RunResult.to_json``; this module never
decides anything.
"""

from __future__ import annotations

from typing import Any

from importer.model import Action, Plan

_SIGN = {Action.CREATE: ("+", "green"), Action.UPDATE: ("~", "yellow"),
         Action.DELETE: ("-", "red"), Action.CONFLICT: ("!", "magenta")}


def plan_lines(plan: Plan) -> list[tuple[str, str]]:
    """(text, style) lines: one header per change, then its indented field or policy diff."""
    out: list[tuple[str, str]] = []
    if not plan.changes:
        out.append((f"No changes. {plan.account} is up to date on the gateway.", "bold"))
        return out
    for change in plan.changes:
        sign, style = _SIGN[change.action]
        out.append((f"{sign} {change.kind} {change.id}: {change.action.value}"
                    + (f" ({change.reason})" if change.reason else ""), style))
        for line in change.diff:
            line_style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
            out.append((f"      {line}", line_style))
    s = plan.summary()
    out.append((f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete"
                + (f", {s['conflict']} conflict(s) reported, not written" if s["conflict"] else "")
                + ".", "bold"))
    return out


def print_lines(console: Any, lines: list[tuple[str, str]]) -> None:
    for text, style in lines:
        console.print(text, style=style or None, markup=False, highlight=False)
