"""State codec: the encodings both twins share, so the in-memory twin keeps what Azure would keep.

Pure. No I/O. Account hashes for blob names and table keys, newest-first row keys, and fitting a run
into table limits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from importer.run import Run, parse_time

# Azure Table string properties hold at most 64 KiB of UTF-16 (32,768 code units). JSON is written
# with ensure_ascii, so its length in characters is its length in code units.
TABLE_STRING_UNITS = 32_768
CHANGES_BUDGET = 32_000
PROBE_BUDGET = 16_000
SUMMARY_BUDGET = 4_000
ERROR_CHARS = 8_000  # ≤ 16,000 code units even if every character is outside the BMP
_SLIM_STR = 200  # an excerpt of a long string in a slimmed change
_SLIM_ITEMS = 3  # list items kept in a slimmed change
_SLIM_KEYS = 12

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INVERT = 10**19 - 1  # 19 digits: microseconds up to year 9999 fit with room to spare


# ---------------------------------------------------------------------------------------------
# Keys


def account_hash(account: str) -> str:
    """sha256 hex of the lowercase account id: a blob name and PartitionKey any id can have."""
    return hashlib.sha256(account.lower().encode("utf-8")).hexdigest()


def timeline_key(started_at: str, run_id: str) -> str:
    """RowKey that sorts newest first: inverted microseconds since the epoch, then the run id."""
    micros = max(0, (parse_time(started_at, "started_at") - _EPOCH) // timedelta(microseconds=1))
    return f"{_INVERT - micros:019d}_{run_id}"


def run_timeline_key(run: Run) -> str:
    return timeline_key(run.started_at, run.run_id)


# ---------------------------------------------------------------------------------------------
# Fitting a run into storage limits


def dumps(value: Any) -> str:
    """Compact ASCII JSON; unknown objects (enums, paths) become their str()."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, default=str)


def _slim_value(value: Any, chars: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= chars else value[: chars - 1] + "…"
    if isinstance(value, list | tuple):
        items = [_slim_value(v, chars) for v in list(value)[:_SLIM_ITEMS]]
        if len(value) > _SLIM_ITEMS:
            items.append(f"… {len(value) - _SLIM_ITEMS} more")
        return items
    if isinstance(value, dict):
        text = dumps(value)
        return value if len(text) <= chars else text[: chars - 1] + "…"
    return value


def slim_change(change: dict[str, Any]) -> dict[str, Any]:
    """A change cut down to its identity and short excerpts, marked ``"truncated": true``."""
    slim = {str(k): _slim_value(v, _SLIM_STR) for k, v in list(change.items())[:_SLIM_KEYS]}
    slim["truncated"] = True
    return slim


def fit_changes(changes: list[dict[str, Any]],
                budget: int = CHANGES_BUDGET) -> tuple[list[dict[str, Any]], int]:
    """Fit changes into ``budget`` JSON characters, in plan order, listing as many as possible.

    Each change is kept whole while the rest still fit at least slimmed (``slim_change``); else it
    is slimmed; at the first one that does not fit even slimmed, the rest are omitted and counted.
    Returns (kept, omitted).
    """
    compact = []
    for change in changes:
        slim = slim_change(change)
        compact.append(change if len(dumps(change)) <= len(dumps(slim)) else slim)
    # reserve[i]: what changes i.. cost at their most compact (each with its comma)
    reserve = [0] * (len(changes) + 1)
    for i in range(len(changes) - 1, -1, -1):
        reserve[i] = reserve[i + 1] + len(dumps(compact[i])) + 1
    kept: list[dict[str, Any]] = []
    used = 2  # "[]"
    for index, change in enumerate(changes):
        comma = 1 if kept else 0
        whole = used + comma + len(dumps(change))
        if whole + reserve[index + 1] <= budget:
            kept.append(change)
            used = whole
        elif used + comma + len(dumps(compact[index])) <= budget:
            kept.append(compact[index])
            used += comma + len(dumps(compact[index]))
        else:
            return kept, len(changes) - index
    return kept, 0


def _fit_summary(summary: dict[str, int]) -> dict[str, int]:
    if len(dumps(summary)) <= SUMMARY_BUDGET:
        return summary
    out: dict[str, int] = {}
    for key, value in summary.items():
        if len(dumps({**out, key[:_SLIM_STR]: value})) > SUMMARY_BUDGET:
            break
        out[key[:_SLIM_STR]] = value
    return out


def fit_run(run: Run) -> Run:
    """The run as a table can hold it (both twins store this): changes ≤ 32,000 JSON characters,
    probe ≤ 16,000 (else a ``{"truncated": true}`` stub), error ≤ 8,000 characters."""
    changes, omitted = fit_changes(run.changes)
    probe = run.probe
    if probe is not None and len(dumps(probe)) > PROBE_BUDGET:
        probe = {"truncated": True, "chars": len(dumps(probe))}
    error = run.error
    if error is not None and len(error) > ERROR_CHARS:
        error = error[: ERROR_CHARS - 40] + f"… [{len(error) - ERROR_CHARS + 40} characters cut]"
    return replace(run, changes=changes, changes_omitted=run.changes_omitted + omitted, probe=probe,
                   error=error, summary=_fit_summary(run.summary))


def roundtrip(run: Run) -> Run:
    """The run after a JSON round trip: tuples become lists, enums strings (what storage returns)."""
    data: dict[str, Any] = json.loads(dumps(run.to_dict()))
    return Run.from_dict(data)
