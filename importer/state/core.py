"""State core: the lease behaviour both twins share, written once over small storage primitives.

Lease hold/renew/release; a backend supplies only the lease callables, so the in-memory twin cannot
drift from blob leases in anything but the wire.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from importer.state.ports import LockBusy, LockLost

logger = logging.getLogger(__name__)


class RenewingLease:
    """A held lease plus the daemon thread that renews it every ``every_s`` until stopped."""

    def __init__(self, key: str, lease_id: str, renew: Callable[[str], None], *, lease_s: float,
                 every_s: float) -> None:
        self._key = key
        self.lease_id = lease_id
        self._renew = renew
        self._lease_s = lease_s
        self._every_s = every_s
        self._renewals = 0
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-renewer:{key[-40:]}", daemon=True)

    @property
    def key(self) -> str:
        return self._key

    @property
    def renewals(self) -> int:
        return self._renewals

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def ensure(self) -> None:
        if self._lost.is_set():
            raise LockLost(f"lease on {self._key} lost: another worker may hold it; retry later")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.wait(self._every_s):
            try:
                self._renew(self.lease_id)
            except LockLost as exc:
                logger.warning("lease on %s lost: %s", self._key, exc)
                self._lost.set()
                return
            except Exception as exc:  # transient: keep trying while the lease may still be ours
                if time.monotonic() - last_ok >= self._lease_s:
                    logger.warning("lease on %s lost: renewal failing for %.0fs: %s", self._key,
                                   self._lease_s, exc)
                    self._lost.set()
                    return
                logger.warning("lease on %s: renewal failed, retrying: %s", self._key, exc)
                continue
            self._renewals += 1
            last_ok = time.monotonic()


@contextmanager
def hold_lease(key: str, *, try_acquire: Callable[[], str | None], renew: Callable[[str], None],
               release: Callable[[str], None], wait: bool, timeout_s: float, poll_s: float,
               lease_s: float, renew_every_s: float) -> Iterator[RenewingLease]:
    """Acquire (polling with jitter until ``timeout_s`` when ``wait``), renew while held, release."""
    started = time.monotonic()
    while (lease_id := try_acquire()) is None:
        waited = time.monotonic() - started
        if not wait or waited >= timeout_s:
            logger.warning("lock busy for %s after %.1fs", key, waited)
            raise LockBusy(key, waited)
        time.sleep(max(0.0, min(poll_s * random.uniform(0.5, 1.5), timeout_s - waited)))
    lease = RenewingLease(key, lease_id, renew, lease_s=lease_s, every_s=renew_every_s)
    lease.start()
    try:
        yield lease
    finally:
        lease.stop()
        try:
            release(lease_id)
        except Exception as exc:  # never mask the block's own error; the lease expires by itself
            logger.warning("releasing the lease on %s failed (it expires in %.0fs): %s", key, lease_s, exc)
