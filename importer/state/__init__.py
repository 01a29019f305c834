"""State: per-account lease locks, the run history and the owned-object index.

Ports in ``ports``; Azure Storage in ``storage`` (imported lazily); in-memory twins in ``memory``.
``build_state(settings)`` picks one. Importing this package never imports an Azure SDK. The request
queue is the Functions host's, through function_app.py's bindings; its local twins are in
``devhost.queues``.
"""

from importer.state.factory import State, StateConfig, build_state, memory_state
from importer.state.ports import (
    InvalidRequest,
    Lease,
    LockBusy,
    LockLost,
    LockManager,
    ReconcileRequest,
    RunHistory,
    RunNotFound,
)

__all__ = [
    "InvalidRequest", "Lease", "LockBusy", "LockLost", "LockManager", "ReconcileRequest", "RunHistory",
    "RunNotFound", "State", "StateConfig", "build_state", "memory_state",
]
