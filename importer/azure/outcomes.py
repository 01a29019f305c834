"""Outcome events: tell other systems what a run did (onboarded, drift corrected, offboarded, failed).

Optional: only when IMPORTER_EVENT_TOPIC_ENDPOINT names an Event Grid custom topic. Published with
azure-eventgrid after the run is recorded; best effort — a publishing failure is logged, never turns
a run into a failure. Noops and dry runs publish nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from importer.model import Action, Kind
from importer.run import Outcome, Run

logger = logging.getLogger(__name__)

EVENT_PREFIX = "ApimAiImporter."
DATA_VERSION = "1.0"


def event_type(run: Run) -> str | None:
    """The outcome a run is worth telling about, or None."""
    if run.outcome is Outcome.OFFBOARDED:
        return "Offboarded"
    if run.outcome in (Outcome.FAILED, Outcome.CONFLICT):
        return "Failed"
    if run.outcome is Outcome.APPLIED and run.plan is not None:
        created_api = any(c.kind is Kind.API and c.action is Action.CREATE for c in run.plan.changes)
        return "Onboarded" if created_api else "DriftCorrected"
    return None


def event_data(run: Run) -> dict[str, Any]:
    """The event body: ids, counts and the change list — never a key or token."""
    return {"runId": run.run_id, "account": run.account, "trigger": run.trigger.value,
            "outcome": run.outcome.value, "writes": run.writes, "error": run.error,
            "errorKind": run.error_kind.value if run.error_kind else None,
            "changes": [{"action": c.action.value, "kind": c.kind.value, "id": c.id}
                        for c in (run.plan.changes if run.plan else ())]}


class OutcomePublisher:
    """Publishes to one Event Grid topic with the app's identity (no topic keys)."""

    def __init__(self, endpoint: str, credential: Any = None) -> None:
        from azure.eventgrid import EventGridPublisherClient

        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        self.endpoint = endpoint
        self._client = EventGridPublisherClient(endpoint, credential)

    def __call__(self, run: Run) -> None:
        kind = event_type(run)
        if kind is None:
            return
        from azure.eventgrid import EventGridEvent

        event = EventGridEvent(subject=run.account, event_type=EVENT_PREFIX + kind,
                               data=event_data(run), data_version=DATA_VERSION)
        try:
            self._client.send([event])
        except Exception as exc:  # best effort: the run itself is already recorded
            logger.warning("run %s: could not publish %s to the outcome topic: %s", run.run_id, kind,
                           type(exc).__name__)
