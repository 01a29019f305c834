"""The README's first command: the offline demo runs end to end and tells the truth about itself."""

from __future__ import annotations

import io

from rich.console import Console

from importer.demo import Demo


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
