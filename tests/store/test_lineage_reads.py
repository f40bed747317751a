"""Reading lineage edges from the SQL store, by either end and both ends of a run at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from plinth.core.entities import LineageEdge
from plinth.core.errors import InvalidInput
from plinth.store.sql import SqlStore


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = SqlStore(store_url)
    yield opened
    opened.close()


def edge(src: tuple[str, str], relation: str, dst: tuple[str, str], **attributes: str) -> LineageEdge:
    return LineageEdge(src[0], src[1], relation, dst[0], dst[1], 1_000, dict(attributes))


def test_a_runs_edges_both_ways_in_one_read(store: SqlStore) -> None:
    run, other = ("run", "r1"), ("run", "r2")
    edges = [
        edge(("dataset_version", "d1"), "consumed_by", run, role="train"),
        edge(run, "produced", ("logged_model", "m1"), step="3"),
        edge(("run", "r0"), "parent_of", run),
        edge(run, "parent_of", other),
        edge(("dataset_version", "d2"), "consumed_by", other),
        edge(run, "feeds", run),  # a loop is both consumed and produced
    ]
    store.add_edges(edges)
    consumed, produced = store.run_edges("r1")
    assert consumed == [edges[0], edges[2], edges[5]]
    assert produced == [edges[1], edges[3], edges[5]]
    assert consumed == store.edges(dst=run) and produced == store.edges(src=run)
    assert store.edges(src=run, dst=other) == [edges[3]]
    assert store.edges() == edges
    assert store.run_edges("nobody") == ([], [])
    with pytest.raises(InvalidInput):
        store.run_edges("r\x00")
