"""The README's first command: the offline demo runs end to end and tells the truth about itself."""

from __future__ import annotations

import io

from rich.console import Console

from devhost.demo import Demo


def test_demo_runs_offline_and_ends_with_a_summary() -> None:
    buf = io.StringIO()
    demo = Demo(Console(file=buf, width=140, force_terminal=False))
    assert demo.run() == 0
    text = buf.getvalue()
    steps = {s.title: s for s in demo.steps}
    assert steps["2 same events again"].writes == 0
    assert steps["2 same events again"].outcome == "noop"
    assert steps["3 drift → timer repair"].writes == 2  # the backend and the policy, nothing else
    assert steps["4 deployment deleted"].writes == 1
    assert steps["5 opt-out → offboard"].outcome == "offboarded"
    assert "foreign API 'payments' untouched: yes" in text
    assert "Summary" in text
    assert "Deployment text-embedding-3-small is deleted from contoso-aoai" in text
    assert "owned objects: the APIs, backends and role assignments that carry the importer's" in text


def test_demo_on_a_terminal_keeps_the_diff_marker_on_wrapped_policy_lines() -> None:
    buf = io.StringIO()
    assert Demo(Console(file=buf, width=80, force_terminal=True, color_system=None)).run() == 0
    text = buf.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines())
    # Step 3 repairs a policy replaced by a bare one: the whole allow-list expression is added, and
    # every piece of its wrapped lines is marked '+'.
    step3 = text[text.index("3. "):text.index("4. Deployment")].splitlines()
    pieces = [ln for ln in step3 if "ai-requested-deployment" in ln or "ToLowerInvariant" in ln]
    assert len(pieces) >= 3 and all(ln.lstrip().startswith("+") for ln in pieces)
