"""build_state: which backend each setting selects, and where it points (no network needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from importer.settings import Settings, SettingsError
from importer.state import State, build_state
from importer.state.memory import MemoryLocks, MemoryOwnedIndex, MemoryRunHistory
from importer.state.ports import LockManager, OwnedIndex, RunHistory
from importer.state.storage import BlobLeaseLocks, TableOwnedIndex, TableRunHistory
from tests.fixtures.azurite import Azurite


def build(**env: str) -> State:
    return build_state(Settings.from_env(env))


def urls(state: State) -> tuple[str, str]:
    assert isinstance(state.locks, BlobLeaseLocks)
    assert isinstance(state.history, TableRunHistory)
    assert isinstance(state.owned, TableOwnedIndex)
    return (state.locks.container.url, f"{state.history.table.url}/{state.history.table.table_name}")


def test_nothing_set_means_memory() -> None:
    state = build()
    assert state.backend == "memory"
    assert isinstance(state.locks, MemoryLocks) and isinstance(state.history, MemoryRunHistory)
    assert isinstance(state.owned, MemoryOwnedIndex)


def test_every_backend_satisfies_the_ports() -> None:
    for state in (build(), build(AzureWebJobsStorage="UseDevelopmentStorage=true")):
        assert isinstance(state.locks, LockManager)
        assert isinstance(state.history, RunHistory)
        assert isinstance(state.owned, OwnedIndex)


@pytest.mark.parametrize("connection", ["UseDevelopmentStorage=true", "usedevelopmentstorage=True;"])
def test_development_storage_means_azurite_default_ports(connection: str) -> None:
    state = build(AzureWebJobsStorage=connection)
    assert state.backend == "azure-storage"
    assert urls(state) == (
        "http://127.0.0.1:10000/devstoreaccount1/locks",
        "http://127.0.0.1:10002/devstoreaccount1/runs",
    )


def test_full_connection_string_with_custom_ports(azurite: Azurite) -> None:
    state = build(AzureWebJobsStorage=azurite.connection_string)
    container, table = urls(state)
    assert container == f"http://127.0.0.1:{azurite.blob_port}/devstoreaccount1/locks"
    assert table == f"http://127.0.0.1:{azurite.table_port}/devstoreaccount1/runs"


def test_connection_string_wins_over_account_name() -> None:
    state = build(AzureWebJobsStorage="UseDevelopmentStorage=true", AzureWebJobsStorage__accountName="stx")
    assert "127.0.0.1" in urls(state)[0]


def test_account_name_means_identity_and_public_endpoints() -> None:
    state = build(AzureWebJobsStorage__accountName="stimporter")
    assert urls(state) == (
        "https://stimporter.blob.core.windows.net/locks",
        "https://stimporter.table.core.windows.net/runs",
    )
    assert "AccountKey" not in state.where


@pytest.mark.parametrize("env", [
    {"AzureWebJobsStorage__accountName": "Not_Valid"},
    {"AzureWebJobsStorage": "AccountKey=SUPERSECRETKEY==;Nonsense"},
    {"AzureWebJobsStorage": "BlobEndpoint=http://127.0.0.1:1/x;AccountKey=SUPERSECRETKEY=="},
])
def test_bad_storage_settings_fail_without_echoing_the_key(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as caught:
        build(**env)
    assert "SUPERSECRETKEY" not in str(caught.value)


def test_importing_state_does_not_import_the_azure_sdks() -> None:
    code = ("import sys, importer.state, importer.state.storage; "
            "print(sorted(m for m in sys.modules if m.startswith('azure')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
