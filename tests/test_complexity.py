"""Issue 16's bar, kept: no function in the product (importer/) or in dev hosting (devhost/) above
radon's cyclomatic grade C (complexity above 20). A function that grows past it is split into named
steps, as Reconciler._once and discover.read_actual were."""

from __future__ import annotations

from pathlib import Path

from radon.complexity import cc_rank, cc_visit

ROOT = Path(__file__).resolve().parent.parent


def _functions(package: str) -> list[tuple[str, str, int]]:
    """Every function, method and closure (a class itself is not graded) with its rank."""
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for block in cc_visit(path.read_text(encoding="utf-8")):
            functions = list(getattr(block, "methods", None) or [block])  # a class: its methods
            for fn in [*functions, *(c for f in functions for c in getattr(f, "closures", []))]:
                out.append((f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}", cc_rank(fn.complexity),
                            fn.complexity))
    return out


def test_no_function_above_grade_c() -> None:
    blocks = _functions("importer") + _functions("devhost")
    assert len(blocks) > 500  # the walk saw the code (functions, methods and closures)
    worse = [b for b in blocks if b[1] not in "ABC"]
    assert not worse, worse


def test_the_check_bites() -> None:
    tangled = "def f(x):\n" + "".join(f"    if x == {i}:\n        return {i}\n" for i in range(25))
    (block,) = cc_visit(tangled)
    assert block.complexity == 26 and cc_rank(block.complexity) not in "ABC"  # grade D
