"""RequestQueue contract, run on the in-memory twin and on Azure Storage queues (Azurite)."""

from __future__ import annotations

import base64
import json

import azure.functions as func
import pytest

from importer.state import ReconcileRequest, State
from importer.state.storage import StorageQueue
from tests.state.conftest import Harness, account


def req(name: str = "", reason: str = "test", **kw: bool) -> ReconcileRequest:
    return ReconcileRequest.new(account(name), "event", reason, **kw)


def test_send_receive_delete(state: State) -> None:
    sent = [req("a"), req("b", offboard=True), req("c")]
    assert state.queue.send_many(sent) == 3
    assert state.queue.count() == 3
    got = state.queue.receive(32, visibility_timeout_s=30)
    assert sorted((r for _, r in got), key=lambda r: r.request_id) == sorted(sent, key=lambda r: r.request_id)
    assert all(h.dequeue_count == 1 for h, _ in got)
    assert state.queue.receive(32) == []  # all invisible while we work on them
    assert state.queue.count() == 3  # …but still counted
    for handle, _ in got:
        state.queue.delete(handle)
    assert state.queue.count() == 0
    state.queue.delete(got[0][0])  # already gone: fine


def test_release_makes_it_visible_again_and_counts_an_attempt(state: State) -> None:
    state.queue.send(req())
    [(handle, first)] = state.queue.receive(1, visibility_timeout_s=30)
    state.queue.release(handle)
    [(again, second)] = state.queue.receive(1, visibility_timeout_s=30)
    assert second == first and again.dequeue_count == 2
    state.queue.delete(handle)  # stale receipt: ignored, the message stays with its new consumer
    assert state.queue.count() == 1
    state.queue.delete(again)
    assert state.queue.count() == 0


def test_send_with_delay_is_not_visible_yet(state: State) -> None:
    state.queue.send(req(), delay_s=30)
    assert state.queue.receive(1) == []
    assert state.queue.count() == 1


def test_receive_bounds(state: State) -> None:
    with pytest.raises(ValueError):
        state.queue.receive(0)
    with pytest.raises(ValueError):
        state.queue.receive(33)


def test_wire_text_is_what_the_functions_host_decodes(state: State, harness: Harness) -> None:
    sent = req(reason="ünïcode ✓")
    state.queue.send(sent)
    [text] = harness.raw_texts(state, False)
    # The raw message text is the base64 of the JSON (messageEncoding: base64)…
    assert base64.b64decode(text, validate=True) == sent.to_json().encode("utf-8")
    # …so the host hands the trigger the JSON itself, which parses back to the request.
    message = func.QueueMessage(id="1", body=base64.b64decode(text))
    assert ReconcileRequest.from_json(message.get_body().decode("utf-8")) == sent


def test_reads_what_the_host_or_another_producer_writes(state: State, harness: Harness) -> None:
    sent = req()
    harness.put_raw(state, base64.b64encode(sent.to_json().encode("utf-8")).decode("ascii"), False)
    [(_, got)] = state.queue.receive(1)
    assert got == sent


def test_undecodable_message_goes_to_poison_not_to_the_caller(state: State, harness: Harness) -> None:
    good = req("good")
    harness.put_raw(state, json.dumps({"account": "/x"}), False)  # plain JSON, no base64
    state.queue.send(good)
    got = state.queue.receive(32)
    assert [r for _, r in got] == [good]
    assert state.queue.count(poison=True) == 1
    [poisoned] = state.queue.poison_messages()
    assert poisoned.request is None and poisoned.error is not None and "base64" in poisoned.error
    assert poisoned.text == json.dumps({"account": "/x"})  # kept as it was


def test_too_many_attempts_move_the_message_to_poison(harness: Harness) -> None:
    state = harness.make(max_dequeue_count=2)
    sent = req()
    state.queue.send(sent)
    for attempt in (1, 2):
        [(handle, _)] = state.queue.receive(1, visibility_timeout_s=30)
        assert handle.dequeue_count == attempt
        state.queue.release(handle)
    assert state.queue.receive(1) == []  # third delivery: poisoned instead
    assert state.queue.count() == 0
    [poisoned] = state.queue.poison_messages()
    assert poisoned.request == sent
    assert base64.b64decode(harness.raw_texts(state, True)[0]) == sent.to_json().encode()


def test_redrive_requeues_decodable_poison_and_leaves_the_rest(state: State, harness: Harness) -> None:
    old = req("victim", reason="deployment created", offboard=True)
    harness.put_raw(state, base64.b64encode(old.to_json().encode()).decode(), True)
    harness.put_raw(state, "garbage", True)
    redriven = state.queue.redrive()
    assert len(redriven) == 1
    new = redriven[0]
    assert (new.account, new.trigger, new.offboard) == (old.account, "redrive", True)
    assert new.request_id != old.request_id and old.request_id in new.reason
    [(_, got)] = state.queue.receive(1)
    assert got == new
    left = state.queue.poison_messages()  # visible again at once
    assert [p.text for p in left] == ["garbage"]
    assert state.queue.redrive() == []


def test_sdk_base64_clients_interoperate(storage_state: State) -> None:
    """A QueueClient with the SDK's TextBase64 policies (the way the brief's producers and the host
    encode) reads what we send, and we read what it sends."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    ours = storage_state.queue
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
