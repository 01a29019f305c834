"""State: the reconcile-request queue, per-account lease locks and the run history.

Ports in ``ports``; Azure Storage in ``storage`` (imported lazily); in-memory twins in ``memory``.
``build_state(settings)`` picks one. Importing this package never imports an Azure SDK.
"""

from importer.state.factory import State, StateConfig, build_state, memory_state
from importer.state.ports import (
    InvalidRequest,
    Lease,
    LockBusy,
    LockLost,
    LockManager,
    MessageHandle,
    PoisonMessage,
    ReconcileRequest,
    RequestQueue,
    RunHistory,
    RunNotFound,
)

__all__ = [
    "InvalidRequest", "Lease", "LockBusy", "LockLost", "LockManager", "MessageHandle", "PoisonMessage",
    "ReconcileRequest", "RequestQueue", "RunHistory", "RunNotFound", "State", "StateConfig",
    "build_state", "memory_state",
]
