"""Prediction logs, as a part of `SqlStore`."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypeVarTuple

from sqlalchemy import ColumnElement, Connection, Row, Select, Table, and_, delete, false, func, or_, select

from plinth.core.entities import AlertState, Label, PredictionLog
from plinth.core.errors import InvalidInput, NotFound, StoreBusy
from plinth.core.ids import now_ms
from plinth.core.validation import unstorable
from plinth.store import schema as t
from plinth.store import segments as seg
from plinth.store.base import RemovedPredictions, ServingStore
from plinth.store.sql.compaction import SqlCompaction, request_values
from plinth.store.sql.segments import (
    LOG_COLUMNS,
    TRIES,
    BlobsUnavailable,
    Segment,
    Superseded,
    keys_of,
    raw_rows,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

log = logging.getLogger("plinth.store")
Ts = TypeVarTuple("Ts")
_COLUMNS = LOG_COLUMNS


class SqlServing(SqlCompaction, ServingStore):
    """Serving methods of SqlStore: prediction logs (rows, then segments), delayed labels, drift
    references, alert states."""

    def write_prediction_logs(self, logs: Sequence[PredictionLog]) -> None:
        if not logs:
            return
        if not self._segment_direct(len(logs)):
            self._write("write prediction logs", lambda conn: self._insert_rows(conn, logs))
            return
        tables, rows = [], []
        for model, group in _by_model(logs).items():
            table = _encoded(group) if len(group) >= seg.DIRECT_ROWS else None
            if table is None:
                rows += group
            else:
                tables.append((model, table, request_values(group)))
        try:
            self._write_segments(tables, rows)
        except BlobsUnavailable as exc:  # logging goes on in rows; compaction gathers them later
            log.warning("prediction logs written as rows, the artifact store failed: %s", exc)
            self._write("write prediction logs", lambda conn: self._insert_rows(conn, logs))

    def prediction_logs(
        self,
        model: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
        limit: int | None = None,
    ) -> list[PredictionLog]:
        parts, unsegmented = self._window(model, since_ms, until_ms, version, text=True)
        if parts:
            logs = seg.decode_logs(seg.concat(parts), model) + unsegmented
            logs.sort(key=lambda x: x.time_ms)  # stable: each part keeps its order
        else:
            logs = unsegmented
        return logs if limit is None else logs[:limit]

    def prediction_table(
        self,
        model: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
        text: bool = False,
    ) -> pa.Table:
        parts, unsegmented = self._window(model, since_ms, until_ms, version, text=text)
        if unsegmented:
            rows = seg.encode_logs(unsegmented, range(len(unsegmented)))
            parts.append(rows if text else rows.drop_columns(list(seg.TEXT_COLUMNS)))
        return seg.concat(parts)

    def remove_predictions(
        self, *, subject_id: str | None = None, before_ms: int | None = None, dry_run: bool = False
    ) -> RemovedPredictions:
        label_where = _label_where(subject_id, before_ms)
        where = _where(subject_id, before_ms)
        return self._remove(where, label_where, dry_run)

    def delete_prediction_logs(
        self, *, subject_id: str | None = None, before_ms: int | None = None, dry_run: bool = False
    ) -> tuple[int, str]:
        removed = self._remove(_where(subject_id, before_ms), None, dry_run)
        return removed.logs, removed.logs_digest

    def _remove(
        self, where: ColumnElement[bool], label_where: ColumnElement[bool] | None, dry_run: bool
    ) -> RemovedPredictions:
        """Remove matching labels (where given) and logs in one switch, segments rewritten first."""
        if dry_run:
            return self._read(
                "count what would be removed", lambda conn: _removed(conn, where, label_where, False)
            )
        if self._in_batch():
            return self._write("remove prediction logs", lambda conn: _remove_rows(conn, where, label_where))
        self.sweep_prediction_blobs()  # leftovers of crashed writers may hold what is removed
        for _ in range(TRIES):
            try:
                return self._remove_once(where, label_where)
            except Superseded as exc:
                log.info("removing prediction logs: %s; trying again", exc)
        raise StoreBusy("Prediction segments kept changing while logs were removed; run the removal again.")

    def _remove_once(
        self, where: ColumnElement[bool], label_where: ColumnElement[bool] | None
    ) -> RemovedPredictions:
        pl, pp = t.prediction_logs, t.prediction_parts
        held = (
            select(pp.c.segment_id, pp.c.base + pl.c.part_row, pl.c.model)
            .select_from(pl.join(pp, pl.c.part_id == pp.c.id))
            .where(where)
        )
        found = self._read("find segments to rewrite", lambda conn: conn.execute(held).all())
        doomed = keys_of((r[0], r[1]) for r in found)
        model_of = {int(r[0]): r[2] for r in found}
        segments, made = self._rewrites(doomed) if doomed else ([], [])
        new = [m[2] for m in made]

        def switch(conn: Connection) -> RemovedPredictions:
            if keys_of((r[0], r[1]) for r in conn.execute(held)) != doomed:
                raise Superseded("requests to remove moved between segments")
            removed = _removed(conn, where, label_where, True)
            self._switch_rewrites(conn, model_of, segments, made)
            return removed

        try:
            removed = self._write("remove prediction logs", switch)
        except BaseException:
            self._discard(new)
            raise
        self._discard([s.digest for s in segments])
        return removed

    def window_labels(
        self,
        model: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
    ) -> dict[str, str]:
        pl, lb = t.prediction_logs, t.labels
        logged = select(pl.c.id).where(pl.c.model == lb.c.model, pl.c.request_id == lb.c.request_id)
        logged = _in_window(logged, since_ms, until_ms, version)
        query = select(lb.c.request_id, lb.c.label).where(lb.c.model == model, logged.exists())
        return self._read("read labels", lambda conn: dict(raw_rows(conn, query)))

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
        pl, pp = t.prediction_logs, t.prediction_parts
        query = (
            select(*(pl.c[c] for c in _COLUMNS), pp.c.segment_id, pp.c.base + pl.c.part_row)
            .select_from(pl.outerjoin(pp, pl.c.part_id == pp.c.id))
            .where(pl.c.request_id == request_id, pl.c.route != "shadow")
            .order_by(pl.c.id)
            .limit(1)
        )
        for _ in range(TRIES):
            row = self._read("find a prediction", lambda conn: conn.execute(query).first())
            if row is None:
                return None
            if row[-2] is None:
                return PredictionLog(*row[: len(_COLUMNS)])
            try:
                return self._from_segment(row.model, int(row[-2]), int(row[-1]))
            except NotFound:  # its segment was replaced meanwhile: look it up again
                continue
        raise StoreBusy(f"The segment of request {request_id!r:.140} kept changing; look it up again.")

    def _from_segment(self, model: str, segment_id: int, key: int) -> PredictionLog | None:
        import pyarrow.compute as pc

        ps = t.prediction_segments
        query = select(ps.c.id, ps.c.digest, ps.c.start_ms, ps.c.end_ms, ps.c.requests).where(
            ps.c.id == segment_id
        )
        found = self._read("find a prediction segment", lambda conn: conn.execute(query).first())
        if found is None:
            raise NotFound(f"prediction segment {segment_id} was replaced")
        table = self._segment_table(Segment(*found))
        logs = seg.decode_logs(table.filter(pc.equal(table.column("seq"), key)), model)
        return logs[0] if logs else None

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
        logs = self.prediction_logs(model, since_ms=since_ms, until_ms=until_ms, version=version)
        labels = self.window_labels(model, since_ms=since_ms, until_ms=until_ms, version=version)
        return [(x, labels.get(x.request_id)) for x in logs if x.status == 200 and x.route != "shadow"]

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


def _removed(
    conn: Connection, where: ColumnElement[bool], label_where: ColumnElement[bool] | None, apply: bool
) -> RemovedPredictions:
    """Count and digest the matching labels (where given, first: they are found through their
    logs) and logs, and remove them when `apply`."""
    pl = t.prediction_logs
    found: Sequence[Row[str, str, int, int | None]] = []
    if label_where is not None:
        lb = t.labels
        labeled = (  # the version a label belongs to: that of the request it labels
            select(func.min(pl.c.version))
            .where(pl.c.model == lb.c.model, pl.c.request_id == lb.c.request_id, pl.c.route != "shadow")
            .scalar_subquery()
        )
        found = conn.execute(
            select(lb.c.model, lb.c.request_id, lb.c.time_ms, labeled).where(label_where).order_by(lb.c.id)
        ).all()
        if found and apply:
            conn.execute(delete(lb).where(label_where))
    rows = conn.execute(
        select(pl.c.request_id, pl.c.model, pl.c.version, pl.c.route, pl.c.time_ms)
        .where(where)
        .order_by(pl.c.time_ms, pl.c.request_id, pl.c.route)
    ).all()
    if rows and apply:
        conn.execute(delete(pl).where(where))
    labels = [r[:3] for r in found]  # the digest covers the label rows as before, not their version
    versions = _versions(((r[1], r[2]) for r in rows), ((r[0], r[3]) for r in found))
    return RemovedPredictions(len(rows), _digest(rows), len(labels), _digest(labels), versions)


def _versions(
    logs: Iterable[tuple[str, int]], labels: Iterable[tuple[str, int | None]]
) -> tuple[tuple[str, int, int, int], ...]:
    """(model, version, logs, labels) per model version from the (model, version) of each removed
    log and label; labels of no log (version None) name no version."""
    counts: dict[tuple[str, int], list[int]] = {}
    for column, pairs in enumerate((logs, labels)):
        for model, version in pairs:
            if version is not None:
                counts.setdefault((model, version), [0, 0])[column] += 1
    return tuple((model, version, n[0], n[1]) for (model, version), n in sorted(counts.items()))


def _remove_rows(
    conn: Connection, where: ColumnElement[bool], label_where: ColumnElement[bool] | None
) -> RemovedPredictions:
    """The removal inside an open `batch()`, for logs not in a segment: a segment is rewritten
    around a transaction of its own, which a batch cannot hold."""
    pl = t.prediction_logs
    if conn.execute(select(pl.c.id).where(where, pl.c.part_id.is_not(None)).limit(1)).first():
        raise InvalidInput(
            "Some of these prediction logs are held in segments, which are rewritten in "
            "transactions of their own: remove them outside store.batch(), as "
            "plinth.erase_subject does (store.remove_predictions)."
        )
    return _removed(conn, where, label_where, True)


def _dialect_insert(conn: Connection, table: Table) -> PostgresInsert | SqliteInsert:
    """An INSERT into `table` that can upsert on this connection's database."""
    if conn.dialect.name == "postgresql":  # imported only where used: it is slow to import
        from sqlalchemy.dialects.postgresql import insert as postgres_insert

        return postgres_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _digest(rows: Sequence[Sequence[object]]) -> str:
    """sha256 of the rows written one per line, values joined by "|" (what receipts record)."""
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


def _by_model(logs: Sequence[PredictionLog]) -> dict[str, list[PredictionLog]]:
    out: dict[str, list[PredictionLog]] = {}
    for entry in logs:
        out.setdefault(entry.model, []).append(entry)
    return out


def _encoded(logs: list[PredictionLog]) -> pa.Table | None:
    """The logs as a segment table, or None where Arrow cannot hold them (rows hold them as logged)."""
    try:
        return seg.encode_logs(logs, range(len(logs)))
    except Exception as exc:
        log.info("%d prediction logs kept as rows: %s", len(logs), exc)
        return None


def _storable(text: str) -> bool:
    """False for text no database takes (a NUL, a lone surrogate as from an undecodable argument):
    nothing stored can equal it, so a lookup by it finds nothing instead of failing in the driver."""
    return unstorable(text) is None
