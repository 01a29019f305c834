"""Azure Storage queues (azure-storage-queue): the reconcile-request queue and its poison queue.

Adapter. The SDK is imported inside functions (``import devhost.queues`` stays cheap); azure-core
errors become the product's storage errors (``importer.state.storage.azure_errors``); a queue is
created on first use, once per process.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from devhost.queues.core import QueueCore, RawMessage, StaleHandle
from importer.state.storage import azure_errors, create_once, error_code

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient


class AzureRawQueue:
    """RawQueue over one QueueClient. The client must have no encode/decode policy: texts pass as
    they are, and ``core`` does the base64 itself so one bad message cannot fail a whole batch."""

    def __init__(self, client: QueueClient) -> None:
        self.client = client

    def _ensure(self) -> None:
        create_once(self.client.url, f"create queue {self.client.queue_name}", self.client.create_queue)

    def put(self, text: str, delay_s: float = 0) -> None:
        self._ensure()
        with azure_errors("send queue message"):
            self.client.send_message(text, visibility_timeout=math.ceil(delay_s) or None)

    def get(self, max_messages: int, visibility_timeout_s: float) -> list[RawMessage]:
        self._ensure()
        with azure_errors("receive queue messages"):
            paged = self.client.receive_messages(messages_per_page=max_messages, max_messages=max_messages,
                                                 visibility_timeout=max(1, math.ceil(visibility_timeout_s)))
            return [self._raw(m) for m in paged]

    def peek(self, max_messages: int) -> list[RawMessage]:
        self._ensure()
        with azure_errors("peek queue messages"):
            return [self._raw(m) for m in self.client.peek_messages(max_messages=max_messages)]

    @staticmethod
    def _raw(message: Any) -> RawMessage:
        inserted = message.inserted_on.isoformat() if message.inserted_on else None
        return RawMessage(str(message.id), str(message.pop_receipt or ""), str(message.content),
                          int(message.dequeue_count or 0), inserted)

    def remove(self, message_id: str, pop_receipt: str) -> None:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        with azure_errors("delete queue message"):
            try:
                self.client.delete_message(message_id, pop_receipt)
            except ResourceNotFoundError:
                return
            except HttpResponseError as exc:
                if error_code(exc) == "PopReceiptMismatch":
                    raise StaleHandle(message_id) from exc
                raise

    def hide(self, message_id: str, pop_receipt: str, delay_s: float) -> None:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        with azure_errors("update queue message"):
            try:
                self.client.update_message(message_id, pop_receipt, visibility_timeout=math.ceil(delay_s))
            except ResourceNotFoundError as exc:
                raise StaleHandle(message_id) from exc
            except HttpResponseError as exc:
                if error_code(exc) == "PopReceiptMismatch":
                    raise StaleHandle(message_id) from exc
                raise

    def count(self) -> int:
        self._ensure()
        with azure_errors("read queue properties"):
            return int(self.client.get_queue_properties().approximate_message_count or 0)


class StorageQueue(QueueCore):
    """RequestQueue on Azure Storage queues ``reconcile-requests`` and ``reconcile-requests-poison``.

    Wire format: base64 of the UTF-8 JSON, identical to the SDK's TextBase64EncodePolicy and to what
    the Functions host reads with ``"messageEncoding": "base64"`` (host.json default) and writes to
    the poison queue. ``build_queue`` builds the clients (no SDK encode/decode policy).
    """

    def __init__(self, main: QueueClient, poison: QueueClient, *, max_dequeue_count: int = 5) -> None:
        self.main_client = main
        self.poison_client = poison
        super().__init__(AzureRawQueue(main), AzureRawQueue(poison), max_dequeue_count=max_dequeue_count)
