"""Metric points as columns: the remote store's body for a batch, and the SQL store's fast path."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plinth.store.base import PointRow
from plinth.store.points import PointColumns
from plinth.store.sql import SqlStore
from plinth.store.wire import WireError

KEY = "a-test-audit-key-" + "0" * 16


def rows(run_ids: list[str], start: int = 0, n: int = 50) -> list[PointRow]:
    out: list[PointRow] = []
    for j, run_id in enumerate(run_ids):
        for key in ("loss", "acc"):
            out += [(run_id, key, s, 1000 * j + s, 5 + s, s / 7) for s in range(start, start + n)]
    return out


def same(a: list[PointRow], b: list[PointRow]) -> bool:
    """Equal, NaN equal to NaN."""
    return len(a) == len(b) and all(
        x[:5] == y[:5] and (x[5] == y[5] or (math.isnan(x[5]) and math.isnan(y[5])))
        for x, y in zip(a, b, strict=True)
    )


def test_points_go_to_columns_and_bytes_and_back() -> None:
    points = [
        *rows(["r1", "r2"]),
        ("r1", "loss", 99, 1, 2, math.nan),
        ("r3", "ü", -1, 2**63 - 1, 0, -math.inf),
    ]
    columns = PointColumns.from_rows(points)
    assert columns is not None
    assert columns.runs == ("r1", "r2", "r3") and columns.keys == ("loss", "acc", "ü")
    back = PointColumns.from_bytes(columns.to_bytes())
    assert same(back.rows(), points) and same(list(back), points) and len(back) == len(points)
    assert back[3] == points[3] and same(back[10:20].rows(), points[10:20])


@pytest.mark.parametrize(
    "row",
    [
        ("r", "loss", True, 1, 2, 0.5),  # a bool is not a step
        ("r", "loss", 1, 1, 2, 1),  # an int is not a float here
        ("r", "loss", 2**63, 1, 2, 0.5),  # past 64 bits
        ("r", 7, 1, 1, 2, 0.5),  # a key that is not text
        ("r", "loss", 1, 1, 2),  # a short row
    ],
)
def test_rows_that_are_not_plain_stay_rows(row: tuple[object, ...]) -> None:
    assert PointColumns.from_rows([("r", "loss", 0, 0, 0, 0.0), row]) is None  # type: ignore[list-item]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda body: b"not points",
        lambda body: body[:-1],
        lambda body: body + b"\0" * 40,
        lambda body: body.replace(b'"n": 3', b'"n": 9'),  # more points than it holds
        lambda body: body.replace(b'"runs": ["r"]', b'"runs": [1]  '),  # a run id that is not text
        lambda body: body[:-8] + (7).to_bytes(4, "little") + body[-4:],  # a key the header lacks
    ],
)
def test_a_body_that_is_not_points_is_refused(mangle: object) -> None:
    columns = PointColumns.from_rows([("r", "loss", i, i, 0, 0.5) for i in range(3)])
    assert columns is not None
    with pytest.raises(WireError):
        PointColumns.from_bytes(mangle(columns.to_bytes()))  # type: ignore[operator]


def history_and_audit(store: SqlStore, run_ids: list[str]) -> tuple[list[object], list[str]]:
    histories = [store.metric_history(r, k).tolist() for r in run_ids for k in ("loss", "acc")]
    latest = [sorted(store.get_run(r).metrics.items()) for r in run_ids]
    audit = sorted(
        e.after or ""
        for e in store.audit_events()
        if e.action == "run.metrics.log" and e.entity_id in run_ids
    )
    return [histories, latest], audit


def test_columns_are_stored_as_their_rows_would_be(store_url: str) -> None:
    stores = [SqlStore(store_url, actor="t", audit_key=KEY), SqlStore(store_url, actor="t", audit_key=KEY)]
    outcomes = []
    for store, as_columns in zip(stores, (False, True), strict=True):
        run_ids = [
            store.create_run(
                experiment=f"e{as_columns}",
                name=None,
                params={},
                tags={},
                environment=None,
                heartbeat_s=10.0,
                user="u",
            ).id
            for _ in range(2)
        ]
        store.write_metrics([(run_ids[0], "loss", -1, -1, 0, 0.0), (run_ids[0], "acc", -1, -1, 0, 0.0)])
        batch = [
            *rows(run_ids),
            (run_ids[1], "acc", 49, 0, 1, math.nan),
            (run_ids[0], "loss", 49, 10**6, 1, 3.0),
        ]
        retry = rows(run_ids, start=25)  # half of it written already
        for points, skip in ((batch, False), (retry, True)):
            columns = PointColumns.from_rows(points)
            store.write_metrics(columns if as_columns else points, skip_written=skip)  # type: ignore[arg-type]
        outcomes.append((run_ids, history_and_audit(store, run_ids)))
    for store in stores:
        store.close()
    (_, (stored_rows, audit_rows)), (_, (stored_columns, audit_columns)) = outcomes
    assert repr(stored_rows) == repr(stored_columns)  # NaN included
    assert len(audit_rows) == len(audit_columns) == 5
    assert [a.split(",")[0] for a in audit_rows] == [a.split(",")[0] for a in audit_columns]


def test_a_batch_sent_again_as_columns_is_stored_once(store_url: str) -> None:
    store = SqlStore(store_url, actor="t", audit_key=KEY)
    run_id = store.create_run(
        experiment="e", name=None, params={}, tags={}, environment=None, heartbeat_s=10.0, user="u"
    ).id
    columns = PointColumns.from_rows(rows([run_id], n=300))
    assert columns is not None
    for _ in range(2):
        store.write_metrics(columns, skip_written=True)
    history = store.metric_history(run_id, "loss")
    assert len(history) == 300 and np.array_equal(history["step"], np.arange(300))
    store.close()
