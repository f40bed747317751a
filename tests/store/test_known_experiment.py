"""`SqlStore.known_experiment`: an experiment looked up once is found again from the cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from plinth.core.errors import NotFound
from plinth.store.sql import SqlStore


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = SqlStore(store_url)
    yield opened
    opened.close()


def test_found_by_id_or_name(store: SqlStore, store_url: str) -> None:
    made = store.get_or_create_experiment("churn")
    assert store.known_experiment(made.id) == made
    assert store.known_experiment(made.id) == made  # the second time from the cache
    assert store.known_experiment("churn").id == made.id
    other = SqlStore(store_url)  # another process's store finds it in the database
    try:
        assert other.known_experiment(made.id).id == made.id
    finally:
        other.close()


def test_an_unknown_experiment_is_not_found_until_it_exists(store: SqlStore) -> None:
    with pytest.raises(NotFound, match="plinth experiments list"):
        store.known_experiment("nope")
    store.get_or_create_experiment("nope")
    assert store.known_experiment("nope").name == "nope"  # a miss was not remembered
