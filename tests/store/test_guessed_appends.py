"""Audit appends that continue from the chain's end as this process last wrote it, unread
(PostgreSQL): one round trip per write, and what happens when another appender, or someone
editing the database, moved the chain in between."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from plinth.core.entities import RunStatus
from plinth.core.errors import AuditTampered
from plinth.store import audit
from plinth.store.base import NewRun
from plinth.store.sql import SqlStore

KEY = "a-test-audit-key-" + "2" * 16


@pytest.fixture
def pg_url(pg_schema_factory: Callable[[], str]) -> str:
    return pg_schema_factory()


@pytest.fixture
def stores(pg_url: str) -> Iterator[Callable[[], SqlStore]]:
    """Stores on one PostgreSQL schema, each with its own audit chain, as processes have."""
    made: list[SqlStore] = []

    def make() -> SqlStore:
        made.append(SqlStore(pg_url, actor="tester", audit_key=KEY))
        return made[-1]

    yield make
    for store in made:
        store.close()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per read of the chain's ends."""
    seen: list[int] = []
    tip = audit._tip

    def counted(cursor: Any) -> Any:
        seen.append(1)
        return tip(cursor)

    monkeypatch.setattr(audit, "_tip", counted)
    return seen


def ended_run(store: SqlStore, experiment: str = "guess") -> str:
    spec = NewRun(experiment, None, {"lr": "0.1"}, {}, None, 10.0, "u", end_status=RunStatus.FINISHED)
    return store.create_runs([spec])[0].id


def created(store: SqlStore, run_id: str) -> list[int]:
    """Sequence numbers of the run's creation events."""
    return [e.seq for e in store.audit_events() if e.entity_id == run_id and e.action == "run.create"]


def test_writes_after_this_process_s_own_do_not_read_the_chain_s_end(
    stores: Callable[[], SqlStore], reads: list[int]
) -> None:
    store = stores()
    ended_run(store)  # the first write reads the ends
    assert reads
    reads.clear()
    runs = [ended_run(store) for _ in range(5)]
    store.write_metrics([(runs[0], "loss", 0, 0, 1, 0.5)])
    store.record_audit("test.event", "thing", "t1", None, "x")
    assert reads == []
    assert [store.get_run(r).status for r in runs] == [RunStatus.FINISHED] * 5
    assert all(len(created(store, r)) == 1 for r in runs)
    seqs = [e.seq for e in store.audit_events()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert store.verify_audit().ok


def test_a_write_after_another_appender_s_is_made_again_once_from_the_chain_s_end(
    stores: Callable[[], SqlStore], reads: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "GUESS_PAUSE_S", (0.0, 0.0))  # guess again at once
    first, second = stores(), stores()
    runs = []
    for i in range(12):  # the two take turns every third write
        runs.append(ended_run(first if (i // 3) % 2 else second))
    assert len(set(runs)) == 12
    for run_id in runs:
        assert len(created(first, run_id)) == 1  # neither lost nor written twice
        assert first.get_run(run_id).status is RunStatus.FINISHED
    seqs = [e.seq for e in first.audit_events()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert first.verify_audit().ok


def test_after_a_failed_guess_the_chain_reads_its_ends_for_a_while(
    stores: Callable[[], SqlStore], reads: list[int]
) -> None:
    first, second = stores(), stores()
    ended_run(first)
    ended_run(first)
    ended_run(second)  # moves the chain past what `first` wrote
    reads.clear()
    ended_run(first)  # its guess fails, and it is made again, reading the ends
    assert len(reads) == 1
    ended_run(first)  # within the pause: reads again, though its own write is the end
    assert len(reads) == 2
    assert first.verify_audit().ok


def test_an_event_past_the_head_fails_the_guess_and_the_write_lands_after_it(
    stores: Callable[[], SqlStore], reads: list[int]
) -> None:
    store = stores()
    ended_run(store)
    head = store.verify_audit().head
    assert head is not None
    with store.engine.begin() as conn:  # an event appended without moving the head
        conn.execute(
            text(
                "INSERT INTO audit_events (seq, time_ms, actor, action, entity_type, entity_id, "
                "prev_hash, hash) VALUES (:seq, 1, 'x', 'x', 'x', 'x', :prev, :hash)"
            ),
            {"seq": head.seq + 1, "prev": head.hash, "hash": "f" * 64},
        )
    reads.clear()
    run_id = ended_run(store)
    assert reads == [1]  # the guess's events collided with it: made again from the ends
    assert created(store, run_id) == [head.seq + 2]


def test_a_head_edited_since_this_process_s_last_write_still_stops_it(
    stores: Callable[[], SqlStore],
) -> None:
    store = stores()
    ended_run(store)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_head SET mac = :m"), {"m": "0" * 64})
    with pytest.raises(AuditTampered, match="audit head"):
        ended_run(store, "after-the-edit")
    with store.engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT count(*) FROM runs JOIN experiments e ON e.id = runs.experiment_id WHERE e.name = :n"
            ),
            {"n": "after-the-edit"},
        ).scalar_one()
    assert stored == 0  # rolled back with its events
