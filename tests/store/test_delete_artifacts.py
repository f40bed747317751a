"""`Store.delete_artifacts` over every implementation: SQLite and PostgreSQL, directly and through a
team server (the contract suite's `open_store`)."""

from __future__ import annotations

import json

import pytest

from plinth.core.entities import RunStatus
from plinth.core.errors import InvalidInput, NotFound
from plinth.store.base import ArtifactRecord, Store


@pytest.fixture
def store(open_store):  # type: ignore[no-untyped-def]
    return open_store(actor="tester")


def make_run(store: Store) -> str:
    run = store.create_run(
        experiment="exp", name=None, params={}, tags={}, environment=None, heartbeat_s=10.0, user="u"
    )
    return run.id


def record(path: str, digest: str = "a") -> ArtifactRecord:
    return ArtifactRecord(path, digest * 64, 3)


def test_deletes_exactly_the_paths_given_and_counts_them(store: Store) -> None:
    run_id = make_run(store)
    store.add_artifacts(
        run_id, [record("ckpt/a"), record("ckpt/b"), record("ckpt/a.bak"), record("keep.txt")]
    )
    assert store.delete_artifacts(run_id, ["ckpt/a", "ckpt/b", "never/logged"]) == 2
    assert [a.path for a in store.list_artifacts(run_id)] == ["ckpt/a.bak", "keep.txt"]
    assert store.delete_artifacts(run_id, ["ckpt/a"]) == 0  # already gone: nothing to do
    assert store.delete_artifacts(run_id, []) == 0


def test_a_folder_path_is_not_a_prefix(store: Store) -> None:
    run_id = make_run(store)
    store.add_artifacts(run_id, [record("ckpt/a"), record("ckpt/b")])
    assert store.delete_artifacts(run_id, ["ckpt"]) == 0
    assert len(store.list_artifacts(run_id)) == 2


def test_works_on_an_ended_run_and_leaves_other_runs_alone(store: Store) -> None:
    first, second = make_run(store), make_run(store)
    store.add_artifacts(first, [record("m.bin")])
    store.add_artifacts(second, [record("m.bin")])
    store.end_run(first, RunStatus.FINISHED, None, 1)
    assert store.delete_artifacts(first, ["m.bin"]) == 1
    assert store.list_artifacts(first) == []
    assert [a.path for a in store.list_artifacts(second)] == ["m.bin"]


def test_deleted_digests_are_no_longer_referenced(store: Store) -> None:
    run_id = make_run(store)
    store.add_artifacts(run_id, [record("a", "b"), record("c", "d")])
    store.delete_artifacts(run_id, ["a"])
    used = store.referenced_digests()
    assert "d" * 64 in used and "b" * 64 not in used  # `plinth gc` may now collect its blob


def test_many_paths_at_once(store: Store) -> None:
    run_id = make_run(store)
    store.add_artifacts(run_id, [record(f"f/{i:04d}") for i in range(2500)])
    assert store.delete_artifacts(run_id, [f"f/{i:04d}" for i in range(0, 2500, 2)]) == 1250
    assert len(store.list_artifacts(run_id)) == 1250


def test_unknown_run_and_bad_paths_are_refused(store: Store) -> None:
    with pytest.raises(NotFound, match="No run"):
        store.delete_artifacts("0" * 26, ["a"])
    run_id = make_run(store)
    with pytest.raises(InvalidInput, match="not a plain"):
        store.delete_artifacts(run_id, ["./a"])


def test_deletion_is_audited_with_the_paths_removed(store: Store) -> None:
    run_id = make_run(store)
    store.add_artifacts(run_id, [record("x"), record("y")])
    store.delete_artifacts(run_id, ["y", "z"])
    [event] = store.audit_events(actions=["artifact.delete"])
    assert event.entity_id == run_id
    assert json.loads(event.before or "[]") == ["y"]
