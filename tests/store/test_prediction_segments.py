"""Prediction logs gathered into columnar segments: what is logged comes back as it was, reads see
rows and segments as one, and removal rewrites every segment that held what it removes, deleting
the old blobs at once, in an order that leaves no copy reachable after a crash."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from plinth.core.entities import Label, PredictionLog
from plinth.core.errors import ConfigError, StoreError
from plinth.store import segments
from plinth.store.blobs import BlobStore
from plinth.store.engine import make_engine, writing
from plinth.store.sql import SqlStore
from plinth.store.sql.segments import SqlSegments

IRREGULAR = [
    # several rows, a feature missing from the second, text and numbers
    ('{"instances": [{"x": 1, "c": "red"}, {"x": 2.5}]}', "[0, 1]", 200, 2),
    # columns and data
    ('{"columns": ["x", "c"], "data": [[3, "blue"]]}', "[1]", 200, 1),
    # rows as lists (positions)
    ('{"instances": [[0.5, 1.5, 2.5]]}', "[[0.2, 0.8]]", 200, 1),
    # a failed request: its outputs are the error message
    ("{}", "The model failed on this request: RuntimeError: boom", 500, 0),
    # values of mixed types in one feature, a nested value, unicode
    ('{"instances": [{"x": "n/a", "tags": {"k": [1, 2]}, "c": "Zoë"}]}', '["yes"]', 200, 1),
    # inputs that were not JSON
    ('"the inputs could not be written as JSON"', "[0]", 200, 1),
]


def log(i: int, inputs: str = '{"instances": [{"x": 1}]}', outputs: str = "[0]", **kw: Any) -> PredictionLog:
    fields: dict[str, Any] = {
        "request_id": f"r{i}",
        "model": "m",
        "version": 1,
        "route": "primary",
        "time_ms": 1_000 + i,
        "latency_ms": 1.5,
        "subject_id": None,
        "inputs": inputs,
        "outputs": outputs,
        "status": 200,
        "n_rows": 1,
    }
    return PredictionLog(**{**fields, **kw})


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(str(tmp_path / "artifacts"))


@pytest.fixture
def store(store_url: str, blobs: BlobStore) -> Iterator[SqlStore]:
    s = SqlStore(store_url, actor="tester", blobs=blobs)
    yield s
    s.close()


def segment_digests(store: SqlStore) -> set[str]:
    with store.engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT digest FROM prediction_segments"))}


def stored(blobs: BlobStore) -> set[str]:
    return {b.digest for b in blobs.list_blobs()}


def values_in_blobs(blobs: BlobStore) -> str:
    """Every value any stored segment holds, as text: its rows' values, the logged text, and each
    text column's dictionary (which may hold values no row uses)."""
    import pyarrow as pa

    found: list[str] = []
    for digest in stored(blobs):
        table = segments.from_bytes(blobs.read_bytes(digest), text=True)
        for column in table.columns:
            found += map(str, column.to_pylist())
            for chunk in column.chunks:
                if pa.types.is_dictionary(chunk.type):
                    found += map(str, chunk.dictionary.to_pylist())
    return " ".join(found)


def subjects_in_blobs(blobs: BlobStore) -> set[str | None]:
    """Every subject id any stored segment holds, read from the blobs themselves."""
    found: set[str | None] = set()
    for digest in stored(blobs):
        table = segments.from_bytes(blobs.read_bytes(digest), text=True)
        found |= set(table.column("subject_id").to_pylist())
    return found


def test_irregular_requests_come_back_as_they_were_logged(store: SqlStore) -> None:
    logs = [
        log(i, inputs, outputs, status=status, n_rows=n, subject_id=f"s{i % 2}")
        for i, (inputs, outputs, status, n) in enumerate(IRREGULAR)
    ]
    store.write_prediction_logs(logs)
    assert store.compact_prediction_logs("m", force=True) == len(logs)
    assert store.prediction_logs("m") == logs
    assert [store.find_prediction(x.request_id) for x in logs] == logs
    assert store.prediction_table("m").num_rows == 7  # one row per row sent, one for a request without


def test_a_window_is_read_as_columns_across_segments_and_rows(store: SqlStore) -> None:
    store.write_prediction_logs(
        [log(i, f'{{"instances": [{{"x": {i}, "c": "c{i % 3}"}}]}}') for i in range(10)]
    )
    store.compact_prediction_logs("m", force=True)
    store.write_prediction_logs(
        [log(i, f'{{"instances": [{{"x": {i}.5}}]}}', version=2) for i in range(10, 15)]
    )

    table = store.prediction_table("m", since_ms=1_005, until_ms=1_012)
    assert table.column("time_ms").to_pylist() == list(range(1_005, 1_012))
    assert table.column("in:x").to_pylist() == [5.0, 6.0, 7.0, 8.0, 9.0, 10.5, 11.5]
    assert table.column("in:c").to_pylist() == ["c2", "c0", "c1", "c2", "c0", None, None]
    assert "inputs_text" not in table.column_names
    assert store.prediction_table("m", version=2).column("request_id").to_pylist() == [
        f"r{i}" for i in range(10, 15)
    ]
    assert [x.request_id for x in store.prediction_logs("m", limit=3)] == ["r0", "r1", "r2"]


def test_compaction_waits_for_enough_logs_and_merges_small_segments(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segments, "COMPACT_ROWS", 4)
    monkeypatch.setattr(segments, "MERGE_FANIN", 3)
    written = []
    for batch in range(5):
        logs = [log(batch * 10 + i) for i in range(3 if batch == 4 else 4)]
        store.write_prediction_logs(logs)
        written += logs
        moved = store.compact_prediction_logs("m")
        assert moved == (0 if batch == 4 else 4)  # the last 3 logs wait: fewer than COMPACT_ROWS
        assert store.prediction_logs("m") == written
    assert len(segment_digests(store)) == 2  # three merged into one, then a fourth alone
    assert store.compact_prediction_logs("m", force=True) == 3
    assert len(segment_digests(store)) == 1 and store.prediction_logs("m") == written
    assert stored(store._blobs()) == segment_digests(store)  # merged segments' blobs are gone


def test_a_large_batch_is_written_as_segments_of_its_own(
    store: SqlStore, blobs: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segments, "DIRECT_ROWS", 4)
    logs = [log(i, model="m" if i % 4 else "small") for i in range(12)]  # 9 of m, 3 of small
    store.write_prediction_logs(logs)
    assert len(segment_digests(store)) == 1 and stored(blobs) == segment_digests(store)
    assert store._unsegmented("m", 100) == 0 and store._unsegmented("small", 100) == 3
    assert store.prediction_logs("m") == [x for x in logs if x.model == "m"]
    assert store.prediction_logs("small") == [x for x in logs if x.model == "small"]
    assert store.find_prediction("r5") == logs[5]


def test_logging_goes_on_in_rows_while_the_artifact_store_fails(
    store: SqlStore, blobs: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segments, "DIRECT_ROWS", 2)
    logs = [log(i) for i in range(4)]

    def unreachable(self: BlobStore, data: bytes, *, durable: bool = True) -> tuple[str, int]:
        raise StoreError("The artifact store s3://bucket failed: connection refused")

    with monkeypatch.context() as outage:
        outage.setattr(BlobStore, "put_bytes", unreachable)
        store.write_prediction_logs(logs)
        with pytest.raises(StoreError, match="connection refused"):
            store.compact_prediction_logs("m", force=True)
    assert store.prediction_logs("m") == logs and stored(blobs) == set()
    assert store.compact_prediction_logs("m", force=True) == 4 and store.prediction_logs("m") == logs


def test_segments_merged_from_many_batches_keep_every_request_findable_through_erasure(
    store: SqlStore, blobs: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segments, "DIRECT_ROWS", 2)
    logs = [log(i, subject_id="alice" if i % 3 == 1 else "bob") for i in range(12)]
    for start in range(0, 12, 4):  # three batches: three segments, then one of three parts
        store.write_prediction_logs(logs[start : start + 4])
    assert len(segment_digests(store)) == 3
    store.compact_prediction_logs("m", force=True)
    assert len(segment_digests(store)) == 1
    assert [store.find_prediction(x.request_id) for x in logs] == logs
    store.remove_predictions(subject_id="alice")
    kept = [x for x in logs if x.subject_id == "bob"]
    assert [store.find_prediction(x.request_id) for x in kept] == kept
    assert store.prediction_logs("m") == kept and stored(blobs) == segment_digests(store)


def test_requests_logged_as_columns_are_read_like_logged_ones(store: SqlStore) -> None:
    table = segments.encode_frame(
        {
            "request_id": ["a", "b"],
            "time_ms": [5, 6],
            "version": [1, 1],
            "route": ["external", "external"],
            "latency_ms": [0.0, 0.0],
            "status": [200, 200],
            "n_rows": [1, 1],
            "subject_id": ["s", None],
        },
        {"x": [1.0, None], "c": ["u", "v"]},
        [0, 1],
        range(2),
    )
    assert store.write_prediction_columns("m", [table]) == 2
    [a, b] = store.prediction_logs("m")
    assert (a.inputs, a.outputs, a.subject_id, b.inputs) == (
        '{"instances":[{"x":1.0,"c":"u"}]}',
        "[0]",
        "s",
        '{"instances":[{"c":"v"}]}',
    )
    assert store.find_prediction("b") == b
    assert store.count_prediction_logs(subject_id="s") == 1


def of(i: int) -> PredictionLog:
    """Request i: every third one is alice's, and her inputs and outputs hold her name."""
    if i % 3:
        return log(i, subject_id="bob")
    return log(i, f'{{"instances": [{{"x": 1, "c": "alice-{i}"}}]}}', '["alice-answer"]', subject_id="alice")


def test_erasure_rewrites_every_segment_holding_the_subject_and_deletes_the_old_blobs(
    store: SqlStore, blobs: BlobStore
) -> None:
    store.write_prediction_logs([of(i) for i in range(9)])
    store.compact_prediction_logs("m", force=True)
    store.write_prediction_logs([of(i) for i in range(9, 12)])
    store.compact_prediction_logs("m", force=True)
    store.write_prediction_logs([of(12), of(13)])  # still rows
    store.write_labels("m", [Label("m", "r3", "1", 5, None)])
    before = segment_digests(store)

    removed = store.remove_predictions(subject_id="alice")

    assert (removed.logs, removed.labels) == (5, 1)
    assert not before & stored(blobs)  # every old blob deleted at once, not at the next gc
    assert stored(blobs) == segment_digests(store)
    assert subjects_in_blobs(blobs) == {"bob"} and "alice" not in values_in_blobs(blobs)
    assert {x.subject_id for x in store.prediction_logs("m")} == {"bob"}
    assert store.count_prediction_logs(subject_id="alice") == 0
    assert store.remove_predictions(subject_id="bob").logs == 9
    assert stored(blobs) == segment_digests(store) == set()


def test_a_dry_run_changes_nothing(store: SqlStore, blobs: BlobStore) -> None:
    store.write_prediction_logs([log(i, subject_id="alice") for i in range(3)])
    store.compact_prediction_logs("m", force=True)
    before = stored(blobs)
    preview = store.remove_predictions(subject_id="alice", dry_run=True)
    assert preview.logs == 3 and stored(blobs) == before
    assert store.remove_predictions(subject_id="alice").logs_digest == preview.logs_digest


def test_a_removal_names_the_versions_it_removed_from(store: SqlStore) -> None:
    store.write_prediction_logs(
        [log(i, subject_id="alice", version=1 + i % 2) for i in range(5)]  # v1: r0 r2 r4, v2: r1 r3
        + [log(5, subject_id="alice", version=3, route="shadow"), log(6, subject_id="bob", version=3)]
        + [log(7, subject_id="alice", model="other", version=4)]
    )
    store.compact_prediction_logs("m", force=True)  # some in segments, "other" still a row
    store.write_prediction_logs([log(8, subject_id="carol", version=3)])
    store.write_labels("m", [Label("m", "r3", "1", 5, None), Label("m", "r6", "0", 5, "alice")])
    expected = (("m", 1, 3, 0), ("m", 2, 2, 1), ("m", 3, 1, 1), ("other", 4, 1, 0))
    preview = store.remove_predictions(subject_id="alice", dry_run=True)
    assert preview.versions == expected and store.count_prediction_logs(subject_id="alice") == 7
    removed = store.remove_predictions(subject_id="alice")
    # the shadow log counts for its version; bob's request r6 (v3) lost alice's label on it
    assert (removed.logs, removed.labels, removed.versions) == (7, 2, expected)
    assert removed.labels_digest == preview.labels_digest
    assert store.remove_predictions(subject_id="alice").versions == ()
    with store.batch():  # the removal of rows inside a batch names them too
        assert store.remove_predictions(subject_id="carol").versions == (("m", 3, 1, 0),)


def test_an_old_blob_left_by_a_crash_after_the_switch_is_deleted_by_the_next_erasure(
    store: SqlStore, blobs: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_prediction_logs([log(i, subject_id=["alice", "bob", "carol"][i % 3]) for i in range(6)])
    store.compact_prediction_logs("m", force=True)
    [old] = segment_digests(store)

    with monkeypatch.context() as crash:  # the process dies after the switch, before the deletion
        crash.setattr(SqlSegments, "_discard", lambda self, digests: None)
        store.remove_predictions(subject_id="alice")
    assert old in stored(blobs)  # a copy is left over, but nothing refers to it
    assert "alice" not in {x.subject_id for x in store.prediction_logs("m")}
    assert store.find_prediction("r0") is None

    store.remove_predictions(subject_id="nobody")  # the next erasure, of anyone, deletes it
    assert stored(blobs) == segment_digests(store) and subjects_in_blobs(blobs) == {"bob", "carol"}


def test_a_new_blob_left_by_a_crash_before_the_switch_is_deleted_by_the_next_sweep(
    store: SqlStore, blobs: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_prediction_logs([log(i, subject_id="alice") for i in range(3)])

    def die(self: SqlSegments, conn: Any, digest: str) -> None:
        raise SystemExit("killed")

    with monkeypatch.context() as crash:  # the process dies after storing the blob, before the switch
        crash.setattr(SqlSegments, "_adopt", die)
        crash.setattr(SqlSegments, "_discard", lambda self, digests: None)
        with pytest.raises(SystemExit):
            store.compact_prediction_logs("m", force=True)
    [orphan] = stored(blobs)  # a copy of alice's logs, in no segment: the logs are still rows
    assert segment_digests(store) == set() and len(store.prediction_logs("m")) == 3

    receipt = store.remove_predictions(subject_id="alice")
    assert receipt.logs == 3 and stored(blobs) == set()  # the erasure found the orphan too
    del orphan


def test_gc_deletes_left_over_segment_blobs_and_keeps_live_ones(
    store: SqlStore, blobs: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_prediction_logs([log(i, subject_id="alice" if i < 2 else "bob") for i in range(4)])
    store.compact_prediction_logs("m", force=True)
    with monkeypatch.context() as crash:
        crash.setattr(SqlSegments, "_discard", lambda self, digests: None)
        store.remove_predictions(subject_id="alice")
    [live] = segment_digests(store)
    assert len(stored(blobs)) == 2 and live in store.referenced_digests()

    assert store.sweep_prediction_blobs(min_age_s=3600) != []  # dropped blobs go whatever their age
    assert stored(blobs) == {live}


def test_an_erasure_during_a_compaction_leaves_no_copy_of_the_subject(
    store: SqlStore, blobs: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_prediction_logs([log(i, subject_id="alice" if i % 2 else "bob") for i in range(6)])
    store_segment = SqlSegments._store_segment
    erased: list[int] = []

    def erase_meanwhile(self: SqlSegments, table: Any) -> tuple[str, int]:
        made = store_segment(self, table)  # the compaction stored its blob (with alice in it)...
        if not erased:
            erased.append(store.remove_predictions(subject_id="alice").logs)  # ...when alice is erased
        return made

    with monkeypatch.context() as meanwhile:
        meanwhile.setattr(SqlSegments, "_store_segment", erase_meanwhile)
        assert store.compact_prediction_logs("m", force=True) == 0 and erased == [3]  # it gave up
    assert stored(blobs) == set() and segment_digests(store) == set()
    assert store.compact_prediction_logs("m", force=True) == 3
    assert subjects_in_blobs(blobs) == {"bob"}


def test_retention_rewrites_segments_that_reach_past_the_cutoff(store: SqlStore, blobs: BlobStore) -> None:
    store.write_prediction_logs([log(i) for i in range(10)])
    store.compact_prediction_logs("m", force=True)
    assert store.remove_predictions(before_ms=1_004).logs == 4
    assert [x.time_ms for x in store.prediction_logs("m")] == list(range(1_004, 1_010))
    assert stored(blobs) == segment_digests(store)


def test_a_store_without_an_artifact_store_keeps_rows_and_says_why_it_cannot_read_segments(
    store: SqlStore, store_url: str
) -> None:
    store.write_prediction_logs([log(i) for i in range(3)])
    plain = SqlStore(store_url, actor="tester")
    assert plain.compact_prediction_logs("m", force=True) == 0 and len(plain.prediction_logs("m")) == 3
    store.compact_prediction_logs("m", force=True)
    with pytest.raises(ConfigError, match="without its artifact store"):
        plain.prediction_logs("m")
    plain.close()


def test_logs_written_before_segments_existed_are_read_and_compacted(
    store_url: str, blobs: BlobStore
) -> None:
    from alembic import command

    from plinth.store.migrate import alembic_config

    engine = make_engine(store_url)
    with writing(engine) as conn:
        command.upgrade(alembic_config(conn), "0006")
    with writing(engine) as conn:
        conn.execute(
            text(
                "INSERT INTO prediction_logs (request_id, model, version, route, time_ms, latency_ms, "
                "subject_id, inputs, outputs, status, n_rows) VALUES "
                "('old', 'm', 1, 'primary', 7, 2.0, 's', '{\"instances\": [{\"x\": 4}]}', '[1]', 200, 1)"
            )
        )
    engine.dispose()
    store = SqlStore(store_url, actor="tester", blobs=blobs)  # migrates to 0007
    expected = log(
        0, '{"instances": [{"x": 4}]}', "[1]", request_id="old", time_ms=7, latency_ms=2.0, subject_id="s"
    )
    assert store.prediction_logs("m") == [expected]
    assert store.compact_prediction_logs("m", force=True) == 1
    assert store.prediction_logs("m") == [expected] and store.prediction_table("m").column(
        "in:x"
    ).to_pylist() == [4]
    store.close()


def test_segments_live_on_s3_too(store_url: str, s3_bucket: str, s3_server: str) -> None:
    blobs = BlobStore(s3_bucket, {"endpoint_url": s3_server})
    store = SqlStore(store_url, actor="tester", blobs=blobs)
    logs = [log(i, subject_id="alice" if i % 2 else "bob") for i in range(6)]
    store.write_prediction_logs(logs)
    store.compact_prediction_logs("m", force=True)
    assert store.prediction_logs("m") == logs
    store.remove_predictions(subject_id="alice")
    assert stored(blobs) == segment_digests(store) and subjects_in_blobs(blobs) == {"bob"}
    store.close()
