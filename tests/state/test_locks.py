"""LockManager contract on the in-memory twin and on blob leases (Azurite), plus renewal proofs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from importer.state import LockBusy, LockLost, State
from importer.state.memory import MemoryLocks
from importer.state.storage import BlobLeaseLocks
from tests.state.conftest import FakeClock, Harness, account


def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_holders_exclude_each_other(state: State) -> None:
    key = account().lower()
    inside, most, entered = 0, 0, []
    guard = threading.Lock()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        nonlocal inside, most
        try:
            with state.locks.hold(key, wait=True, timeout_s=20):
                with guard:
                    inside += 1
                    most = max(most, inside)
                    entered.append(n)
                time.sleep(0.15)
                with guard:
                    inside -= 1
        except BaseException as exc:  # surface thread failures in the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(entered) == [0, 1, 2]
    assert most == 1


def test_no_wait_raises_lock_busy_and_keys_ignore_case(state: State) -> None:
    key = account("MixedCase")
    with state.locks.hold(key.upper()):
        with pytest.raises(LockBusy) as caught:
            with state.locks.hold(key.lower(), wait=False):
                pytest.fail("entered a lock someone else holds")
        assert caught.value.key == key.lower()
        with state.locks.hold(account("other"), wait=False):  # other accounts are independent
            pass


def test_wait_gives_up_after_timeout(state: State) -> None:
    key = account()
    with state.locks.hold(key):
        started = time.monotonic()
        with pytest.raises(LockBusy):
            with state.locks.hold(key, wait=True, timeout_s=0.4):
                pass
        assert 0.4 <= time.monotonic() - started < 5


def test_released_on_exit_even_on_exception(state: State) -> None:
    key = account()
    with pytest.raises(RuntimeError, match="boom"):
        with state.locks.hold(key):
            raise RuntimeError("boom")
    with state.locks.hold(key, wait=False) as lease:
        assert lease.key == key.lower()


def test_renewer_keeps_renewing_while_held(harness: Harness) -> None:
    state = harness.make(renew_every_s=0.1)
    key = account()
    with state.locks.hold(key) as lease:
        assert eventually(lambda: lease.renewals >= 3)
        assert not lease.lost
        lease.ensure()
        with pytest.raises(LockBusy):
            with state.locks.hold(key, wait=False):
                pass
    renewals = lease.renewals
    time.sleep(0.3)
    assert lease.renewals == renewals  # the renewer stopped with the block


def test_a_lost_lease_is_reported(harness: Harness) -> None:
    state = harness.make(renew_every_s=0.2)
    key = account()
    with state.locks.hold(key) as lease:
        harness.steal(state, key)  # the lease lapsed and someone else took it
        assert eventually(lambda: lease.lost)
        with pytest.raises(LockLost):
            lease.ensure()
    with pytest.raises(LockBusy):  # leaving the block did not release the thief's lease
        with state.locks.hold(key, wait=False):
            pass


@pytest.mark.parametrize("renews", [True, False])
def test_memory_lease_outlives_its_duration_only_by_renewal(renews: bool) -> None:
    clock = FakeClock()
    locks = MemoryLocks(lease_s=15, renew_every_s=0.05 if renews else 3600, clock=clock)
    key = account()
    with locks.hold(key) as lease:
        for step in (1, 2, 3):  # 3 × 10 s of lease time: twice past the 15-s duration
            before = lease.renewals
            clock.advance(10)
            if renews:
                assert eventually(lambda: lease.renewals > before)  # noqa: B023 (used at once)
            assert locks.held(key) is (renews or step == 1)
        if renews:
            with pytest.raises(LockBusy):
                with locks.hold(key, wait=False):
                    pass
        else:
            with locks.hold(key, wait=False):  # without renewal the lease lapsed: taken over
                pass


def test_blob_lease_state_while_held(storage_state: State) -> None:
    locks = storage_state.locks
    assert isinstance(locks, BlobLeaseLocks)
    key = account()
    blob = locks.container.get_blob_client(locks.blob_name(key))
    with locks.hold(key):
        props = blob.get_blob_properties()
        assert (props.lease.state, props.lease.duration) == ("leased", "fixed")
        assert blob.download_blob().readall().decode() == key.lower()  # the blob says whose lock it is
    assert blob.get_blob_properties().lease.state == "available"


@pytest.mark.slow
def test_blob_lease_renewed_past_its_15s_duration(storage_state_factory: Callable[..., State]) -> None:
    """Real time on the real service: a 15-s lease held for 17 s is still ours (about 17 s)."""
    state = storage_state_factory(lease_s=15, renew_every_s=5)
    key = account()
    with state.locks.hold(key) as lease:
        time.sleep(17)
        assert lease.renewals >= 3 and not lease.lost
        with pytest.raises(LockBusy):
            with state.locks.hold(key, wait=False):
                pass
