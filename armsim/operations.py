"""Long-running operations: an ``Operation`` stays InProgress for a number of status reads, then
ends with its outcome, applied once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from armsim.answers import utcnow


@dataclass
class Operation:
    """An async operation: InProgress for ``polls`` status reads, then its outcome, applied once."""

    id: str
    resource_id: str
    polls: int
    outcome: str = "Succeeded"
    error: dict[str, Any] | None = None
    on_done: Callable[[str], None] | None = None
    status: str = "InProgress"
    started: str = field(default_factory=utcnow)
    ended: str | None = None

    def advance(self) -> None:
        if self.status != "InProgress":
            return
        if self.polls > 0:
            self.polls -= 1
            return
        self.status = self.outcome
        self.ended = utcnow()
        if self.on_done is not None:
            self.on_done(self.outcome)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "name": self.id, "status": self.status,
                                "startTime": self.started}
        if self.ended:
            body["endTime"] = self.ended
        if self.status == "Failed":
            body["error"] = self.error or {"code": "OperationFailed", "message": "The operation failed."}
        return body
