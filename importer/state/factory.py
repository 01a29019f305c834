"""State factory: Settings → State (locks, history, owned index) on Azure Storage or in memory.

Edge. ``AzureWebJobsStorage`` (a connection string, incl. ``UseDevelopmentStorage=true``) wins, then
``AzureWebJobsStorage__accountName`` (identity-based, DefaultAzureCredential); else in memory.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from importer.settings import Settings, SettingsError
from importer.state.memory import MemoryLocks, MemoryOwnedIndex, MemoryRunHistory
from importer.state.ports import LockManager, OwnedIndex, RunHistory

logger = logging.getLogger(__name__)

# Azurite's well-known development account (public, documented; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_CONNECTION = (
    f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{AZURITE_ACCOUNT};"
    f"QueueEndpoint=http://127.0.0.1:10001/{AZURITE_ACCOUNT};"
    f"TableEndpoint=http://127.0.0.1:10002/{AZURITE_ACCOUNT};"
)
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
C = TypeVar("C")


@dataclass(frozen=True)
class StateConfig:
    """Names and timings. Defaults are production's; tests pass unique names per test."""

    container: str = "locks"
    table: str = "runs"
    lease_s: int = 60
    renew_every_s: float | None = None  # None: lease_s / 3
    poll_s: float = 1.0  # how often a waiting hold() retries


@dataclass(frozen=True)
class State:
    locks: LockManager
    history: RunHistory
    backend: str  # "memory" | "azure-storage"
    where: str = ""  # endpoint, never a key: for logs and `explain`
    owned: OwnedIndex | None = None  # which account owns an object (events on our objects)


def memory_state(config: StateConfig | None = None) -> State:
    config = config or StateConfig()
    return State(MemoryLocks(lease_s=config.lease_s, renew_every_s=config.renew_every_s),
                 MemoryRunHistory(), "memory", "in-process memory", MemoryOwnedIndex())


@dataclass(frozen=True)
class StorageAccount:
    """A storage account named by the settings: by connection string (never logged: it holds the
    key), or by name, reached with ``credential`` on the public endpoints."""

    connection: str = ""
    name: str = ""
    credential: Any = None

    def client(self, cls: type[C], service: str, resource: str) -> C:
        """An SDK client ``cls`` (ContainerClient, TableClient, QueueClient) for ``resource`` (a
        container, table or queue) on the account's ``service`` endpoint (blob, table, queue)."""
        make: Any = cls
        if not self.connection:
            return cast(C, make(f"https://{self.name}.{service}.core.windows.net", resource,
                                credential=self.credential))
        try:
            return cast(C, make.from_connection_string(self.connection, resource))
        except (ValueError, KeyError) as exc:  # never echo the string: it holds the key
            raise SettingsError(f"AzureWebJobsStorage is not a usable storage connection string "
                                f"({type(exc).__name__}); set all of Blob/Queue/TableEndpoint or "
                                "AccountName+EndpointSuffix") from None


def normalise_connection(connection: str) -> str:
    """``UseDevelopmentStorage=true`` → Azurite's default endpoints; anything else as given."""
    parts = dict(p.split("=", 1) for p in connection.strip().rstrip(";").split(";") if "=" in p)
    flags = {k.strip().lower(): v.strip().lower() for k, v in parts.items()}
    if flags.get("usedevelopmentstorage") == "true":
        return AZURITE_CONNECTION
    return connection.strip()


def storage_account(settings: Settings) -> StorageAccount | None:
    """The storage account the settings name, or None (in memory): ``AzureWebJobsStorage`` (a
    connection string, incl. ``UseDevelopmentStorage=true``) wins over its ``__accountName``."""
    if settings.storage_connection.strip():
        return StorageAccount(connection=normalise_connection(settings.storage_connection))
    account = settings.storage_account_name.strip()
    if not account:
        return None
    if not _ACCOUNT_NAME.match(account):
        raise SettingsError(f"AzureWebJobsStorage__accountName={account!r}: 3–24 lowercase letters or digits")
    from azure.identity import DefaultAzureCredential

    # A user-assigned identity is named like the Functions host names it, once settings declares it.
    client_id = settings.raw.get("AzureWebJobsStorage__clientId", "") or None
    credential = DefaultAzureCredential(managed_identity_client_id=client_id)
    return StorageAccount(name=account, credential=credential)


def build_state(settings: Settings, config: StateConfig | None = None) -> State:
    """Choose and build the state backend (no network: resources are created on first use)."""
    config = config or StateConfig()
    account = storage_account(settings)
    state = memory_state(config) if account is None else _on_storage(account, config)
    logger.info("state backend: %s (%s)", state.backend, state.where)
    return state


def _on_storage(account: StorageAccount, config: StateConfig) -> State:
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient

    from importer.state.storage import BlobLeaseLocks, TableOwnedIndex, TableRunHistory

    container = account.client(ContainerClient, "blob", config.container)
    table = account.client(TableClient, "table", config.table)
    return State(
        BlobLeaseLocks(container, lease_s=config.lease_s, renew_every_s=config.renew_every_s,
                       poll_s=config.poll_s),
        TableRunHistory(table), "azure-storage",
        f"blob {container.url}, table {table.url}/{table.table_name}", TableOwnedIndex(table))
