"""Columns sent to PostgreSQL as binary arrays: the bytes PostgreSQL itself makes, and points
written as columns coming back exactly as written, on both backends (SQLite takes them as rows)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import psycopg
import pytest

from plinth.store.base import Store
from plinth.store.points import PointColumns
from plinth.store.sql.metrics import COPIED_POINTS, SENT_POINTS
from plinth.store.sql.pg_arrays import array_bytes, float8_array, int8_array, teach

DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"

INTS = [0, 1, -1, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63), 1_765_000_000_000]
FLOATS = [0.0, -0.0, 0.1, 1 / 3, -2.5e-308, 5e-324, 1.7976931348623157e308, math.inf, -math.inf]


@pytest.mark.parametrize(
    ("values", "make", "cast"),
    [
        (INTS, int8_array, "bigint[]"),
        ([], int8_array, "bigint[]"),
        (FLOATS, float8_array, "float8[]"),
        ([math.nan, 1.5, math.nan, math.nan, -0.0, math.nan], float8_array, "float8[]"),
        ([math.nan], float8_array, "float8[]"),
    ],
)
def test_an_array_is_sent_as_postgresql_reads_it_back(
    values: list[float], make: Callable[[np.ndarray], object], cast: str
) -> None:
    dtype = np.float64 if cast == "float8[]" else np.int64
    array = make(np.array(values, dtype=dtype))
    with psycopg.connect(DSN, autocommit=True) as conn:
        for _ in range(6):  # past psycopg's threshold for preparing a statement
            cursor = conn.cursor()
            teach(cursor)
            cursor.execute(f"SELECT %s::{cast}, array_send(%s::{cast})", (array, array))
            back, sent = cursor.fetchone() or (None, None)
    expected = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
    assert back == expected
    assert [math.copysign(1, v) for v in back if isinstance(v, float)] == [
        math.copysign(1, v) for v in expected if isinstance(v, float)
    ]
    if values:  # PostgreSQL sends an empty array with no dimensions; it reads ours as empty too
        assert bytes(sent) == array_bytes(array)  # type: ignore[arg-type]


def test_a_cursor_not_taught_refuses_the_array_instead_of_sending_it_as_text() -> None:
    with psycopg.connect(DSN, autocommit=True) as conn, pytest.raises(psycopg.ProgrammingError):
        conn.execute("SELECT %s::bigint[]", (int8_array(np.arange(3)),))


def _columns(run_id: str, steps: list[int], values: list[float], stamp: int) -> PointColumns:
    rows = [(run_id, "v", s, i, stamp + i, v) for i, (s, v) in enumerate(zip(steps, values, strict=True))]
    columns = PointColumns.from_rows(rows)
    assert columns is not None
    return columns


def _new_run(store: Store) -> str:
    run = store.create_run(
        experiment="arrays", name=None, params={}, tags={}, environment=None, heartbeat_s=10.0, user="u"
    )
    return run.id


# sent with the commit; copied in just before it; copied in at once
@pytest.mark.parametrize("size", [8, COPIED_POINTS + 3, SENT_POINTS + 3])
def test_points_written_as_columns_come_back_exactly_as_written(
    open_store: Callable[..., Store], size: int
) -> None:
    store = open_store()
    run_id = _new_run(store)
    special = [0.1, math.nan, -0.0, 5e-324, -math.inf, math.inf, 1.7976931348623157e308, math.nan]
    values = [special[i % len(special)] if i < 16 or i % 997 == 0 else i / 7 for i in range(size)]
    steps = [-(2**62) + i if i % 2 else 2**62 - i for i in range(size)]
    stamp = time.time_ns() // 1_000_000
    store.write_metrics(_columns(run_id, steps, values, stamp))
    history = store.metric_history(run_id, "v")
    assert len(history) == size
    written = sorted(zip(steps, range(size), values, strict=True))
    back = history["value"].tolist()
    assert history["step"].tolist() == [s for s, _, _ in written]
    for (_, i, want), got in zip(written, back, strict=True):  # (SQLite keeps no sign on a zero)
        assert (math.isnan(want) and math.isnan(got)) or got == want, i
    assert sorted(history["timestamp_ms"].tolist()) == [stamp + i for i in range(size)]
    latest = store.get_run(run_id).metrics["v"]
    at_top = max(written)[2]
    assert (math.isnan(at_top) and math.isnan(latest)) or latest == at_top
