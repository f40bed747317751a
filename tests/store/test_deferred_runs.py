"""Runs whose creation is held back to join the store's next write (`create_run_deferred`): one
commit for a short run's start and end, seen at once by reads through the same store, written
alone soon after when nothing joins, and never lost to a refusal or a rollback, on both backends."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from plinth.core.entities import RunStatus
from plinth.core.errors import NotFound
from plinth.core.filters import parse_filter
from plinth.store import deferral
from plinth.store.base import NewRun
from plinth.store.deferral import Deferrals, Deferred
from plinth.store.sql import SqlStore

KEY = "a-test-audit-key-" + "2" * 16


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    store = SqlStore(store_url, actor="tester", audit_key=KEY)
    yield store
    store.close()


@pytest.fixture
def slow_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer thread waits an hour before writing what is held back: what a test sees of it
    then depends on the writes it makes, not on how soon the thread runs."""
    monkeypatch.setattr(deferral, "DEFER_S", 3600.0)


def commits(store: SqlStore) -> list[int]:
    """A list that grows by one at each commit of `store`'s engine."""
    seen: list[int] = []
    event.listen(store.engine, "commit", lambda _conn: seen.append(1))
    return seen


def start(store: SqlStore, experiment: str = "held", **params: str) -> str:
    run = store.create_run_deferred(
        NewRun(experiment, None, params, {"stage": "dev"}, {"python": "3.11"}, 10.0, "u")
    )
    return run.id


def known_experiment(store: SqlStore, name: str = "held") -> None:
    """A first run of `name` (created at once: the experiment is new here), ended."""
    store.end_run(start(store, name), RunStatus.FINISHED, None, now())


def now() -> int:
    return time.time_ns() // 1_000_000


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_short_runs_start_and_end_are_one_commit(store: SqlStore, slow_writer: None) -> None:
    known_experiment(store)
    seen = commits(store)
    run_id = start(store, lr="0.1")
    assert not seen  # held back, nothing written yet
    with store.batch():  # as a run's end writes its last points and its end
        store.write_metrics([(run_id, "loss", 0, 0, now(), 0.5)])
        store.end_run(run_id, RunStatus.FINISHED, None, now())
    assert len(seen) == 1
    got = store.get_run(run_id)
    assert (got.status, got.params, got.tags) == (RunStatus.FINISHED, {"lr": "0.1"}, {"stage": "dev"})
    assert got.metrics["loss"] == 0.5
    actions = [e.action for e in store.audit_events(entity_id=run_id)]
    assert actions == ["run.create", "run.metrics.log", "run.end"]


def test_a_run_started_inside_a_batch_joins_it(store: SqlStore) -> None:
    known_experiment(store)
    seen = commits(store)
    with store.batch():
        run_id = start(store)
        store.set_tags(run_id, {"a": "1"})
    assert len(seen) == 1
    assert not store._deferrals.waiting()
    assert store.get_run(run_id).tags == {"stage": "dev", "a": "1"}


def test_reads_through_the_store_see_a_held_back_run_at_once(store: SqlStore) -> None:
    known_experiment(store)
    run_id = start(store, lr="0.3")
    assert store.get_run(run_id).status is RunStatus.RUNNING
    found = store.search_runs(
        experiments=["held"], where=parse_filter("params.lr = '0.3'"), order_by=[], limit=None, now_ms=now()
    )
    assert [r.id for r in found] == [run_id]


def test_a_held_back_run_is_written_alone_when_nothing_joins_it(store: SqlStore, store_url: str) -> None:
    known_experiment(store)
    run_id = start(store)
    other = SqlStore(store_url, actor="reader", audit_key=KEY)  # another process's view
    try:
        wait_for(lambda: _has_run(other, run_id), "the held-back run was never written")
    finally:
        other.close()


def _has_run(store: SqlStore, run_id: str) -> bool:
    try:
        store.get_run(run_id)
    except NotFound:
        return False
    return True


def test_closing_the_store_writes_what_it_held_back(store_url: str) -> None:
    store = SqlStore(store_url, actor="tester", audit_key=KEY)
    known_experiment(store)
    run_id = start(store)
    store.close()
    reopened = SqlStore(store_url, actor="tester", audit_key=KEY)
    try:
        assert reopened.get_run(run_id).status is RunStatus.RUNNING
    finally:
        reopened.close()


def test_a_rolled_back_batch_leaves_the_run_to_the_next_write(store: SqlStore, slow_writer: None) -> None:
    known_experiment(store)
    run_id = start(store)
    with pytest.raises(RuntimeError), store.batch():
        store.set_tags(run_id, {"a": "1"})
        raise RuntimeError("the batch fails")
    assert [item.what for item in store._deferrals.pending()] == [f"create run {run_id}"]
    assert store.get_run(run_id).tags == {"stage": "dev"}  # made again by the read, without the tag
    store.end_run(run_id, RunStatus.FINISHED, None, now())
    assert store.get_run(run_id).status is RunStatus.FINISHED


def test_another_threads_write_waits_for_the_run_it_names(store: SqlStore) -> None:
    known_experiment(store)
    run_ids = [start(store) for _ in range(20)]
    errors: list[BaseException] = []

    def log(run_id: str) -> None:
        try:
            store.write_metrics([(run_id, "loss", 0, 0, now(), 1.0)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=log, args=(r,)) for r in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(store.get_run(r).metrics == {"loss": 1.0} for r in run_ids)


def test_a_run_the_database_refuses_is_dropped_with_a_warning_and_blocks_nothing(
    store: SqlStore, caplog: pytest.LogCaptureFixture, slow_writer: None
) -> None:
    known_experiment(store)
    keep = start(store)
    store.end_run(keep, RunStatus.FINISHED, None, now())
    refused = start(store)
    held = store._deferrals.pending()
    assert len(held) == 1
    held[0].write = _refusing(held[0].write)
    with caplog.at_level(logging.WARNING, logger="plinth.store"):
        store.set_experiment_tags("held", {"team": "a"})  # an unrelated write still lands
    assert store.get_experiment("held").tags == {"team": "a"}
    assert f"create run {refused}" in caplog.text
    with pytest.raises(NotFound):
        store.get_run(refused)
    assert store.get_run(keep).status is RunStatus.FINISHED


def _refusing(write: Any) -> Any:
    def refuse(conn: Any) -> None:
        conn.exec_driver_sql("INSERT INTO runs (id) VALUES (NULL)")  # a NOT NULL the database refuses

    return refuse


def test_the_first_run_of_an_experiment_is_created_at_once(store: SqlStore) -> None:
    seen = commits(store)
    run_id = start(store, "brand-new")
    assert len(seen) == 1  # the experiment and the run, its errors the caller's
    assert not store._deferrals.waiting()
    assert store.get_run(run_id).experiment_name == "brand-new"


def test_a_forked_childs_store_leaves_its_parents_held_back_writes() -> None:
    deferrals = Deferrals()
    mine = Deferred("mine", lambda _conn: None)
    parents = Deferred("parent's", lambda _conn: None, pid=-1)
    deferrals.hold(mine, lambda: None)
    deferrals.hold(parents, lambda: None)
    assert deferrals.take() == [mine]
    assert deferrals.take() == []  # taken once, until committed or put back
    deferrals.put_back([mine])
    assert deferrals.pending() == [mine]
    deferrals.done([mine])
    assert not deferrals.waiting()


def test_a_forked_child_starts_with_fresh_locks_and_none_of_its_parents_work() -> None:
    deferrals = Deferrals()
    deferrals.hold(Deferred("parent's", lambda _conn: None), lambda: None)
    holding, done = threading.Event(), threading.Event()

    def hold_the_turn() -> None:  # a thread the child will not have holds the lock as it forks
        with deferrals.turn:
            holding.set()
            done.wait(30)

    thread = threading.Thread(target=hold_the_turn)
    thread.start()
    holding.wait(30)
    try:
        pid = os.fork()
        if pid == 0:  # the child: exit 0 when it can take the lock and has nothing held back
            fine = deferrals.turn.acquire(timeout=10) and not deferrals.waiting()
            os._exit(0 if fine else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        done.set()
        thread.join()
    assert os.waitstatus_to_exitcode(status) == 0
    assert deferrals.waiting()  # the parent still has its own
