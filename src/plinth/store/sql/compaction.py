"""Segments written from batches of logs and from columns, gathered from logged rows, merged,
and rewritten without removed requests (plinth.store.sql.segments has the order every change
follows).

Merging is tiered: a segment's tier is how many times `MERGE_FANIN` its size in requests is
over `DIRECT_ROWS`; `MERGE_FANIN` small segments of one tier make one of the next, so each
request is rewritten about once per tier, and a model keeps a few segments per tier at most.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select, update

from plinth.core.entities import PredictionLog
from plinth.core.errors import NotFound, StoreBusy
from plinth.store import schema as t
from plinth.store import segments as seg
from plinth.store.sql.segments import (
    LOG_COLUMNS,
    TRIES,
    Segment,
    SqlSegments,
    Superseded,
    execute_many,
    raw_rows,
)

if TYPE_CHECKING:
    import pyarrow as pa

_REQUEST_FIELDS = (
    "request_id",
    "version",
    "route",
    "time_ms",
    "latency_ms",
    "subject_id",
    "status",
    "n_rows",
)
_NEW_ROW = (
    "request_id, model, version, route, time_ms, latency_ms, subject_id, status, n_rows, part_id, part_row"
)


class SqlCompaction(SqlSegments):
    """How requests get into segments, and how segments are merged and rewritten."""

    # writing segments ------------------------------------------------------------------------
    def _segment_direct(self, count: int) -> bool:
        """Whether `count` new requests are written as a segment of their own (else as rows)."""
        return self._blob_source is not None and not self._in_batch() and count >= seg.DIRECT_ROWS

    def _write_segments(
        self,
        tables: Sequence[tuple[str, pa.Table, list[list[Any]] | None]],
        rows: Sequence[PredictionLog] = (),
    ) -> None:
        """New requests in one transaction: each (model, segment table with keys 0..n-1, its
        requests' `_REQUEST_FIELDS` or None to take them from the table) as a segment, a part
        and their rows; `rows` as rows holding their JSON."""
        values = [(model, table, given or _request_values(table)) for model, table, given in tables]
        for _ in range(TRIES):  # a sweep (an erasure) may take a blob before it is adopted
            made: list[tuple[str, int]] = []
            try:
                for _model, table, _found in values:
                    made.append(self._store_segment(table))
            except BaseException:
                self._discard([digest for digest, _ in made])
                raise
            if self._switch(
                "write prediction logs", self._add_requests(values, made, rows), [d for d, _ in made]
            ):
                return
        raise StoreBusy("Segment blobs kept being swept while prediction logs were written; log them again.")

    def _add_requests(
        self,
        values: list[tuple[str, pa.Table, list[list[Any]]]],
        made: list[tuple[str, int]],
        rows: Sequence[PredictionLog],
    ) -> Callable[[Connection], None]:
        """The switch of new requests: each stored segment with its part and a row per request,
        and the other logs as rows."""

        def switch(conn: Connection) -> None:
            for (model, table, found), (digest, size) in zip(values, made, strict=True):
                self._adopt(conn, digest)
                part = self._add_part(conn, self._add_segment(conn, model, table, digest, size), 0)
                self._insert_requests(conn, model, part, found)
            if rows:
                self._insert_rows(conn, rows)

        return switch

    def _insert_requests(self, conn: Connection, model: str, part: int, values: list[list[Any]]) -> None:
        """Inside a switch: a row per new request of a part (its inputs and outputs in the segment)."""
        rid, version, route, time_ms, latency, subject, status, n_rows = values
        rows = zip(
            rid, repeat(model), version, route, time_ms, latency, subject, status, n_rows,
            repeat(part), range(len(rid)),
        )  # fmt: skip
        marks = ", ".join([self._placeholder] * 11)
        execute_many(conn, f"INSERT INTO prediction_logs ({_NEW_ROW}) VALUES ({marks})", rows)

    def _insert_rows(self, conn: Connection, logs: Sequence[PredictionLog]) -> None:
        """Logs as rows holding their JSON (compaction moves them into a segment later)."""
        rows = [tuple(getattr(x, c) for c in LOG_COLUMNS) for x in logs]
        marks = ", ".join([self._placeholder] * len(LOG_COLUMNS))
        execute_many(conn, f"INSERT INTO prediction_logs ({', '.join(LOG_COLUMNS)}) VALUES ({marks})", rows)

    def write_prediction_columns(self, model: str, tables: Sequence[pa.Table]) -> int:
        tables = [table for table in tables if table.num_rows]
        if self._blob_source is None or self._in_batch():
            logs = [entry for table in tables for entry in seg.decode_logs(table, model)]
            if logs:
                self._write("write prediction logs", lambda conn: self._insert_rows(conn, logs))
            return len(logs)
        found = [(model, table, _request_values(table)) for table in tables]
        if found:
            self._write_segments(found)
        return sum(len(values[0]) for _, _, values in found)

    # compaction ------------------------------------------------------------------------------
    def compact_prediction_logs(self, model: str, *, force: bool = False) -> int:
        if self._blob_source is None or self._in_batch():
            return 0
        moved = 0
        while self._unsegmented(model, seg.COMPACT_ROWS) >= (1 if force else seg.COMPACT_ROWS):
            gathered = self._gather(model)
            if not gathered:
                break
            moved += gathered
        while chosen := _mergeable(self._small_segments(model), force):
            if not self._merge(model, chosen):
                break
        return moved

    def _unsegmented(self, model: str, at_most: int) -> int:
        pl = t.prediction_logs
        inner = select(pl.c.id).where(pl.c.model == model, pl.c.part_id.is_(None)).limit(at_most).subquery()
        query = select(func.count()).select_from(inner)
        return int(self._read("count logs to compact", lambda conn: conn.execute(query).scalar()) or 0)

    def _gather(self, model: str) -> int:
        """Move the first-written requests of `model` held as rows into a new segment."""
        pl = t.prediction_logs
        query = (
            select(pl.c.id, *(pl.c[c] for c in LOG_COLUMNS))
            .where(pl.c.model == model, pl.c.part_id.is_(None))
            .order_by(pl.c.id)
            .limit(seg.SEGMENT_ROWS)
        )
        found = self._read("read prediction logs to compact", lambda conn: raw_rows(conn, query))
        if not found:
            return 0
        found.sort(key=lambda r: (r[5], r[0]))  # by time, then id
        first, last = min(r[0] for r in found), max(r[0] for r in found)
        table = seg.encode_logs([PredictionLog(*r[1:]) for r in found], [r[0] - first for r in found])
        digest, size = self._store_segment(table)

        def switch(conn: Connection) -> None:
            self._adopt(conn, digest)
            part = self._add_part(conn, self._add_segment(conn, model, table, digest, size), 0)
            moved = conn.execute(
                update(pl)
                .where(pl.c.model == model, pl.c.part_id.is_(None), pl.c.id.between(first, last))
                .values(part_id=part, part_row=pl.c.id - first, inputs=None, outputs=None)
            ).rowcount
            if moved != len(found):  # rows removed, or written late, since they were read
                raise Superseded(f"{moved} of {len(found)} prediction logs of {model!r} were still to move")

        return len(found) if self._switch("compact prediction logs", switch, [digest]) else 0

    def _small_segments(self, model: str) -> list[Segment]:
        ps = t.prediction_segments
        query = (
            select(ps.c.id, ps.c.digest, ps.c.start_ms, ps.c.end_ms, ps.c.requests)
            .where(ps.c.model == model, ps.c.requests < seg.SMALL_SEGMENT)
            .order_by(ps.c.start_ms, ps.c.id)
        )
        return self._read("list prediction segments", lambda conn: [Segment(*r) for r in conn.execute(query)])

    def _merge(self, model: str, chosen: list[Segment]) -> bool:
        """Merge segments of `model` into one; False when they changed meanwhile."""
        try:
            tables = [self._segment_table(s) for s in chosen]
        except NotFound:  # replaced meanwhile: the next compaction looks again
            return False
        shifts, tables = _renumbered(tables)
        table = seg.concat(tables)
        digest, size = self._store_segment(table)
        pp = t.prediction_parts

        def switch(conn: Connection) -> None:
            self._adopt(conn, digest)
            segment_id = self._add_segment(conn, model, table, digest, size)
            for old, shift in zip(chosen, shifts, strict=True):
                conn.execute(
                    update(pp)
                    .where(pp.c.segment_id == old.id)
                    .values(segment_id=segment_id, base=pp.c.base + shift)
                )
            self._drop(conn, chosen)

        merged = self._switch("merge prediction segments", switch, [digest])
        if merged:
            self._discard([s.digest for s in chosen])
        return merged

    # rewriting segments that hold removed requests --------------------------------------------
    def _rewrites(
        self, doomed: dict[int, set[int]]
    ) -> tuple[list[Segment], list[tuple[Segment, pa.Table, str, int]]]:
        """For each segment holding doomed requests (segment id -> their keys): the segment, and
        its rewrite without them (stored as a new blob), unless nothing of it is left."""
        ps = t.prediction_segments
        query = select(ps.c.id, ps.c.digest, ps.c.start_ms, ps.c.end_ms, ps.c.requests).where(
            ps.c.id.in_(list(doomed))
        )
        segments = self._read(
            "list prediction segments", lambda conn: [Segment(*r) for r in conn.execute(query)]
        )
        if len(segments) != len(doomed):
            raise Superseded("a segment holding removed requests was replaced")
        made: list[tuple[Segment, pa.Table, str, int]] = []
        try:
            for old in segments:
                table = self._without(old, doomed[old.id])
                if table.num_rows:
                    made.append((old, table, *self._store_segment(table)))
        except NotFound as exc:
            self._discard([m[2] for m in made])
            raise Superseded("a segment holding removed requests was replaced") from exc
        except BaseException:
            self._discard([m[2] for m in made])
            raise
        return segments, made

    def _without(self, segment: Segment, keys: set[int]) -> pa.Table:
        import pyarrow as pa
        import pyarrow.compute as pc

        table = self._segment_table(segment)
        gone = pc.is_in(table.column("seq"), value_set=pa.array(sorted(keys), pa.int64()))
        return table.filter(pc.invert(gone))

    def _switch_rewrites(
        self,
        conn: Connection,
        model_of: dict[int, str],
        segments: list[Segment],
        made: list[tuple[Segment, pa.Table, str, int]],
    ) -> None:
        """Inside a switch (after the removed rows went): the rewrites replace their segments
        (taking over their parts, empty ones included), and the emptied segments go."""
        pp = t.prediction_parts
        for old, table, digest, size in made:
            self._adopt(conn, digest)
            segment_id = self._add_segment(conn, model_of[old.id], table, digest, size)
            conn.execute(update(pp).where(pp.c.segment_id == old.id).values(segment_id=segment_id))
        self._drop(conn, segments)


def _mergeable(small: list[Segment], force: bool) -> list[Segment]:
    """The oldest `MERGE_FANIN` small segments of the lowest tier that has as many (`force`: every
    small segment, when there are two); none when no tier is full."""
    if force:
        return small[: max(seg.MERGE_FANIN, 2)] if len(small) > 1 else []
    tiers: dict[int, list[Segment]] = {}
    for s in small:
        tier = (
            int(math.log(max(s.requests, 1) / seg.DIRECT_ROWS, seg.MERGE_FANIN))
            if s.requests > seg.DIRECT_ROWS
            else 0
        )
        tiers.setdefault(tier, []).append(s)
    for tier in sorted(tiers):
        if len(tiers[tier]) >= seg.MERGE_FANIN:
            return tiers[tier][: seg.MERGE_FANIN]
    return []


def request_values(logs: Sequence[PredictionLog]) -> list[list[Any]]:
    """The `_REQUEST_FIELDS` of logs, one list per name."""
    columns = dict(zip(PredictionLog._fields, zip(*logs, strict=True), strict=True))
    return [list(columns[name]) for name in _REQUEST_FIELDS]


def _request_values(table: pa.Table) -> list[list[Any]]:
    """The request columns of a segment table's requests, one list per `_REQUEST_FIELDS` name."""
    firsts = table.filter(_first_rows(table))
    return [firsts.column(n).to_pylist() for n in _REQUEST_FIELDS]


def _first_rows(table: pa.Table) -> pa.ChunkedArray:
    import pyarrow.compute as pc

    return pc.equal(table.column("row"), 0)


def _renumbered(tables: list[pa.Table]) -> tuple[list[int], list[pa.Table]]:
    """Tables whose keys no longer collide: each table's keys shifted past the previous ones'."""
    import pyarrow as pa
    import pyarrow.compute as pc

    shifts, out, base = [], [], 0
    for table in tables:
        shifts.append(base)
        keys = table.column("seq")
        index = table.schema.get_field_index("seq")
        out.append(table.set_column(index, "seq", pc.add(keys, pa.scalar(base, pa.int64()))))
        base += int(pc.max(keys).as_py() or 0) + 1
    return shifts, out
