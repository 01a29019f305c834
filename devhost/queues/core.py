"""Queue core: the behaviour both twins share, written once over a small storage primitive.

The wire text, poison handling and redrive; a backend supplies only a RawQueue, so the in-memory twin
cannot drift from Azure Storage in anything but the wire.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from devhost.queues.ports import MessageHandle, PoisonMessage
from importer.run import Trigger
from importer.state.ports import InvalidRequest, ReconcileRequest

logger = logging.getLogger(__name__)

MAX_BATCH = 32  # Azure Storage queues return at most 32 messages per call


# ---------------------------------------------------------------------------------------------
# Wire text


def encode_wire(request: ReconcileRequest) -> str:
    """The queue message text: base64 of the UTF-8 JSON, byte for byte what TextBase64EncodePolicy
    sends and what the Functions host (``messageEncoding: base64``) decodes into the trigger string."""
    return base64.b64encode(request.to_json().encode("utf-8")).decode("ascii")


def decode_wire(text: str) -> ReconcileRequest:
    """Inverse of encode_wire; any defect raises InvalidRequest (the message belongs in poison)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"message is not base64 ({exc}); producers must base64 the JSON") from exc
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("message is not UTF-8 after base64 decoding") from exc
    return ReconcileRequest.from_json(decoded)


def rejected_reason(text: str) -> str | None:
    """The reason in a poison entry the worker wrote for a message it rejected at once
    (``service.rejected_entry``), or None for anything else."""
    try:
        data = json.loads(base64.b64decode(text, validate=True).decode("utf-8"))
    except (ValueError, binascii.Error):
        return None
    if isinstance(data, dict) and isinstance(data.get("rejected"), str):
        return f"rejected by the worker: {data['rejected']}"
    return None


# ---------------------------------------------------------------------------------------------
# The queue


class StaleHandle(Exception):
    """The pop receipt no longer matches: the message was received again by someone else."""


@dataclass(frozen=True)
class RawMessage:
    message_id: str
    pop_receipt: str  # empty when peeked
    text: str
    dequeue_count: int
    inserted_on: str | None


class RawQueue(Protocol):
    """One queue of wire texts. ``remove``/``hide`` raise StaleHandle on a receipt mismatch;
    ``remove`` succeeds if the message is already gone."""

    def put(self, text: str, delay_s: float = 0) -> None: ...

    def get(self, max_messages: int, visibility_timeout_s: float) -> list[RawMessage]: ...

    def peek(self, max_messages: int) -> list[RawMessage]: ...

    def remove(self, message_id: str, pop_receipt: str) -> None: ...

    def hide(self, message_id: str, pop_receipt: str, delay_s: float) -> None: ...

    def count(self) -> int: ...


class QueueCore:
    """RequestQueue over a main and a poison RawQueue. See ports.RequestQueue for the contract."""

    def __init__(self, main: RawQueue, poison: RawQueue, *, max_dequeue_count: int = 5) -> None:
        if max_dequeue_count < 1:
            raise ValueError("max_dequeue_count must be at least 1")
        self._main = main
        self._poison = poison
        self.max_dequeue_count = max_dequeue_count

    def send(self, request: ReconcileRequest, *, delay_s: float = 0) -> None:
        self._main.put(encode_wire(request), delay_s)

    def send_many(self, requests: Iterable[ReconcileRequest]) -> int:
        sent = 0
        for request in requests:
            self.send(request)
            sent += 1
        return sent

    def receive(self, max_messages: int = 1, *,
                visibility_timeout_s: float = 300) -> list[tuple[MessageHandle, ReconcileRequest]]:
        if not 1 <= max_messages <= MAX_BATCH:
            raise ValueError(f"max_messages must be 1..{MAX_BATCH}")
        out: list[tuple[MessageHandle, ReconcileRequest]] = []
        for raw in self._main.get(max_messages, visibility_timeout_s):
            if raw.dequeue_count > self.max_dequeue_count:
                self._to_poison(raw, f"dequeued {raw.dequeue_count} times (max {self.max_dequeue_count})")
                continue
            try:
                request = decode_wire(raw.text)
            except InvalidRequest as exc:
                self._to_poison(raw, str(exc))
                continue
            out.append((MessageHandle(raw.message_id, raw.pop_receipt, raw.dequeue_count), request))
        return out

    def _to_poison(self, raw: RawMessage, why: str) -> None:
        logger.warning("moving queue message %s to poison: %s", raw.message_id, why)
        self._poison.put(raw.text)  # the text as it was, as the Functions host does
        try:
            self._main.remove(raw.message_id, raw.pop_receipt)
        except StaleHandle:
            logger.warning("message %s was received again while moving it to poison", raw.message_id)

    def delete(self, handle: MessageHandle) -> None:
        try:
            self._main.remove(handle.message_id, handle.pop_receipt)
        except StaleHandle:
            # Its visibility ran out and another consumer holds it now; that one will finish it.
            logger.warning("message %s: receipt expired, left to its new consumer", handle.message_id)

    def release(self, handle: MessageHandle, *, delay_s: float = 0) -> None:
        try:
            self._main.hide(handle.message_id, handle.pop_receipt, delay_s)
        except StaleHandle:
            logger.warning("message %s: receipt expired, not released", handle.message_id)

    def count(self, *, poison: bool = False) -> int:
        return (self._poison if poison else self._main).count()

    def reject(self, text: str) -> None:
        self._poison.put(base64.b64encode(text.encode("utf-8")).decode("ascii"))

    def poison_messages(self, max_messages: int = MAX_BATCH) -> list[PoisonMessage]:
        out: list[PoisonMessage] = []
        for raw in self._poison.peek(min(max(max_messages, 1), MAX_BATCH)):
            request: ReconcileRequest | None = None
            error: str | None = None
            try:
                request = decode_wire(raw.text)
            except InvalidRequest as exc:
                error = rejected_reason(raw.text) or str(exc)
            out.append(PoisonMessage(raw.message_id, raw.text, request, error, raw.dequeue_count,
                                     raw.inserted_on))
        return out

    def redrive(self, max_messages: int = 100) -> list[ReconcileRequest]:
        sent: list[ReconcileRequest] = []
        skipped: list[RawMessage] = []
        seen = 0
        while seen < max_messages:
            batch = self._poison.get(min(MAX_BATCH, max_messages - seen), 60)
            if not batch:
                break
            for raw in batch:
                seen += 1
                try:
                    old = decode_wire(raw.text)
                except InvalidRequest as exc:
                    logger.warning("poison message %s left for a human: %s", raw.message_id, exc)
                    skipped.append(raw)
                    continue
                new = ReconcileRequest.new(
                    old.account, Trigger.REDRIVE,
                    f"redrive of {old.request_id} ({old.trigger}): {old.reason}", offboard=old.offboard)
                self.send(new)  # send before delete: a crash in between duplicates, never loses
                try:
                    self._poison.remove(raw.message_id, raw.pop_receipt)
                except StaleHandle:
                    logger.warning("poison message %s redriven twice", raw.message_id)
                sent.append(new)
        for raw in skipped:  # make them visible again at once for poison_messages()
            try:
                self._poison.hide(raw.message_id, raw.pop_receipt, 0)
            except StaleHandle:
                pass
        if sent:
            logger.info("redrove %d poison messages", len(sent))
        return sent
