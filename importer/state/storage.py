"""Azure Storage state: lease locks (blob leases), run history and owned-object index (tables).

Adapter. SDKs are imported inside functions (``import importer.state`` stays cheap); azure-core errors
become ours with ``raise … from``; container and table are created on first use, once per process.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from itertools import islice
from typing import TYPE_CHECKING, Any

from importer.model import PermanentError, TransientError
from importer.run import RUN_ID, Run
from importer.state.codec import account_hash, dumps, fit_run, roundtrip, run_timeline_key
from importer.state.core import hold_lease
from importer.state.ports import Lease, LockLost, RunNotFound

if TYPE_CHECKING:
    from azure.data.tables import TableClient
    from azure.storage.blob import BlobClient, ContainerClient

logger = logging.getLogger(__name__)

CONTAINER = "locks"
TABLE = "runs"


class StorageUnavailable(TransientError):
    """Azure Storage did not answer or was throttled: retry later."""


@contextmanager
def azure_errors(what: str) -> Iterator[None]:
    """Translate azure-core errors raised inside the block (expected ones are caught inside it)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    from importer.azure.errors import is_transient_status

    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as exc:
        logger.warning("%s: storage unreachable: %s", what, type(exc).__name__)
        raise StorageUnavailable(f"{what}: storage unreachable ({type(exc).__name__}); retry later") from exc
    except ClientAuthenticationError as exc:
        logger.warning("%s: storage refused our credentials", what)
        raise PermanentError(f"{what}: storage refused our credentials; check AzureWebJobsStorage "
                             "and the identity's storage data roles") from exc
    except HttpResponseError as exc:
        status = exc.status_code or 0
        logger.warning("%s: storage answered %s %s", what, status, error_code(exc))
        if is_transient_status(status):
            raise StorageUnavailable(f"{what}: storage answered {status}; retry later") from exc
        if status == 403:
            raise PermanentError(f"{what}: forbidden; the identity needs the Storage Queue/Blob/Table "
                                 "Data Contributor role") from exc
        raise PermanentError(f"{what}: storage answered {status} {error_code(exc)}") from exc


_created: set[str] = set()
_created_lock = threading.Lock()


def _once(url: str, create: Callable[[], None]) -> None:
    """Run ``create`` (which must tolerate 'already exists') once per process for ``url``."""
    if url in _created:
        return
    with _created_lock:
        if url not in _created:
            create()
            _created.add(url)


def create_once(url: str, what: str, create: Callable[[], object]) -> None:
    """Create a queue, container or table on first use, once per process; one that exists is fine."""
    def attempt() -> None:
        from azure.core.exceptions import ResourceExistsError

        with azure_errors(what):
            try:
                create()
            except ResourceExistsError:
                pass

    _once(url, attempt)


def _forget(url: str) -> None:
    with _created_lock:
        _created.discard(url)


def error_code(exc: Exception) -> str:
    code = getattr(exc, "error_code", None) or ""
    return str(getattr(code, "value", code))  # the SDKs give a str or a StorageErrorCode enum


# ---------------------------------------------------------------------------------------------
# Locks


_LOST = {"LeaseIdMismatchWithLeaseOperation", "LeaseNotPresentWithLeaseOperation", "LeaseLost",
         "LeaseIdMissing", "BlobNotFound", "ContainerNotFound"}


class BlobLeaseLocks:
    """LockManager on blob leases: container ``locks``, one empty-ish blob per account named by the
    sha256 hex of the lowercase account id (the blob holds the id, for humans).

    Leases are ``lease_s`` long (15–60 s; default 60, never infinite so a crashed worker's lock
    frees itself) and renewed every ``lease_s / 3`` by a daemon thread while held.
    """

    def __init__(self, container: ContainerClient, *, lease_s: int = 60, renew_every_s: float | None = None,
                 poll_s: float = 1.0) -> None:
        if not 15 <= lease_s <= 60:
            raise ValueError("blob leases last 15 to 60 seconds")
        self.container = container
        self.lease_s = lease_s
        self.renew_every_s = renew_every_s if renew_every_s is not None else lease_s / 3
        self.poll_s = poll_s

    def blob_name(self, account_key: str) -> str:
        return account_hash(account_key)

    def hold(self, account_key: str, wait: bool = True,
             timeout_s: float = 60.0) -> AbstractContextManager[Lease]:
        key = account_key.lower()
        blob = self.container.get_blob_client(self.blob_name(key))
        return hold_lease(
            key, try_acquire=lambda: self._acquire(blob, key), renew=lambda lid: self._renew(blob, lid),
            release=lambda lid: self._release(blob, lid), wait=wait, timeout_s=timeout_s,
            poll_s=self.poll_s, lease_s=self.lease_s, renew_every_s=self.renew_every_s)

    def _ensure_container(self) -> None:
        create_once(self.container.url, f"create container {self.container.container_name}",
                     self.container.create_container)

    def _acquire(self, blob: BlobClient, key: str) -> str | None:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
        from azure.storage.blob import BlobLeaseClient

        self._ensure_container()
        with azure_errors("acquire blob lease"):
            for _ in range(2):
                lease = BlobLeaseClient(blob)
                try:
                    lease.acquire(lease_duration=self.lease_s)
                    return str(lease.id)
                except ResourceNotFoundError as exc:  # first lock of this account (or container gone)
                    if error_code(exc) == "ContainerNotFound":
                        _forget(self.container.url)
                        self._ensure_container()
                    try:
                        blob.upload_blob(key.encode("utf-8"), overwrite=False)
                    except ResourceExistsError:
                        pass  # another worker created it first
                except HttpResponseError as exc:
                    if error_code(exc) == "LeaseAlreadyPresent":
                        return None
                    raise
            raise PermanentError(f"lock blob for {key} vanished twice while acquiring its lease")

    def _renew(self, blob: BlobClient, lease_id: str) -> None:
        from azure.core.exceptions import HttpResponseError
        from azure.storage.blob import BlobLeaseClient

        try:
            BlobLeaseClient(blob, lease_id=lease_id).renew()
        except HttpResponseError as exc:
            if error_code(exc) in _LOST:
                raise LockLost(f"blob lease renewal refused: {error_code(exc)}") from exc
            raise

    def _release(self, blob: BlobClient, lease_id: str) -> None:
        from azure.storage.blob import BlobLeaseClient

        with azure_errors("release blob lease"):
            BlobLeaseClient(blob, lease_id=lease_id).release()


# ---------------------------------------------------------------------------------------------
# Run history

TIMELINE = "timeline"  # partition with every run, newest first: list(account=None)
_INDEX_PREFIX = "run-"  # partition per run id holding a copy: get(run_id) is one point read
_INDEX_ROW = "record"
_FORMAT = 1


def _entity(run: Run, partition: str, row: str) -> dict[str, Any]:
    from azure.data.tables import EdmType, EntityProperty

    entity: dict[str, Any] = {
        "PartitionKey": partition, "RowKey": row, "format": _FORMAT,
        "run_id": run.run_id, "account": run.account, "trigger": run.trigger.value,
        "started_at": run.started_at, "finished_at": run.finished_at,
        "duration_ms": EntityProperty(run.duration_ms, EdmType.INT64), "outcome": run.outcome.value,
        "writes": EntityProperty(run.writes, EdmType.INT64),
        "changes_omitted": EntityProperty(run.changes_omitted, EdmType.INT64),
        "summary": dumps(run.summary), "changes": dumps(run.changes),
    }
    optional = {"probe": None if run.probe is None else dumps(run.probe), "error": run.error,
                "error_kind": run.error_kind.value if run.error_kind else None,
                "request_id": run.request_id}
    entity.update({k: v for k, v in optional.items() if v is not None})
    return entity


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)  # EntityProperty → its value


def _record(entity: dict[str, Any]) -> Run:
    data = {k: _plain(v) for k, v in entity.items() if k not in ("PartitionKey", "RowKey", "format")}
    for name in ("summary", "changes", "probe"):
        if isinstance(data.get(name), str):
            data[name] = json.loads(data[name])
    return Run.from_dict(data)


class TableRunHistory:
    """RunHistory on table ``runs``. Each run is written three times (upserts, idempotent):

    - PartitionKey = sha256 hex of the lowercase account id, RowKey = inverted start time + run id
      (per-account, newest first: ``list(account)``, ``last_for``);
    - PartitionKey = ``timeline``, same RowKey (everyone, newest first: ``list()``);
    - PartitionKey = ``run-{run_id}``, RowKey = ``record`` (``get`` is a point read).

    Complex fields are JSON strings; ``codec.fit_run`` keeps every property under the 64 KiB limit.
    """

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def _ensure(self) -> None:
        create_once(f"{self.table.url}/{self.table.table_name}",  # table url is the account's
                     f"create table {self.table.table_name}", self.table.create_table)

    def record(self, run: Run) -> Run:
        from azure.data.tables import UpdateMode

        stored = roundtrip(fit_run(run))
        row = run_timeline_key(stored)
        self._ensure()
        with azure_errors("record run"):
            for partition, rk in ((_INDEX_PREFIX + stored.run_id, _INDEX_ROW),
                                  (account_hash(stored.account), row), (TIMELINE, row)):
                self.table.upsert_entity(_entity(stored, partition, rk), mode=UpdateMode.REPLACE)
        return stored

    def get(self, run_id: str) -> Run:
        from azure.core.exceptions import ResourceNotFoundError

        if not isinstance(run_id, str) or not RUN_ID.match(run_id):
            raise RunNotFound(f"no run {run_id!r} in the history")
        self._ensure()
        with azure_errors("read run"):
            try:
                entity = self.table.get_entity(_INDEX_PREFIX + run_id, _INDEX_ROW)
            except ResourceNotFoundError as exc:
                raise RunNotFound(f"no run {run_id!r} in the history") from exc
        return _record(dict(entity))

    def list(self, account: str | None = None, limit: int = 50) -> builtins.list[Run]:
        if limit <= 0:
            return []
        partition = TIMELINE if account is None else account_hash(account)
        self._ensure()
        with azure_errors("list runs"):
            entities = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": partition},
                                                 results_per_page=min(limit, 1000))
            return [_record(dict(e)) for e in islice(entities, limit)]

    def last_for(self, account: str) -> Run | None:
        runs = self.list(account, 1)
        return runs[0] if runs else None


# ---------------------------------------------------------------------------------------------
# Owned-object index

OWNED = "owned"  # partition of the index in the runs table
_BATCH = 100  # a table transaction holds at most 100 operations of one partition


def _owned_row(key: str) -> str:
    """Keys may hold characters RowKey forbids ('/', '#', '?'): the row is their hash."""
    return hashlib.sha256(key.lower().encode("utf-8")).hexdigest()


class TableOwnedIndex:
    """OwnedIndex in table ``runs``, PartitionKey ``owned``, RowKey = sha256 of the key, with the key
    and the account as properties. ``remember`` upserts only what this process has not yet seen
    (one transaction per 100 keys), so a warm worker's no-op runs cost no storage write; ``owner``
    is one point read, cached when found."""

    def __init__(self, table: TableClient) -> None:
        self.table = table
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        TableRunHistory(self.table)._ensure()

    def remember(self, account: str, keys: Iterable[str]) -> int:
        with self._lock:
            new = sorted({k.lower() for k in keys if self._known.get(k.lower()) != account})
        if not new:
            return 0
        from azure.data.tables import UpdateMode

        self._ensure()
        with azure_errors("record owned objects"):
            for start in range(0, len(new), _BATCH):
                ops: list[Any] = [("upsert", {"PartitionKey": OWNED, "RowKey": _owned_row(k), "key": k,
                                              "account": account}, {"mode": UpdateMode.REPLACE})
                                  for k in new[start:start + _BATCH]]
                self.table.submit_transaction(ops)
        with self._lock:
            self._known.update(dict.fromkeys(new, account))
        return len(new)

    def owner(self, key: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        key = key.lower()
        with self._lock:
            if key in self._known:
                return self._known[key]
        self._ensure()
        with azure_errors("look up an owned object"):
            try:
                entity = self.table.get_entity(OWNED, _owned_row(key))
            except ResourceNotFoundError:
                return None
        account = str(entity.get("account") or "") or None
        if account is not None and entity.get("key") == key:
            with self._lock:
                self._known[key] = account
        return account
