"""OwnedIndex contract on the in-memory twin and on Azure Tables (Azurite)."""

from __future__ import annotations

import pytest

from importer.state import State
from importer.state.ports import OwnedIndex
from importer.state.storage import TableOwnedIndex
from tests.state.conftest import account


def test_unknown_keys_have_no_owner(state: State) -> None:
    assert isinstance(state.owned, OwnedIndex)
    assert state.owned.owner("api:ai-nobody-00000000") is None


def test_remember_then_look_up_case_insensitively(state: State) -> None:
    assert state.owned is not None
    a, b = account(), account()
    keys = ["api:ai-a-1234abcd", "backend:ai-a-1234abcd", "link:ai-consumers:ai-a-1234abcd",
            "role:6F1D2C3B-0000-4000-8000-000000000001", "subscription:ai-a-1234abcd-probe"]
    assert state.owned.remember(a, keys) == 5
    assert state.owned.remember(a, keys) == 0  # already known: nothing written
    assert state.owned.owner("ROLE:6f1d2c3b-0000-4000-8000-000000000001") == a
    assert state.owned.owner("link:ai-consumers:ai-a-1234abcd") == a
    assert state.owned.remember(b, ["backend:ai-a-1234abcd"]) == 1  # a new owner replaces the old
    assert state.owned.owner("backend:ai-a-1234abcd") == b


def test_more_keys_than_one_table_transaction_holds(state: State) -> None:
    assert state.owned is not None
    a = account()
    keys = [f"role:{i:08d}-0000-4000-8000-000000000000" for i in range(230)]
    assert state.owned.remember(a, keys) == 230
    assert {state.owned.owner(k) for k in keys[::23]} == {a}


@pytest.mark.azurite
def test_a_fresh_index_on_the_same_table_reads_what_another_wrote(storage_state: State) -> None:
    """A second process has an empty cache: its answer comes from the table."""
    assert isinstance(storage_state.owned, TableOwnedIndex)
    a = account()
    storage_state.owned.remember(a, ["api:ai-shared-0000abcd"])
    fresh = TableOwnedIndex(storage_state.owned.table)
    assert fresh.owner("api:ai-shared-0000abcd") == a
    assert fresh.owner("api:ai-other-0000abcd") is None
