"""devhost.queues: the RequestQueue contract, run on the in-memory twin and on Azure Storage queues
(Azurite); the wire text; which queue the settings select."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import azure.functions as func
import pytest

from devhost.queues import QueueConfig, RequestQueue, build_queue
from devhost.queues.core import decode_wire, encode_wire
from devhost.queues.memory import MemoryQueue
from devhost.queues.storage import StorageQueue
from importer.settings import Settings, SettingsError
from importer.state import InvalidRequest, ReconcileRequest
from tests.devhost.conftest import Harness
from tests.state.conftest import account


def req(name: str = "", reason: str = "test", **kw: bool) -> ReconcileRequest:
    return ReconcileRequest.new(account(name), "event", reason, **kw)


def test_send_receive_delete(queue: RequestQueue) -> None:
    sent = [req("a"), req("b", offboard=True), req("c")]
    assert queue.send_many(sent) == 3
    assert queue.count() == 3
    got = queue.receive(32, visibility_timeout_s=30)
    assert sorted((r for _, r in got), key=lambda r: r.request_id) == sorted(sent, key=lambda r: r.request_id)
    assert all(h.dequeue_count == 1 for h, _ in got)
    assert queue.receive(32) == []  # all invisible while we work on them
    assert queue.count() == 3  # …but still counted
    for handle, _ in got:
        queue.delete(handle)
    assert queue.count() == 0
    queue.delete(got[0][0])  # already gone: fine


def test_release_makes_it_visible_again_and_counts_an_attempt(queue: RequestQueue) -> None:
    queue.send(req())
    [(handle, first)] = queue.receive(1, visibility_timeout_s=30)
    queue.release(handle)
    [(again, second)] = queue.receive(1, visibility_timeout_s=30)
    assert second == first and again.dequeue_count == 2
    queue.delete(handle)  # stale receipt: ignored, the message stays with its new consumer
    assert queue.count() == 1
    queue.delete(again)
    assert queue.count() == 0


def test_send_with_delay_is_not_visible_yet(queue: RequestQueue) -> None:
    queue.send(req(), delay_s=30)
    assert queue.receive(1) == []
    assert queue.count() == 1


def test_receive_bounds(queue: RequestQueue) -> None:
    with pytest.raises(ValueError):
        queue.receive(0)
    with pytest.raises(ValueError):
        queue.receive(33)


def test_wire_text_is_what_the_functions_host_decodes(queue: RequestQueue, harness: Harness) -> None:
    sent = req(reason="ünïcode ✓")
    queue.send(sent)
    [text] = harness.raw_texts(queue, False)
    # The raw message text is the base64 of the JSON (messageEncoding: base64)…
    assert base64.b64decode(text, validate=True) == sent.to_json().encode("utf-8")
    # …so the host hands the trigger the JSON itself, which parses back to the request.
    message = func.QueueMessage(id="1", body=base64.b64decode(text))
    assert ReconcileRequest.from_json(message.get_body().decode("utf-8")) == sent


def test_reads_what_the_host_or_another_producer_writes(queue: RequestQueue, harness: Harness) -> None:
    sent = req()
    harness.put_raw(queue, base64.b64encode(sent.to_json().encode("utf-8")).decode("ascii"), False)
    [(_, got)] = queue.receive(1)
    assert got == sent


def test_undecodable_message_goes_to_poison_not_to_the_caller(queue: RequestQueue, harness: Harness) -> None:
    good = req("good")
    harness.put_raw(queue, json.dumps({"account": "/x"}), False)  # plain JSON, no base64
    queue.send(good)
    got = queue.receive(32)
    assert [r for _, r in got] == [good]
    assert queue.count(poison=True) == 1
    [poisoned] = queue.poison_messages()
    assert poisoned.request is None and poisoned.error is not None and "base64" in poisoned.error
    assert poisoned.text == json.dumps({"account": "/x"})  # kept as it was


def test_too_many_attempts_move_the_message_to_poison(harness: Harness) -> None:
    queue = harness.make(max_dequeue_count=2)
    sent = req()
    queue.send(sent)
    for attempt in (1, 2):
        [(handle, _)] = queue.receive(1, visibility_timeout_s=30)
        assert handle.dequeue_count == attempt
        queue.release(handle)
    assert queue.receive(1) == []  # third delivery: poisoned instead
    assert queue.count() == 0
    [poisoned] = queue.poison_messages()
    assert poisoned.request == sent
    assert base64.b64decode(harness.raw_texts(queue, True)[0]) == sent.to_json().encode()


def test_redrive_requeues_decodable_poison_and_leaves_the_rest(queue: RequestQueue, harness: Harness) -> None:
    old = req("victim", reason="deployment created", offboard=True)
    harness.put_raw(queue, base64.b64encode(old.to_json().encode()).decode(), True)
    harness.put_raw(queue, "garbage", True)
    redriven = queue.redrive()
    assert len(redriven) == 1
    new = redriven[0]
    assert (new.account, new.trigger, new.offboard) == (old.account, "redrive", True)
    assert new.request_id != old.request_id and old.request_id in new.reason
    [(_, got)] = queue.receive(1)
    assert got == new
    left = queue.poison_messages()  # visible again at once
    assert [p.text for p in left] == ["garbage"]
    assert queue.redrive() == []


def test_sdk_base64_clients_interoperate(storage_queue: RequestQueue) -> None:
    """A QueueClient with the SDK's TextBase64 policies (the way the brief's producers and the host
    encode) reads what we send, and we read what it sends."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    ours = storage_queue
    assert isinstance(ours, StorageQueue)
    main = ours.main_client
    theirs = QueueClient(main.url.rsplit("/", 1)[0], main.queue_name, credential=main.credential,
                         message_encode_policy=TextBase64EncodePolicy(),
                         message_decode_policy=TextBase64DecodePolicy())
    sent = req(reason="naïve ✓")
    ours.send(sent)
    [message] = theirs.receive_messages(max_messages=1, visibility_timeout=30)
    assert message.content == sent.to_json()
    theirs.delete_message(message)
    back = req("back")
    theirs.send_message(back.to_json())
    [(_, got)] = ours.receive(1)
    assert got == back


class TestWire:
    def test_wire_is_base64_of_utf8_json(self) -> None:
        sent = req(reason="café")
        assert base64.b64decode(encode_wire(sent), validate=True).decode("utf-8") == sent.to_json()
        assert decode_wire(encode_wire(sent)) == sent

    def test_wire_matches_the_sdk_text_base64_encode_policy(self) -> None:
        from azure.storage.queue import TextBase64EncodePolicy

        sent = req(reason="naïve ✓")
        encode = TextBase64EncodePolicy()
        encode.configure(require_encryption=False, key_encryption_key=None, resolver=None)
        assert encode(sent.to_json()) == encode_wire(sent)

    @pytest.mark.parametrize("text", [
        '{"account": "/x"}',  # plain JSON: the producer forgot base64
        base64.b64encode(b"\xff\xfe").decode(),  # not UTF-8
        base64.b64encode(b'{"account": 1}').decode(),  # JSON, not a request
    ])
    def test_decode_rejects(self, text: str) -> None:
        with pytest.raises(InvalidRequest):
            decode_wire(text)


class TestBuildQueue:
    """Which queue the settings select, and where it points (no network needed): the same settings
    as the product's state (``importer.state.factory.storage_account``)."""

    @staticmethod
    def urls(**env: str) -> tuple[str, str]:
        queue = build_queue(Settings.from_env(env))
        assert isinstance(queue, StorageQueue)
        return queue.main_client.url, queue.poison_client.url

    def test_nothing_set_means_memory(self) -> None:
        queue = build_queue(Settings.from_env({}))
        assert isinstance(queue, MemoryQueue)

    @pytest.mark.parametrize("connection", ["UseDevelopmentStorage=true", "usedevelopmentstorage=True;"])
    def test_development_storage_means_azurite_default_ports(self, connection: str) -> None:
        assert self.urls(AzureWebJobsStorage=connection) == (
            "http://127.0.0.1:10001/devstoreaccount1/reconcile-requests",
            "http://127.0.0.1:10001/devstoreaccount1/reconcile-requests-poison")

    def test_account_name_means_identity_and_public_endpoints(self) -> None:
        assert self.urls(AzureWebJobsStorage__accountName="stimporter") == (
            "https://stimporter.queue.core.windows.net/reconcile-requests",
            "https://stimporter.queue.core.windows.net/reconcile-requests-poison")

    def test_names_and_retry_limit_come_from_the_config(self) -> None:
        settings = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
        queue = build_queue(settings, QueueConfig(queue="rq-x", poison_queue="dead", max_dequeue_count=2))
        assert isinstance(queue, StorageQueue) and queue.max_dequeue_count == 2
        assert (queue.main_client.queue_name, queue.poison_client.queue_name) == ("rq-x", "dead")

    def test_a_connection_string_without_a_queue_endpoint_fails_without_echoing_the_key(self) -> None:
        env = {"AzureWebJobsStorage": "BlobEndpoint=http://127.0.0.1:1/x;AccountKey=SUPERSECRETKEY=="}
        with pytest.raises(SettingsError) as caught:
            build_queue(Settings.from_env(env))
        assert "SUPERSECRETKEY" not in str(caught.value)

    def test_importing_the_queues_does_not_import_the_azure_sdks(self) -> None:
        code = ("import sys, devhost.queues, devhost.queues.storage; "
                "print(sorted(m for m in sys.modules if m.startswith('azure')))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "[]"
