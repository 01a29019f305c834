"""Event storm through the function app (on_resource_event → queue → reconcile_worker, 4 threads).

CI size: 10 accounts changing (plus 3 bystanders), 40 distinct events ×5 = 200 deliveries. The full
size (50 accounts, 1,000 deliveries) runs from ``python scripts/faults.py``.
"""

from __future__ import annotations

import os

import pytest

from tests.faults.conftest import Estates
from tests.faults.storm import DUPLICATES, run_storm

ACCOUNTS = int(os.environ.get("FAULTS_STORM_ACCOUNTS", "10"))
MAX_RATIO = 1.2


def test_event_storm_converges_like_one_clean_pass(estates: Estates, monkeypatch: pytest.MonkeyPatch,
                                                   record_property) -> None:  # noqa: ANN001
    result = run_storm(estates, ACCOUNTS, setenv=monkeypatch.setenv)
    for name in ("accounts", "distinct_events", "delivered", "enqueued", "storm_writes", "minimum_writes",
                 "storm_reads", "minimum_reads",
                 "messages_processed", "poisoned", "seconds"):
        record_property(name, getattr(result, name))
    record_property("ratio", round(result.ratio, 3))
    assert result.distinct_events == 4 * ACCOUNTS
    assert result.delivered == DUPLICATES * result.distinct_events
    assert result.enqueued == result.delivered  # every event names a watched account
    assert result.poisoned == 0, result.worker_errors
    assert result.minimum_writes > 0
    assert result.storm_state == result.clean_state, sorted(
        set(result.storm_state).symmetric_difference(result.clean_state))[:5]
    assert result.storm_foreign[0] == result.storm_foreign[1], "a foreign object (or an account) was written"
    assert result.leftover_plans == []
    assert result.storm_writes <= MAX_RATIO * result.minimum_writes, (
        f"{result.storm_writes} writes for a minimum of {result.minimum_writes}")
