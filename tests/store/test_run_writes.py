"""Creating and ending runs in the SQL store, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from plinth.core.entities import RunStatus
from plinth.core.errors import ConflictError, InvalidInput, NotFound, RunNotActive
from plinth.store.base import NewRun, Store

KEY = "a-test-audit-key-" + "0" * 16


@pytest.fixture
def store(open_store: Callable[..., Store]) -> Store:
    return open_store(actor="tester", audit_key=KEY)


def spec(name: str | None = None, **params: str) -> NewRun:
    return NewRun("exp", name, params, {"kind": name or "unnamed"}, {"python": "3.11"}, 10.0, "u")


def now() -> int:
    return time.time_ns() // 1_000_000


def test_runs_created_together_keep_their_own_params_and_tags(store: Store) -> None:
    made = store.create_runs([spec(f"r{i}", i=str(i)) for i in range(7)])
    for i, run in enumerate(made):
        got = store.get_run(run.id)
        assert (got.name, got.params, got.tags) == (f"r{i}", {"i": str(i)}, {"kind": f"r{i}"})
        assert got.status is RunStatus.RUNNING and got.environment == {"python": "3.11"}
    assert [e.entity_id for e in store.audit_events() if e.action == "run.create"] == [r.id for r in made]


def test_a_run_gets_a_default_name(store: Store) -> None:
    run = store.create_runs([spec()])[0]
    assert store.get_run(run.id).name == run.name == f"run-{run.id[-8:].lower()}"


@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800b"])
def test_text_no_database_holds_is_refused_and_nothing_is_written(store: Store, bad: str) -> None:
    with pytest.raises(InvalidInput, match=r"holds a (NUL character|lone surrogate)"):
        store.create_runs([spec("fine", p="1"), spec("broken", p=bad)])
    assert store.search_runs(experiments=None, where=None, order_by=(), limit=None, now_ms=now()) == []
    assert not [e for e in store.audit_events() if e.action == "run.create"]


def test_ending_runs_together_and_again(store: Store) -> None:
    first, second = store.create_runs([spec("a"), spec("b")])
    store.end_runs(
        [(first.id, RunStatus.FINISHED, None, now()), (second.id, RunStatus.FAILED, "boom", now())]
    )
    assert store.get_run(first.id).status is RunStatus.FINISHED
    assert (store.get_run(second.id).status, store.get_run(second.id).error) == (RunStatus.FAILED, "boom")
    with pytest.raises(RunNotActive, match="already ended as FINISHED"):
        store.end_run(first.id, RunStatus.KILLED, None, now())
    with pytest.raises(NotFound):
        store.end_run("no-such-run", RunStatus.FINISHED, None, now())
    assert store.verify_audit().ok


def test_writers_creating_one_experiment_at_once_share_it(
    store: Store, open_store: Callable[..., Store]
) -> None:
    others = [open_store(actor=f"w{i}", audit_key=KEY) for i in range(4)]
    start = threading.Barrier(len(others))
    found: list[str] = []

    def create(s: Store) -> None:
        start.wait()
        found.append(s.get_or_create_experiment("shared").id)

    threads = [threading.Thread(target=create, args=(s,)) for s in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 4 and len(set(found)) == 1
    assert [e.entity_id for e in store.audit_events() if e.action == "experiment.create"] == found[:1]


def test_params_logged_one_call_at_a_time_keep_their_rules(store: Store) -> None:
    run = store.create_runs([spec("p", a="1")])[0]
    store.log_params(run.id, {"b": "2", "c": "x"})
    store.log_params(run.id, {"a": "1", "d": "4.5"})  # the same value again is no change
    with pytest.raises(ConflictError, match="Params are immutable"):
        store.log_params(run.id, {"d": "4.5", "b": "3"})
    many = {f"k{i}": str(i) for i in range(1_200)}  # more names than one lookup binds
    store.log_params(run.id, many)
    store.log_params(run.id, many)
    assert store.get_run(run.id).params == {"a": "1", "b": "2", "c": "x", "d": "4.5", **many}
    with pytest.raises(InvalidInput):
        store.log_params(run.id, {"e\ud800": "1"})
    store.end_run(run.id, RunStatus.FINISHED, None, now())
    with pytest.raises(RunNotActive):
        store.log_params(run.id, {"z": "1"})
    with pytest.raises(NotFound):
        store.log_params("no-such-run", {"z": "1"})
