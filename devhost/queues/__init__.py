"""Queues: the reconcile-request queue and its poison queue, as the Functions host runs them.

In Azure the host alone reads and writes these queues, through function_app.py's bindings (queue
output, queue trigger, poison output); the product never touches them. Here they are played for the
host emulation (``devhost.host``), the demo, the tests, the benchmarks and the poison-queue runbook:
the port in ``ports``, the behaviour both twins share (wire text, poison, redrive) in ``core``, an
in-memory twin in ``memory`` and Azure Storage queues (Azurite in tests) in ``storage``.
``build_queue(settings)`` picks one from the settings the product's state uses. Importing this
package never imports an Azure SDK.
"""

from devhost.queues.factory import QueueConfig, build_queue
from devhost.queues.ports import MessageHandle, PoisonMessage, RequestQueue

__all__ = ["MessageHandle", "PoisonMessage", "QueueConfig", "RequestQueue", "build_queue"]
