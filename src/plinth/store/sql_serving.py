"""Prediction logs, as a part of `SqlStore`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select

from plinth.core.entities import PredictionLog
from plinth.core.errors import InvalidInput
from plinth.store import schema as t
from plinth.store.base import ServingStore

_COLUMNS = (
    "request_id",
    "model",
    "version",
    "route",
    "time_ms",
    "latency_ms",
    "subject_id",
    "inputs",
    "outputs",
)


class SqlServingStore(ServingStore):
    """Serving methods of SqlStore (mixed in; relies on its `_write` and `_read`)."""

    _write: Any
    _read: Any

    def write_prediction_logs(self, logs: Sequence[PredictionLog]) -> None:
        if not logs:
            return
        rows = [tuple(getattr(log, c) for c in _COLUMNS) for log in logs]

        def write(conn: Connection) -> None:
            mark = "?" if conn.dialect.name == "sqlite" else "%s"
            marks = ", ".join([mark] * len(_COLUMNS))
            sql = f"INSERT INTO prediction_logs ({', '.join(_COLUMNS)}) VALUES ({marks})"
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(sql, rows)
            finally:
                cursor.close()

        self._write("write prediction logs", write)

    def prediction_logs(
        self,
        model: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
        limit: int | None = None,
    ) -> list[PredictionLog]:
        pl = t.prediction_logs
        query = (
            select(*(pl.c[c] for c in _COLUMNS)).where(pl.c.model == model).order_by(pl.c.time_ms, pl.c.id)
        )
        if since_ms is not None:
            query = query.where(pl.c.time_ms >= since_ms)
        if until_ms is not None:
            query = query.where(pl.c.time_ms < until_ms)
        if version is not None:
            query = query.where(pl.c.version == version)
        if limit is not None:
            query = query.limit(limit)
        return self._read(
            "read prediction logs", lambda conn: [PredictionLog(*r) for r in conn.execute(query)]
        )

    def delete_prediction_logs(
        self, *, subject_id: str | None = None, before_ms: int | None = None, dry_run: bool = False
    ) -> tuple[int, str]:
        where = _where(subject_id, before_ms)
        pl = t.prediction_logs

        def remove(conn: Connection) -> tuple[int, str]:
            rows = conn.execute(
                select(pl.c.request_id, pl.c.model, pl.c.version, pl.c.route, pl.c.time_ms)
                .where(where)
                .order_by(pl.c.time_ms, pl.c.request_id, pl.c.route)
            ).all()
            digest = hashlib.sha256("\n".join("|".join(map(str, r)) for r in rows).encode()).hexdigest()
            if rows and not dry_run:
                conn.execute(delete(pl).where(where))
            return len(rows), digest

        return self._write("remove prediction logs", remove)

    def count_prediction_logs(self, *, subject_id: str | None = None, before_ms: int | None = None) -> int:
        query = select(func.count()).select_from(t.prediction_logs).where(_where(subject_id, before_ms))
        return int(self._read("count prediction logs", lambda conn: conn.execute(query).scalar()) or 0)


def _where(subject_id: str | None, before_ms: int | None) -> Any:
    pl = t.prediction_logs
    if subject_id is None and before_ms is None:
        raise InvalidInput("Say whose logs to remove (a subject id) or from before when.")
    clauses = []
    if subject_id is not None:
        clauses.append(pl.c.subject_id == subject_id)
    if before_ms is not None:
        clauses.append(pl.c.time_ms < before_ms)
    return and_(*clauses)
