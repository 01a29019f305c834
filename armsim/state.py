"""The shared state of one stand-in: its options, store, operations, change events, faults and
served files. Handlers run one at a time under its lock.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from werkzeug.wrappers import Request

from armsim.answers import ArmError
from armsim.changes import EventLog
from armsim.faults import Faults
from armsim.ids import id_key
from armsim.operations import Operation
from armsim.store import Store

TENANT_ID = "00000000-0000-0000-0000-00000000a1b2"
# The principal every request comes from (the stand-in checks no token): its role assignments decide
# what the permissions listing returns. Also the createdBy of what it writes.
CALLER_PRINCIPAL_ID = "00000000-0000-0000-0000-0000000000aa"


@dataclass
class Options:
    """Per-run settings (``start(**options)``); ``sim.reset()`` returns to the ones given at start."""

    page_size: int = 100
    tenant_id: str = TENANT_ID
    lro_polls: int = 0  # status reads every LRO stays InProgress unless a fault says otherwise
    policy_indent: str = "  "  # APIM's REST examples re-indent policies with two spaces
    gateway_url: str = ""  # the local gateway's base URL when it runs (Sim(gateway=True)), else ""
    caller_principal_id: str = CALLER_PRINCIPAL_ID  # whose role assignments the permissions listing reads
    # What an OpenAPI import keeps when the PUT and the document both give displayName, description or
    # serviceUrl: "request" (the PUT's) or "document" (the document's, as azure-cli #20812 reports).
    import_metadata: str = "request"


class Asking(Protocol):
    """What the state reads of a request's context: armsim/context.py's ``Ctx``, which sits a layer
    above and holds the state (so this module cannot import it)."""

    request: Request
    method: str
    path: str


class State:
    """Everything the handlers share. Handlers run one at a time under ``lock``."""

    def __init__(self, options: Options, faults: Faults) -> None:
        self.options = options
        self.faults = faults
        self.lock = threading.RLock()
        self.store = Store()
        self.events = EventLog()
        self.operations: dict[str, Operation] = {}
        self._pending: dict[str, str] = {}
        # name -> (content type, text), served under /_armsim/files for link imports
        self.files: dict[str, tuple[str, str]] = {}

    def clear(self) -> None:
        self.store.clear()
        self.events.clear()
        self.operations.clear()
        self._pending.clear()
        self.files.clear()

    def begin(self, ctx: Asking, resource_id: str, on_done: Callable[[str], None] | None = None,
              error: dict[str, Any] | None = None) -> Operation:
        """Start an LRO for this request. ``error`` forces a Failed outcome (e.g. an unfetchable link)."""
        polls, outcome = self.faults.lro_for(ctx.method, ctx.path, self.options.lro_polls)
        if error is not None:
            outcome = "Failed"
        elif outcome != "Succeeded":
            error = {"code": "OperationFailed" if outcome == "Failed" else "OperationCanceled",
                     "message": f"armsim: the operation was made to end {outcome} by fault injection."}
        op = Operation(uuid.uuid4().hex, resource_id, polls, outcome, error, on_done)
        self.operations[op.id] = op
        self._pending[id_key(resource_id)] = op.id
        if polls == 0:
            op.advance()
        return op

    def touch(self, resource_id: str) -> None:
        """A read of a resource whose LRO is pending counts as one poll of that LRO."""
        op_id = self._pending.get(id_key(resource_id))
        if op_id and op_id in self.operations:
            self.operations[op_id].advance()

    def poll(self, op_id: str) -> Operation:
        op = self.operations.get(op_id)
        if op is None:
            raise ArmError(404, "OperationNotFound", f"Operation {op_id} not found.")
        op.advance()
        return op

    def event(self, ctx: Asking, resource_id: str, resource_type: str, action: str) -> None:
        self.events.record(ctx.request, resource_id, resource_type, action, self.options.tenant_id)
