"""Metric points and latest values, as a part of `SqlStore`."""

from __future__ import annotations

import collections
import hashlib
import itertools
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, select
from sqlalchemy.exc import DataError, ProgrammingError
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from plinth.core.errors import InvalidInput, StoreError
from plinth.core.ids import now_ms
from plinth.store import schema as t
from plinth.store.base import PointRow
from plinth.store.engine import driver_cursor
from plinth.store.points import PointColumns
from plinth.store.sql.base import SqlBase
from plinth.store.sql.pg_arrays import PgArray, copy_bytes, float8_array, int8_array, teach

HISTORY_DTYPE = np.dtype([("step", "i8"), ("timestamp_ms", "i8"), ("value", "f8")])

_LATEST_UPSERT = (
    "INSERT INTO latest_metrics (run_key, key_id, step, seq, ts_ms, value) VALUES ({p}) "
    "ON CONFLICT (run_key, key_id) DO UPDATE SET step = excluded.step, seq = excluded.seq, "
    "ts_ms = excluded.ts_ms, value = excluded.value WHERE excluded.step > latest_metrics.step "
    "OR (excluded.step = latest_metrics.step AND excluded.seq > latest_metrics.seq)"
)

_REFUSED_DATA = (SqlIntegrityError, DataError, ProgrammingError)
"""Database errors about the values written, not about the database: retrying cannot help."""


_ROWS_PER_INSERT = 500
"""Rows of `metrics` per INSERT statement on SQLite (fewer where its variable limit is lower)."""

MetricRow = tuple[int, int, int, int, int, float]
"""run_key, key_id, step, seq, ts_ms, value: a row of `metrics` and of `latest_metrics`."""


SENT_POINTS = 10_000
"""Points a PostgreSQL write sends with its commit, at most; more are copied in, in round trips
of their own (COPY cannot share a pipeline)."""
_COLUMNS_PG = "%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::float8[]"
_POINTS_PG = (
    f"INSERT INTO metrics (run_key, key_id, step, seq, ts_ms, value) SELECT * FROM unnest({_COLUMNS_PG})"
)
_LATEST_PG = _LATEST_UPSERT.replace("VALUES ({p})", f"SELECT * FROM unnest({_COLUMNS_PG})")
_COPY_PG = "COPY metrics (run_key, key_id, step, seq, ts_ms, value) FROM STDIN (FORMAT BINARY)"
COPIED_POINTS = 1_000
"""Points of one transaction from which PostgreSQL copies them in, in binary, rather than
inserting them with its commit: a copy costs two round trips more, and PostgreSQL about 40%
less per point (it writes a page's rows at once). 3,600 points: 10.2-11.0 ms of PostgreSQL's
time against 16.0-18.2 ms."""


def _send_points(
    columns: Sequence[np.ndarray] | None, latest: Sequence[Sequence[object]], cursor: Any
) -> None:
    """Send points (as columns: five of int64, then the values, NaN for NULL; None where they
    were copied in) and the latest values they leave (rows, None or NaN for NULL) on PostgreSQL,
    each as one statement over arrays in binary (`pg_arrays`): one text for any number of
    points, so it is prepared once."""
    teach(cursor)
    if columns is not None:
        cursor.execute(_POINTS_PG, _array_params(columns))
    cursor.execute(_LATEST_PG, _array_params(_numeric_columns(latest)))


def _copy_points(columns: Sequence[np.ndarray], cursor: Any) -> None:
    """Copy points (as `_send_points` takes them) in, in binary: two round trips of their own."""
    *ints, values = columns
    with cursor.copy(_COPY_PG) as copy:
        copy.write(copy_bytes(ints, values))


class _SentPoints:
    """The points that the writes of one transaction send with its commit (PostgreSQL), sent as
    one statement, and the latest values they leave as one more, whatever the number of writes:
    a server's group commit makes dozens of writes in one transaction, and each statement costs
    the server its binding and PostgreSQL its planning and execution, whatever its size.

    From `COPIED_POINTS` points on, they are copied in instead, just before the commit's round
    trip (`copy_in`), and only the latest values go with the commit."""

    def __init__(self, sends: object) -> None:
        self.sends = sends
        """The transaction's list of statements sent with its commit: which transaction it is."""
        self.points = 0
        self._columns: list[Sequence[np.ndarray]] = []
        self._latest: list[Sequence[Sequence[object]]] = []
        self._copied = False

    def add(self, columns: Sequence[np.ndarray], latest: Sequence[Sequence[object]]) -> None:
        self._columns.append(columns)
        self._latest.append(latest)
        self.points += len(columns[0])

    def copy_in(self, cursor: Any) -> None:
        """Copy the points in now (`_copy_points`)."""
        _copy_points(self._joined(), cursor)
        self._columns, self._copied = [], True

    def __call__(self, cursor: Any) -> None:
        latest = self._latest[0] if len(self._latest) == 1 else _latest_of(self._latest)
        columns = None if self._copied else self._joined()
        self.sends, self._columns, self._latest = None, [], []  # sent: no later write joins them
        _send_points(columns, latest, cursor)

    def _joined(self) -> Sequence[np.ndarray]:
        if len(self._columns) == 1:
            return self._columns[0]
        return [np.concatenate(column) for column in zip(*self._columns, strict=True)]


def _latest_of(writes: Sequence[Sequence[Sequence[object]]]) -> list[Sequence[object]]:
    """The latest value per run and key that writes' latest values leave, made in turn: a later
    one replaces an earlier one only past its (step, seq), as the upsert does (which cannot meet
    one row twice in a statement)."""
    chosen: dict[tuple[object, object], Sequence[object]] = {}
    for latest in writes:
        for row in latest:
            seen = chosen.get((row[0], row[1]))
            if seen is None or (row[2], row[3]) > (seen[2], seen[3]):
                chosen[(row[0], row[1])] = row
    return list(chosen.values())


def _array_params(columns: Sequence[np.ndarray]) -> list[PgArray]:
    *ints, values = columns
    return [*map(int8_array, ints), float8_array(values)]


def _floats(values: Iterable[Any]) -> list[float | None]:
    """Values as floats, NaN as NULL: an array binds one type, so ints among floats would not."""
    try:
        return [None if value is None or value != value else float(value) for value in values]
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(
            f"The metadata store refused metric points: a value is not a float ({exc})."
        ) from exc


def _numeric_columns(rows: Sequence[Sequence[object]]) -> list[np.ndarray]:
    """Rows of `metrics` as its six columns: five of int64, then the values as float64 (NaN for
    NULL, None among them too, as `pg_arrays` sends them)."""
    columns = list(zip(*rows, strict=True))
    try:
        return [*(np.array(c, dtype=np.int64) for c in columns[:5]), np.array(columns[5], dtype=np.float64)]
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"The metadata store refused metric points: {exc}.") from exc


def _nan_as_null(row: MetricRow) -> tuple[int, int, int, int, int, None]:
    """The row with its last item, a NaN metric value, as NULL: NULL stands for NaN in every store."""
    return (*row[:-1], None)


def _insert_many(cursor: sqlite3.Cursor, flat: list[object]) -> None:
    """Insert rows of `metrics` given as one flat list of values, many rows per statement: SQLite
    spends less per row on a statement of many rows than on as many one-row statements."""
    limit = cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(_ROWS_PER_INSERT, limit // 6)) * 6
    full = len(flat) - len(flat) % per
    if full:
        cursor.executemany(_values(per // 6), (flat[i : i + per] for i in range(0, full, per)))
    if full < len(flat):
        cursor.execute(_values((len(flat) - full) // 6), flat[full:])


def _values(rows: int) -> str:
    return "INSERT INTO metrics VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)


class SqlMetrics(SqlBase):
    """Metric methods of SqlStore: points appended through the driver, latest values upserted."""

    def write_metrics(self, points: Sequence[PointRow], *, skip_written: bool = False) -> None:
        """Append metric points; NaN is stored as NULL, ±inf as is.

        Args:
            skip_written: leave out points already stored (the same run, key, step and seq)
                instead of refusing the write: what a retried request may send again.

        Raises:
            InvalidInput: the database refused the points themselves (a value it cannot store).
            StoreError: the database failed or stayed locked; the points may be written again.
        """
        if not points:
            return

        def write(conn: Connection) -> None:
            self._write_points(conn, points)

        def write_new(conn: Connection) -> None:
            self._write_points(conn, points, skip_written=True)

        try:
            self._write("write metrics", write)
        except StoreError as exc:
            if skip_written and isinstance(exc.__cause__, SqlIntegrityError):  # some were written before
                self._write("write metrics", write_new)
                return
            if isinstance(exc.__cause__, _REFUSED_DATA):
                raise InvalidInput(f"The metadata store refused metric points: {exc.__cause__.orig}") from exc
            raise

    def _audit_points(
        self,
        conn: Connection,
        counts: Mapping[str, int],
        run_keys: Mapping[str, int],
        latest: Iterable[MetricRow],
    ) -> None:
        """One audit event per run per write: how many points, and a digest of the latest value
        per key they leave (the state a write changes; the points themselves are never updated)."""
        by_run: dict[int, list[tuple[int, int, int, int, float]]] = {}
        for row in latest:
            by_run.setdefault(row[0], []).append(row[1:])
        stamp = now_ms()
        events = []
        for run_id in sorted(counts):
            state = sorted(by_run.get(run_keys[run_id], []))
            digest = hashlib.sha256(repr(state).encode()).hexdigest()
            events.append(
                {
                    "time_ms": stamp,
                    "actor": self.actor,
                    "action": "run.metrics.log",
                    "entity_type": "run",
                    "entity_id": run_id,
                    "before": None,
                    "after": f"{counts[run_id]} points, latest sha256:{digest}",
                }
            )
        self._append(conn, events)

    def _write_points(
        self, conn: Connection, points: Sequence[PointRow], *, skip_written: bool = False
    ) -> None:
        """Append the points, move the latest values, and audit the write (one transaction);
        `skip_written` inserts each point unless it is stored already (slower than a bulk append)."""
        if isinstance(points, PointColumns):
            if not skip_written:
                self._write_columns(conn, points)
                return
            points = points.rows()
        run_keys = {rid: self._run_key(conn, rid) for rid in {p[0] for p in points}}
        key_ids = {name: self._key_id(conn, name, True) for name in {p[1] for p in points}}
        rows = [(run_keys[r], key_ids[k], s, q, ts, v) for r, k, s, q, ts, v in points]
        latest: dict[tuple[int, int], MetricRow] = {}
        for row in rows:
            seen = latest.get(row[:2])
            if seen is None or (row[2], row[3]) > (seen[2], seen[3]):
                latest[row[:2]] = row
        with driver_cursor(conn) as cursor:  # errors as SQLAlchemy's: `retrying` tells a lock from bad data
            if skip_written:
                p = self._placeholder
                insert = f"INSERT INTO metrics VALUES ({p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT DO NOTHING"
                cursor.executemany(insert, [r if r[5] == r[5] else _nan_as_null(r) for r in rows])
                known = [r if r[5] == r[5] else _nan_as_null(r) for r in latest.values()]
                cursor.executemany(_LATEST_UPSERT.format(p=", ".join([p] * 6)), known)
            elif self._sqlite:  # SQLite stores a NaN it is given as NULL
                cursor.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)", rows)
                cursor.executemany(_LATEST_UPSERT.format(p="?, ?, ?, ?, ?, ?"), list(latest.values()))
            else:
                ends = list(latest.values())
                moved = [(*r[:5], v) for r, v in zip(ends, _floats(r[5] for r in ends), strict=True)]
                self._write_pg(conn, cursor, _numeric_columns(rows), moved)
        counts = (
            {next(iter(run_keys)): len(points)}
            if len(run_keys) == 1
            else collections.Counter(p[0] for p in points)
        )
        self._audit_points(conn, counts, run_keys, latest.values())

    def _write_columns(self, conn: Connection, points: PointColumns) -> None:
        """`_write_points` for points as columns: the same rows, latest values and audit events,
        without a Python object per point beyond what the driver is handed."""
        used_runs = np.unique(points.run_index).tolist()
        used_keys = np.unique(points.key_index).tolist()
        run_keys = {points.runs[i]: self._run_key(conn, points.runs[i]) for i in used_runs}
        key_ids = {points.keys[i]: self._key_id(conn, points.keys[i], True) for i in used_keys}
        run_key = np.zeros(len(points.runs), dtype=np.int64)
        run_key[used_runs] = [run_keys[points.runs[i]] for i in used_runs]
        key_id = np.zeros(len(points.keys), dtype=np.int64)
        key_id[used_keys] = [key_ids[points.keys[i]] for i in used_keys]
        run_col, key_col = run_key[points.run_index], key_id[points.key_index]
        step, seq, stamp, value = points.step, points.seq, points.timestamp_ms, points.value
        # the latest point per (run, key): the largest (step, seq), the first of equals, as `_write_points`
        order = np.lexsort((-np.arange(len(points)), seq, step, key_col, run_col))
        run_sorted, key_sorted = run_col[order], key_col[order]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = (run_sorted[1:] != run_sorted[:-1]) | (key_sorted[1:] != key_sorted[:-1])
        chosen = order[last]
        latest: list[MetricRow] = list(
            zip(
                run_col[chosen].tolist(),
                key_col[chosen].tolist(),
                step[chosen].tolist(),
                seq[chosen].tolist(),
                stamp[chosen].tolist(),
                value[chosen].tolist(),
                strict=True,
            )
        )
        with driver_cursor(conn) as cursor:
            if self._sqlite:  # SQLite stores a NaN it is given as NULL
                columns = [run_col, key_col, step, seq, stamp, value]
                flat = itertools.chain.from_iterable(zip(*(c.tolist() for c in columns), strict=True))
                _insert_many(cursor, list(flat))
                cursor.executemany(_LATEST_UPSERT.format(p="?, ?, ?, ?, ?, ?"), latest)
            else:
                moved = [r if r[5] == r[5] else _nan_as_null(r) for r in latest]
                self._write_pg(conn, cursor, [run_col, key_col, step, seq, stamp, value], moved)
        counts = np.bincount(points.run_index, minlength=len(points.runs)).tolist()
        self._audit_points(conn, {points.runs[i]: counts[i] for i in used_runs}, run_keys, latest)

    def _write_pg(
        self,
        conn: Connection,
        cursor: Any,
        columns: list[np.ndarray],
        latest: Sequence[Sequence[object]],
    ) -> None:
        """Points, as the six columns of `metrics` (NaN values for NULL), and latest values on
        PostgreSQL (NaN already NULL). A write of up to `SENT_POINTS` points joins its
        transaction's (`_SentPoints`): sent with the commit, or copied in just before it; a
        larger one is copied in now."""
        if len(columns[0]) <= SENT_POINTS:
            joined = self._sent_points()
            if joined is not None:
                joined.add(columns, latest)  # another write of this transaction's: one statement
                return
            joined = _SentPoints(getattr(self._batch, "sends", None))
            joined.add(columns, latest)
            if self._send_at_commit(conn, joined):
                self._batch.points = joined
                return
        _copy_points(columns, cursor)
        _send_points(None, latest, cursor)

    def _sent_points(self) -> _SentPoints | None:
        """The points this thread's open write transaction sends with its commit, if any."""
        sends = getattr(self._batch, "sends", None)
        joined: _SentPoints | None = getattr(self._batch, "points", None)
        return joined if sends is not None and joined is not None and joined.sends is sends else None

    def _before_commit(self, conn: Connection) -> None:
        super()._before_commit(conn)
        joined = self._sent_points()
        if joined is not None and joined.points >= COPIED_POINTS:
            with driver_cursor(conn) as cursor:
                joined.copy_in(cursor)

    def metric_history(self, run_id: str, key: str) -> np.ndarray:
        def fetch(conn: Connection) -> np.ndarray:
            run_key = self._run_key(conn, run_id)
            key_id = self._key_id(conn, key, False)
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                p = self._placeholder
                cursor.execute(
                    f"SELECT step, ts_ms, value FROM metrics WHERE run_key = {p} AND key_id = {p} "
                    "ORDER BY step, seq",
                    (run_key, key_id),
                )
                return np.fromiter(cursor, dtype=HISTORY_DTYPE)
            finally:
                cursor.close()

        return self._read("read a metric history", fetch)

    def metric_keys(self, run_id: str) -> list[str]:
        def fetch(conn: Connection) -> list[str]:
            run_key = self._run_key(conn, run_id)
            rows = conn.execute(
                select(t.metric_keys.c.name)
                .join(t.latest_metrics, t.latest_metrics.c.key_id == t.metric_keys.c.id)
                .where(t.latest_metrics.c.run_key == run_key)
                .order_by(t.metric_keys.c.name)
            )
            return [r[0] for r in rows]

        return self._read("list metrics", fetch)
