"""Queue port: the value types and the Protocol of the reconcile-request queue.

Pure. No I/O. Both twins (``memory`` and ``storage``) implement it and pass the same contract tests.
The message itself, ``ReconcileRequest``, is the product's (``importer.state.ports``): the triggers
produce it and the worker parses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from importer.state.ports import ReconcileRequest


@dataclass(frozen=True)
class MessageHandle:
    """What delete/release need to address one received message (valid until its visibility ends)."""

    message_id: str
    pop_receipt: str
    dequeue_count: int


@dataclass(frozen=True)
class PoisonMessage:
    """A message in the poison queue; ``request`` is None when its text does not decode."""

    message_id: str
    text: str
    request: ReconcileRequest | None
    error: str | None
    dequeue_count: int
    inserted_on: str | None


@runtime_checkable
class RequestQueue(Protocol):
    """The reconcile-request queue and its poison queue.

    Messages are the base64 of the request's UTF-8 JSON, as the Functions host expects. A message
    received more than ``max_dequeue_count`` times, or one that does not decode, is moved to the
    poison queue instead of being returned (what the host does for the queue trigger).
    """

    def send(self, request: ReconcileRequest, *, delay_s: float = 0) -> None: ...

    def send_many(self, requests: Iterable[ReconcileRequest]) -> int: ...

    def receive(self, max_messages: int = 1, *,
                visibility_timeout_s: float = 300) -> list[tuple[MessageHandle, ReconcileRequest]]:
        ...

    def delete(self, handle: MessageHandle) -> None:
        """Done with the message. Succeeds if it is already gone."""

    def release(self, handle: MessageHandle, *, delay_s: float = 0) -> None:
        """Give the message back (visible again after ``delay_s``); counts as a failed attempt."""

    def count(self, *, poison: bool = False) -> int:
        """Approximate message count, including messages received but not yet deleted."""

    def reject(self, text: str) -> None:
        """Put ``text`` in the poison queue as the trigger's poison output binding does (base64 of
        the UTF-8 text): a message the worker rejected at once, with its reason."""

    def poison_messages(self, max_messages: int = 32) -> list[PoisonMessage]:
        """Peek the poison queue (nothing is removed)."""

    def redrive(self, max_messages: int = 100) -> list[ReconcileRequest]:
        """Move decodable poison messages back as fresh ``redrive`` requests; returns what was sent.

        Undecodable messages stay in the poison queue for a human.
        """
