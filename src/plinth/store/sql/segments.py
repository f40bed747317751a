"""Prediction segments of `SqlStore`: the artifact store they live in, their blobs' life cycle,
and window reads that see segments and logged rows as one.

Each request has a row in `prediction_logs` (lookups, counts, labels join by it). Its inputs
and outputs are in a segment (plinth.store.segments: one Arrow IPC blob each, in the artifact
store): a large batch of logs is written as a segment of its own, a small one as JSON in the
rows, which compaction (plinth.store.sql.compaction) later gathers into a segment. A row in a
segment points at its part (`part_id`, `part_row`): the requests written together, which a
segment holds at some offset; merging or rewriting segments moves parts, not rows.

Every change of segments follows one order, so a crash anywhere leaves no copy of a removed
request reachable and nothing half-written:

1. the new blob's digest is recorded as "writing" (committed) before its bytes are stored;
2. one transaction switches: the "writing" record goes, the segment row comes, the parts (or
   new requests) point at it, replaced segments go and their blobs are recorded as "dropped";
3. the dropped blobs are deleted, then their records.

A record left behind by a crash names a blob no segment refers to: `sweep_prediction_blobs`
(run by every erasure and by `plinth gc`) deletes it. Sweeping a "writing" record of a writer
still at work makes that writer's switch fail, and the writer deletes its blob itself.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, insert, select, update

from plinth.core.entities import PredictionLog
from plinth.core.errors import ConfigError, NotFound, PlinthError, StoreBusy, StoreError
from plinth.core.ids import now_ms
from plinth.store import schema as t
from plinth.store import segments as seg
from plinth.store.sql.base import SqlBase

if TYPE_CHECKING:
    import pyarrow as pa

    from plinth.store.blobs import BlobStore

log = logging.getLogger("plinth.store")

TRIES = 5
"""Attempts of a read or a write that a concurrent switch of segments made stale."""
READERS = 4
"""Segments read at once by one window read."""
LOG_COLUMNS = (
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


class BlobsUnavailable(StoreError):
    """A segment's blob could not be stored (the artifact store failed; the database did not)."""


class Superseded(Exception):
    """A concurrent switch changed what a rewrite was built from; it is built again."""


@dataclass(frozen=True)
class Segment:
    """A segment row: id, blob digest, time range and size in requests."""

    id: int
    digest: str
    start_ms: int
    end_ms: int
    requests: int


class SqlSegments(SqlBase):
    """Prediction segments over `SqlBase`: the artifact store they live in, and their life cycle.

    Args:
        url, actor, audit_key: as for `SqlBase`.
        blobs: the artifact store segments are written to, or a function opening it on first use;
            None keeps every request as a JSON row (nothing is compacted; segments written by
            others cannot be read).
    """

    def __init__(
        self,
        url: str,
        *,
        blobs: BlobStore | Callable[[], BlobStore] | None = None,
        **options: Any,
    ) -> None:
        self._blob_source = blobs
        super().__init__(url, **options)

    # the artifact store ---------------------------------------------------------------------
    def _blobs(self) -> BlobStore:
        from plinth.store.blobs import BlobStore

        source = self._blob_source
        if source is None:
            raise ConfigError(
                "This metadata store was opened without its artifact store, which holds prediction "
                "segments; open it with plinth.store.open.open_store(settings), or pass blobs=."
            )
        if not isinstance(source, BlobStore):
            source = self._blob_source = source()
        return source

    def _in_batch(self) -> bool:
        return getattr(self._batch, "conn", None) is not None

    # writing and discarding blobs -------------------------------------------------------------
    def _store_segment(self, table: pa.Table) -> tuple[str, int]:
        """Record the blob as "writing", then store it; returns (digest, size)."""
        data = seg.to_bytes(table)
        digest = hashlib.sha256(data).hexdigest()
        j = t.prediction_segment_blobs
        self._write(
            "record a segment blob",
            lambda conn: conn.execute(insert(j).values(digest=digest, state="writing", time_ms=now_ms())),
        )
        try:
            self._blobs().put_bytes(data)
        except (PlinthError, OSError) as exc:
            self._discard([digest])
            raise BlobsUnavailable(str(exc)) from exc
        except BaseException:
            self._discard([digest])
            raise
        return digest, len(data)

    def _discard(self, digests: Sequence[str]) -> None:
        """Delete blobs no segment refers to, then their records; what fails waits for a sweep."""
        if not digests:
            return
        j = t.prediction_segment_blobs
        gone = []
        for digest in digests:
            try:
                self._blobs().delete(digest)
                gone.append(digest)
            except Exception as exc:  # the record stays, so the next sweep deletes it
                log.warning("segment blob %s… not deleted yet (a sweep will): %s", digest[:12], exc)
        if gone:
            self._write(
                "forget deleted segment blobs",
                lambda conn: conn.execute(delete(j).where(j.c.digest.in_(gone))),
            )

    def _switch(self, what: str, fn: Callable[[Connection], Any], made: Sequence[str]) -> bool:
        """Run a switch; on failure the blobs it would have adopted are deleted. False when
        it was superseded (nothing changed), True when it committed."""
        try:
            self._write(what, fn)
        except Superseded as exc:
            log.info("%s: %s; it is done again later", what, exc)
            self._discard(made)
            return False
        except BaseException:
            self._discard(made)
            raise
        return True

    @staticmethod
    def _adopt(conn: Connection, digest: str) -> None:
        """Inside a switch: the blob's "writing" record goes; Superseded when a sweep took it."""
        j = t.prediction_segment_blobs
        gone = conn.execute(delete(j).where(j.c.digest == digest, j.c.state == "writing")).rowcount
        if gone != 1:
            raise Superseded(f"segment blob {digest[:12]}… was swept before it was adopted")

    @staticmethod
    def _drop(conn: Connection, dropped: Sequence[Segment]) -> None:
        """Inside a switch: the segments (and parts left in them) go; their blobs are recorded
        for deletion."""
        ps, pp, j = t.prediction_segments, t.prediction_parts, t.prediction_segment_blobs
        for old in dropped:
            gone = conn.execute(delete(ps).where(ps.c.id == old.id, ps.c.digest == old.digest)).rowcount
            if gone != 1:
                raise Superseded(f"segment {old.id} changed while it was being replaced")
            conn.execute(delete(pp).where(pp.c.segment_id == old.id))
        if dropped:
            conn.execute(
                insert(j), [{"digest": s.digest, "state": "dropped", "time_ms": now_ms()} for s in dropped]
            )

    @staticmethod
    def _add_segment(conn: Connection, model: str, table: pa.Table, digest: str, size: int) -> int:
        """Inside a switch: the segment row of `table`; returns its id."""
        times = table.column("time_ms")
        ps = t.prediction_segments
        row = {
            "model": model,
            "start_ms": int(times[0].as_py()),
            "end_ms": int(times[-1].as_py()),
            "requests": _requests(table),
            "rows": table.num_rows,
            "digest": digest,
            "size": size,
            "created_ms": now_ms(),
        }
        key = conn.execute(insert(ps).values(**row)).inserted_primary_key
        assert key is not None  # an INSERT of one row always has its key
        return int(key[0])

    @staticmethod
    def _add_part(conn: Connection, segment_id: int, base: int) -> int:
        """Inside a switch: a part of a segment, whose rows start at key `base`; returns its id."""
        key = conn.execute(
            insert(t.prediction_parts).values(segment_id=segment_id, base=base)
        ).inserted_primary_key
        assert key is not None  # an INSERT of one row always has its key
        return int(key[0])

    def sweep_prediction_blobs(self, *, min_age_s: float = 0.0) -> list[str]:
        """Delete the segment blobs left behind by crashed writers and interrupted replacements.

        Blobs recorded as dropped are deleted whatever their age; blobs recorded as being written
        once their record is `min_age_s` old (0: all, which makes writers still at work start
        over). Returns the digests deleted.
        """
        j = t.prediction_segment_blobs
        cutoff = now_ms() - int(min_age_s * 1000)

        def claim(conn: Connection) -> list[str]:
            conn.execute(
                update(j).where(j.c.state == "writing", j.c.time_ms <= cutoff).values(state="dropped")
            )
            return [r[0] for r in conn.execute(select(j.c.digest).where(j.c.state == "dropped"))]

        if self._blob_source is None:
            return []
        found = self._write("claim abandoned segment blobs", claim)
        self._discard(found)
        return found

    # reading ---------------------------------------------------------------------------------
    def _window(
        self, model: str, since_ms: int | None, until_ms: int | None, version: int | None, text: bool
    ) -> tuple[list[pa.Table], list[PredictionLog]]:
        """The window's requests: parts of segments as tables, and those not in a segment as logs
        (both oldest first), read from one snapshot of which requests are where."""
        for _ in range(TRIES):
            segments, unsegmented = self._read(
                "read prediction logs", self._snapshot(model, since_ms, until_ms)
            )
            try:
                parts = self._read_segments(segments, since_ms, until_ms, version, text)
            except NotFound:  # replaced (merged, erased) since the snapshot: read again
                continue
            if version is not None:
                unsegmented = [x for x in unsegmented if x.version == version]
            return parts, unsegmented
        raise StoreBusy(f"The segments of {model!r} kept changing while they were read; read again.")

    def _snapshot(
        self, model: str, since_ms: int | None, until_ms: int | None
    ) -> Callable[[Connection], tuple[list[Segment], list[PredictionLog]]]:
        """Segments of the window and its requests not in a segment, as one transaction saw them."""
        ps, pl = t.prediction_segments, t.prediction_logs
        chosen = select(ps.c.id, ps.c.digest, ps.c.start_ms, ps.c.end_ms, ps.c.requests).where(
            ps.c.model == model
        )
        rows = select(*(pl.c[c] for c in LOG_COLUMNS)).where(pl.c.model == model, pl.c.part_id.is_(None))
        if since_ms is not None:
            chosen = chosen.where(ps.c.end_ms >= since_ms)
            rows = rows.where(pl.c.time_ms >= since_ms)
        if until_ms is not None:
            chosen = chosen.where(ps.c.start_ms < until_ms)
            rows = rows.where(pl.c.time_ms < until_ms)
        chosen = chosen.order_by(ps.c.start_ms, ps.c.id)
        rows = rows.order_by(pl.c.time_ms, pl.c.id)

        def fetch(conn: Connection) -> tuple[list[Segment], list[PredictionLog]]:
            if not self._sqlite:  # segments and rows from one snapshot, whatever compaction does
                conn.execution_options(isolation_level="REPEATABLE READ")
            segments = [Segment(*r) for r in conn.execute(chosen)]
            return segments, [PredictionLog(*r) for r in raw_rows(conn, rows)]

        return fetch

    def _read_segments(
        self,
        segments: list[Segment],
        since_ms: int | None,
        until_ms: int | None,
        version: int | None,
        text: bool,
    ) -> list[pa.Table]:
        """The segments' requests in the window, read side by side (hashing and decompressing
        let other threads run)."""
        if len(segments) < 2:
            return [self._in_window(s, since_ms, until_ms, version, text) for s in segments]
        with ThreadPoolExecutor(min(READERS, len(segments)), thread_name_prefix="plinth-segment") as pool:
            return list(pool.map(lambda s: self._in_window(s, since_ms, until_ms, version, text), segments))

    def _in_window(
        self, segment: Segment, since_ms: int | None, until_ms: int | None, version: int | None, text: bool
    ) -> pa.Table:
        """The requests of one segment in the window (and of one version, where given)."""
        import pyarrow.compute as pc

        table = seg.from_bytes(
            self._blobs().read_bytes(segment.digest, name="a prediction segment"), text=text
        )
        keep = None
        times = table.column("time_ms")
        if since_ms is not None and segment.start_ms < since_ms:
            keep = pc.greater_equal(times, since_ms)
        if until_ms is not None and segment.end_ms >= until_ms:
            below = pc.less(times, until_ms)
            keep = below if keep is None else pc.and_(keep, below)
        if version is not None:
            same = pc.equal(table.column("version"), version)
            keep = same if keep is None else pc.and_(keep, same)
        return table if keep is None else table.filter(keep)

    def _segment_table(self, segment: Segment) -> pa.Table:
        return seg.from_bytes(
            self._blobs().read_bytes(segment.digest, name="a prediction segment"), text=True
        )


def _requests(table: pa.Table) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(pc.equal(table.column("row"), 0)).as_py() or 0)


def raw_rows(conn: Connection, query: Any) -> list[tuple[Any, ...]]:
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


def execute_many(conn: Connection, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """Run one statement over many rows through the driver's cursor (no per-row overhead)."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, list(rows))
    finally:
        cursor.close()


def keys_of(rows: Iterable[tuple[Any, Any]]) -> dict[int, set[int]]:
    """(segment id, key) pairs as segment id -> keys."""
    out: dict[int, set[int]] = {}
    for segment_id, key in rows:
        out.setdefault(int(segment_id), set()).add(int(key))
    return out
