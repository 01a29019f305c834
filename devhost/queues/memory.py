"""In-memory twin of the reconcile-request queue, for the demo, the host emulation and the tests.

Thread-safe, one process. It keeps what Azure Storage would keep (base64 wire text, visibility,
dequeue counts, poison) through the shared ``core``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import islice

from devhost.queues.core import QueueCore, RawMessage, StaleHandle
from importer.state.ports import utc_now

Clock = Callable[[], float]


@dataclass
class _Stored:
    message: RawMessage
    visible_at: float


class MemoryRawQueue:
    """A RawQueue in a dict; ``clock`` (seconds) drives visibility so tests can move time."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._messages: dict[str, _Stored] = {}  # insertion order = FIFO

    def put(self, text: str, delay_s: float = 0) -> None:
        message = RawMessage(str(uuid.uuid4()), "", text, 0, utc_now())
        with self._lock:
            self._messages[message.message_id] = _Stored(message, self._clock() + max(0.0, delay_s))

    def get(self, max_messages: int, visibility_timeout_s: float) -> list[RawMessage]:
        out: list[RawMessage] = []
        with self._lock:
            now = self._clock()
            for stored in self._messages.values():
                if len(out) >= max_messages:
                    break
                if stored.visible_at > now:
                    continue
                stored.message = replace(stored.message, pop_receipt=uuid.uuid4().hex,
                                         dequeue_count=stored.message.dequeue_count + 1)
                stored.visible_at = now + visibility_timeout_s
                out.append(stored.message)
        return out

    def peek(self, max_messages: int) -> list[RawMessage]:
        with self._lock:
            now = self._clock()
            visible = (s.message for s in self._messages.values() if s.visible_at <= now)
            return [replace(m, pop_receipt="") for m in islice(visible, max_messages)]

    def remove(self, message_id: str, pop_receipt: str) -> None:
        with self._lock:
            stored = self._messages.get(message_id)
            if stored is None:
                return
            if stored.message.pop_receipt != pop_receipt:
                raise StaleHandle(message_id)
            del self._messages[message_id]

    def hide(self, message_id: str, pop_receipt: str, delay_s: float) -> None:
        with self._lock:
            stored = self._messages.get(message_id)
            if stored is None or stored.message.pop_receipt != pop_receipt:
                raise StaleHandle(message_id)
            stored.message = replace(stored.message, pop_receipt=uuid.uuid4().hex)
            stored.visible_at = self._clock() + max(0.0, delay_s)

    def count(self) -> int:
        with self._lock:
            return len(self._messages)

    def texts(self) -> list[str]:
        with self._lock:
            return [s.message.text for s in self._messages.values()]


class MemoryQueue(QueueCore):
    """RequestQueue twin. ``raw_texts``/``put_raw`` expose the wire, as a storage explorer would."""

    def __init__(self, *, max_dequeue_count: int = 5, clock: Clock = time.monotonic) -> None:
        self._main_raw = MemoryRawQueue(clock)
        self._poison_raw = MemoryRawQueue(clock)
        super().__init__(self._main_raw, self._poison_raw, max_dequeue_count=max_dequeue_count)

    def raw_texts(self, *, poison: bool = False) -> list[str]:
        """Every message's text as stored (base64), visible or not."""
        return (self._poison_raw if poison else self._main_raw).texts()

    def put_raw(self, text: str, *, poison: bool = False) -> None:
        """Enqueue a wire text as another producer (or the Functions host) would."""
        (self._poison_raw if poison else self._main_raw).put(text)
