"""The fault matrix at full size: tests/faults with a bigger estate, the 1,000-event storm and the
kill test at concurrency 8 as well; prints the matrix and writes it as JSON.

    python scripts/faults.py [--storm-accounts 50] [--extra-accounts 20] [--out docs/bench/faults.json]

CI runs the same tests at small size (``pytest tests/faults``); this only turns the sizes up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Test name (without parameters) → the row of the matrix it belongs to.
ROWS = [
    ("429_with_retry_after", "429 + Retry-After (read and write)"),
    ("5xx_within", "500/503 inside the SDK's retry budget"),
    ("5xx_beyond", "500/503 beyond the retry budget"),
    ("single_connection_reset", "connection reset, once"),
    ("connection_resets_beyond", "connection reset, persistent"),
    ("slow_api_import", "slow LRO (InProgress for 8 polls)"),
    ("failed_api_import", "failed LRO (API import)"),
    ("failed_api_update", "failed LRO (API update over drift)"),
    ("412_on_the_policy_put", "412 once on the policy PUT"),
    ("412_on_every_backend_put", "412 on every backend PUT (3 re-plans)"),
    ("real_concurrent_policy_edit", "412 from a real concurrent edit"),
    ("permanent_failure_after_k_writes", "write k..5 fails permanently (k=1..5)"),
    ("process_killed_after_k_writes", "process SIGKILLed after k writes (k=1..5)"),
    ("offboarding_interrupted", "offboarding cut after k deletes"),
    ("event_storm", "event storm (x5 duplicates, shuffled, deletes first)"),
    ("yardstick_detects_a_difference", "the yardstick detects a difference"),
]


def _row(name: str) -> str:
    for key, label in ROWS:
        if key in name:
            return label
    return name


def parse(junit: Path) -> list[dict[str, Any]]:
    cases = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = "passed"
        message = ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome, message = ("failed" if tag == "error" else tag), (node.get("message") or "")[:500]
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        cases.append({"test": case.get("name", ""), "seconds": round(float(case.get("time", 0)), 2),
                      "outcome": outcome, "message": message, "properties": props})
    return cases


def matrix(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"cases": 0, "passed": 0, "seconds": 0.0,
                                                           "failures": []})
    for case in cases:
        row = rows[_row(re.sub(r"\[.*\]$", "", case["test"]))]
        row["cases"] += 1
        row["passed"] += case["outcome"] == "passed"
        row["seconds"] = round(row["seconds"] + case["seconds"], 2)
        if case["outcome"] != "passed":
            row["failures"].append(f"{case['test']}: {case['message']}")
        if case["properties"]:
            row["figures"] = case["properties"]
    order = {label: i for i, (_, label) in enumerate(ROWS)}
    return [{"fault": k, **v} for k, v in sorted(rows.items(), key=lambda kv: order.get(kv[0], 99))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storm-accounts", type=int, default=50, help="accounts changing in the storm "
                        "(4 distinct events each, x5 = 20 deliveries per account)")
    parser.add_argument("--extra-accounts", type=int, default=20, help="bystander accounts in every estate")
    parser.add_argument("--out", default="docs/bench/faults.json")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (e.g. -k storm)")
    args = parser.parse_args(argv)
    env = {**os.environ, "FAULTS_FULL": "1", "FAULTS_STORM_ACCOUNTS": str(args.storm_accounts),
           "FAULTS_EXTRA_ACCOUNTS": str(args.extra_accounts)}
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "faults.xml"
        cmd = [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider",
               f"--junitxml={junit}", "-o", "junit_family=xunit1", *args.pytest_args]
        code = subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
        cases = parse(junit) if junit.exists() else []
    rows = matrix(cases)
    result = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
              "seconds": round(time.time() - started, 1), "storm_accounts": args.storm_accounts,
              "extra_accounts": args.extra_accounts, "pytest_exit": code,
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True, cwd=ROOT, check=False).stdout.strip(),
              "matrix": rows, "cases": cases}
    out = ROOT / args.out if not Path(args.out).is_absolute() else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print("\n| fault | cases | passed | seconds |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['fault']} | {row['cases']} | {row['passed']} | {row['seconds']} |")
        for failure in row["failures"]:
            print(f"|   ! {failure[:200]} | | | |")
    storm = next((r.get("figures") for r in rows if "storm" in r["fault"]), None)
    if storm:
        print(f"\nstorm: {storm}")
    print(f"\nwrote {out} ({result['seconds']} s, pytest exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
