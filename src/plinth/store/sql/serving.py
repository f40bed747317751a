"""Prediction logs, as a part of `SqlStore`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVarTuple

from sqlalchemy import ColumnElement, Connection, Select, Table, and_, delete, false, func, or_, select

from plinth.core.entities import AlertState, Label, PredictionLog
from plinth.core.errors import InvalidInput
from plinth.core.ids import now_ms
from plinth.core.validation import unstorable
from plinth.store import schema as t
from plinth.store.base import ServingStore
from plinth.store.sql.base import SqlBase

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

Ts = TypeVarTuple("Ts")

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
    "status",
    "n_rows",
)


class SqlServing(SqlBase, ServingStore):
    """Serving methods of SqlStore: prediction logs, delayed labels, drift references, alert states."""

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
        query = _in_window(query, since_ms, until_ms, version)
        if limit is not None:
            query = query.limit(limit)
        return self._read(
            "read prediction logs", lambda conn: [PredictionLog(*r) for r in _raw_rows(conn, query)]
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

    def prediction_stats(
        self, model: str, *, since_ms: int | None = None, until_ms: int | None = None
    ) -> list[tuple[int, int, str, float, int, int]]:
        pl = t.prediction_logs
        query = (
            select(pl.c.time_ms, pl.c.version, pl.c.route, pl.c.latency_ms, pl.c.status, pl.c.n_rows)
            .where(pl.c.model == model)
            .order_by(pl.c.time_ms, pl.c.id)
        )
        query = _in_window(query, since_ms, until_ms, None)
        return self._read("read prediction stats", lambda conn: [tuple(r) for r in conn.execute(query)])

    def find_prediction(self, request_id: str) -> PredictionLog | None:
        if not _storable(request_id):
            return None
        pl = t.prediction_logs
        query = (
            select(*(pl.c[c] for c in _COLUMNS))
            .where(pl.c.request_id == request_id, pl.c.route != "shadow")
            .order_by(pl.c.id)
            .limit(1)
        )

        def fetch(conn: Connection) -> PredictionLog | None:
            row = conn.execute(query).first()
            return None if row is None else PredictionLog(*row)

        return self._read("find a prediction", fetch)

    def label_of(self, model: str, request_id: str) -> str | None:
        if not _storable(request_id):
            return None
        lb = t.labels
        query = select(lb.c.label).where(lb.c.model == model, lb.c.request_id == request_id)
        return self._read("read a label", lambda conn: conn.execute(query).scalar_one_or_none())

    def prediction_counts(self, model: str, version: int) -> tuple[int, int]:
        pl, lb = t.prediction_logs, t.labels
        query = (
            select(func.count(), func.count(lb.c.id))
            .select_from(pl.outerjoin(lb, and_(lb.c.model == pl.c.model, lb.c.request_id == pl.c.request_id)))
            .where(pl.c.model == model, pl.c.version == version, pl.c.route != "shadow")
        )

        def fetch(conn: Connection) -> tuple[int, int]:
            row = conn.execute(query).one()
            return int(row[0]), int(row[1])

        return self._read("count predictions", fetch)

    # delayed labels ----------------------------------------------------------------------------

    def write_labels(self, model: str, labels: Sequence[Label]) -> int:
        if not labels:
            return 0
        latest = {label.request_id: label for label in labels}  # the last label of a request wins
        rows = [
            {
                "model": model,
                "request_id": x.request_id,
                "label": x.label,
                "time_ms": x.time_ms,
                "subject_id": x.subject_id,
            }
            for x in latest.values()
        ]
        lb = t.labels

        def write(conn: Connection) -> int:
            ids = list(latest)
            old: dict[str, str] = {}
            for start in range(0, len(ids), 5_000):
                part = ids[start : start + 5_000]
                found = conn.execute(
                    select(lb.c.request_id, lb.c.label).where(lb.c.model == model, lb.c.request_id.in_(part))
                )
                old.update({r[0]: r[1] for r in found})
            insert = _dialect_insert(conn, lb)
            upsert = insert.on_conflict_do_update(
                index_elements=[lb.c.model, lb.c.request_id],
                set_={
                    "label": insert.excluded.label,
                    "time_ms": insert.excluded.time_ms,
                    "subject_id": func.coalesce(insert.excluded.subject_id, lb.c.subject_id),
                },
            )
            conn.execute(upsert, rows)
            before = _digest(sorted(old.items())) if old else None
            after = _digest(sorted((r["request_id"], r["label"]) for r in rows))
            self._audit(
                conn,
                "labels.log",
                "model",
                model,
                before=None if before is None else f"{len(old)} replaced sha256:{before}",
                after=f"{len(rows)} labels sha256:{after}",
            )
            return len(rows)

        return self._write("write labels", write)

    def labeled_predictions(
        self,
        model: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
    ) -> list[tuple[PredictionLog, str | None]]:
        pl, lb = t.prediction_logs, t.labels
        query = (
            select(*(pl.c[c] for c in _COLUMNS), lb.c.label)
            .select_from(pl.outerjoin(lb, and_(lb.c.model == pl.c.model, lb.c.request_id == pl.c.request_id)))
            .where(pl.c.model == model, pl.c.status == 200, pl.c.route != "shadow")
            .order_by(pl.c.time_ms, pl.c.id)
        )
        query = _in_window(query, since_ms, until_ms, version)
        return self._read(
            "read labeled predictions",
            lambda conn: [(PredictionLog(*r[:-1]), r[-1]) for r in _raw_rows(conn, query)],
        )

    def delete_labels(
        self, *, subject_id: str | None = None, before_ms: int | None = None, dry_run: bool = False
    ) -> tuple[int, str]:
        where = _label_where(subject_id, before_ms)
        lb = t.labels

        def remove(conn: Connection) -> tuple[int, str]:
            rows = conn.execute(
                select(lb.c.model, lb.c.request_id, lb.c.time_ms).where(where).order_by(lb.c.id)
            ).all()
            if rows and not dry_run:
                conn.execute(delete(lb).where(where))
            return len(rows), _digest(rows)

        return self._write("remove labels", remove)

    def count_labels(self, *, subject_id: str | None = None, before_ms: int | None = None) -> int:
        query = select(func.count()).select_from(t.labels).where(_label_where(subject_id, before_ms))
        return int(self._read("count labels", lambda conn: conn.execute(query).scalar()) or 0)

    # drift references ---------------------------------------------------------------------------

    def set_reference(self, model: str, dataset_version_id: str) -> None:
        ref = t.monitoring_references

        def write(conn: Connection) -> None:
            old = conn.execute(
                select(ref.c.dataset_version_id).where(ref.c.model == model)
            ).scalar_one_or_none()
            row = {"model": model, "dataset_version_id": dataset_version_id, "set_by": self.actor}
            insert = _dialect_insert(conn, ref)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[ref.c.model],
                    set_={"dataset_version_id": dataset_version_id, "set_by": self.actor, "set_ms": now_ms()},
                ),
                {**row, "set_ms": now_ms()},
            )
            self._audit(
                conn, "monitoring.reference.set", "model", model, before=old, after=dataset_version_id
            )

        self._write("set a drift reference", write)

    def get_reference(self, model: str) -> str | None:
        ref = t.monitoring_references
        query = select(ref.c.dataset_version_id).where(ref.c.model == model)
        return self._read("read a drift reference", lambda conn: conn.execute(query).scalar_one_or_none())

    # alert states -------------------------------------------------------------------------------

    def alert_states(self, rule: str | None = None) -> list[AlertState]:
        al = t.alert_states
        query = select(al).order_by(al.c.rule, al.c.target)
        if rule is not None:
            query = query.where(al.c.rule == rule)

        def fetch(conn: Connection) -> list[AlertState]:
            return [
                AlertState(
                    r.rule,
                    r.target,
                    r.breaches,
                    bool(r.firing),
                    r.incident_id,
                    r.opened_ms,
                    r.value,
                    r.updated_ms,
                )
                for r in conn.execute(query)
            ]

        return self._read("read alert states", fetch)

    def save_alert_state(
        self, state: AlertState, *, action: str | None = None, detail: str | None = None
    ) -> None:
        al = t.alert_states
        row = {
            "rule": state.rule,
            "target": state.target,
            "breaches": state.breaches,
            "firing": int(state.firing),
            "incident_id": state.incident_id,
            "opened_ms": state.opened_ms,
            "value": state.value,
            "updated_ms": state.updated_ms,
        }

        def write(conn: Connection) -> None:
            insert = _dialect_insert(conn, al)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[al.c.rule, al.c.target],
                    set_={k: v for k, v in row.items() if k not in ("rule", "target")},
                ),
                row,
            )
            if action is not None:
                self._audit(conn, action, "alert", f"{state.rule}:{state.target}", before=None, after=detail)

        self._write("save an alert state", write)


def _in_window(
    query: Select[*Ts], since_ms: int | None, until_ms: int | None, version: int | None
) -> Select[*Ts]:
    """`query` narrowed to prediction logs in [since_ms, until_ms) and of one version, where given."""
    pl = t.prediction_logs
    if since_ms is not None:
        query = query.where(pl.c.time_ms >= since_ms)
    if until_ms is not None:
        query = query.where(pl.c.time_ms < until_ms)
    if version is not None:
        query = query.where(pl.c.version == version)
    return query


def _raw_rows(conn: Connection, query: Select[Any]) -> list[tuple[Any, ...]]:
    """Run a select through the driver's cursor: plain tuples, without SQLAlchemy's row objects
    (monitoring reads logs by the million; the columns read need no type conversion)."""
    compiled = query.compile(dialect=conn.dialect)
    params: Any = compiled.params
    if compiled.positional:
        params = [compiled.params[name] for name in compiled.positiontup or ()]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _dialect_insert(conn: Connection, table: Table) -> PostgresInsert | SqliteInsert:
    """An INSERT into `table` that can upsert on this connection's database."""
    if conn.dialect.name == "postgresql":  # imported only where used: it is slow to import
        from sqlalchemy.dialects.postgresql import insert as postgres_insert

        return postgres_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _digest(rows: Sequence[Sequence[object]]) -> str:
    return hashlib.sha256("\n".join("|".join(map(str, r)) for r in rows).encode()).hexdigest()


def _label_where(subject_id: str | None, before_ms: int | None) -> ColumnElement[bool]:
    lb, pl = t.labels, t.prediction_logs
    if subject_id is None and before_ms is None:
        raise InvalidInput("Say whose labels to remove (a subject id) or from before when.")
    if subject_id is not None and not _storable(subject_id):
        return false()
    requests = select(pl.c.request_id).where(_where(subject_id, before_ms), pl.c.model == lb.c.model)
    own = lb.c.subject_id == subject_id if subject_id is not None else lb.c.time_ms < before_ms
    return or_(own, lb.c.request_id.in_(requests.scalar_subquery()))


def _where(subject_id: str | None, before_ms: int | None) -> ColumnElement[bool]:
    pl = t.prediction_logs
    if subject_id is None and before_ms is None:
        raise InvalidInput("Say whose logs to remove (a subject id) or from before when.")
    clauses = []
    if subject_id is not None:
        clauses.append(pl.c.subject_id == subject_id if _storable(subject_id) else false())
    if before_ms is not None:
        clauses.append(pl.c.time_ms < before_ms)
    return and_(*clauses)


def _storable(text: str) -> bool:
    """False for text no database takes (a NUL, a lone surrogate as from an undecodable argument):
    nothing stored can equal it, so a lookup by it finds nothing instead of failing in the driver."""
    return unstorable(text) is None
