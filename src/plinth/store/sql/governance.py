"""SqlStore's governance methods: the audit log (recorded, read, checked), and scrubbing after erasures."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, PoolProxiedConnection, Row, and_, func, or_, select, text

from plinth.core import entities as e
from plinth.core.audit import AuditAdoption, AuditCheck, AuditHead
from plinth.core.errors import InvalidInput
from plinth.store import schema as t
from plinth.store.engine import own_checkpoints, retrying
from plinth.store.sql.base import SqlBase
from plinth.store.sql.lineage import write_edges

TOKEN_INFIX = " (token "
"""What follows the principal in the actor of an event made with one of its tokens: `alice (token ci)`."""
CHECKPOINT_TRIES = 10
"""Tries at truncating SQLite's write-ahead log, each waiting up to `CHECKPOINT_WAIT_MS` for readers."""
CHECKPOINT_WAIT_MS = 200

POSTGRES_RESIDUE = (
    "PostgreSQL keeps the removed rows as dead tuples in the tables' files until VACUUM (autovacuum) "
    "frees their space and later writes reuse it, and in write-ahead log segments, WAL archives, "
    "replicas and backups until those are recycled or expire."
)
SQLITE_SCRUBBED = (
    "SQLite overwrote the removed rows in the database file (secure_delete) and checkpointed and "
    "truncated its write-ahead log; copies of the database and backups keep them until they expire."
)


class SqlGovernance(SqlBase):
    """Governance methods of SqlStore: audit events and their chain, and scrubbing."""

    def record_audit(
        self,
        action: str,
        entity_type: str,
        entity_id: str,
        before: str | None,
        after: str | None,
        edges: Sequence[e.LineageEdge] = (),
    ) -> None:
        stray = next((g for g in edges if g.dst_type != "receipt"), None)
        if stray is not None:  # the right to audit is not the right to write lineage at large
            raise InvalidInput(
                f"An audit event links only receipts into lineage; the edge into "
                f"({stray.dst_type}, {stray.dst_id}) is not one: record it with add_edges."
            )

        def write(conn: Connection) -> None:
            self._audit(conn, action, entity_type, entity_id, before=before, after=after)
            write_edges(self, conn, edges)

        self._write("record an audit event", write)

    def audit_events(
        self,
        *,
        entity_id: str | None = None,
        actor: str | None = None,
        since_ms: int | None = None,
        limit: int | None = None,
        user: str | None = None,
        actions: Sequence[str] | None = None,
        until_ms: int | None = None,
        newest_first: bool = False,
        offset: int = 0,
    ) -> list[e.AuditEvent]:
        if offset < 0 or (limit is not None and limit < 0):
            raise InvalidInput(f"offset and limit must be 0 or more, got offset {offset} and limit {limit}.")
        ae = t.audit_events
        filters = self._audit_filters(entity_id, actor, user, actions, since_ms, until_ms)
        order = ae.c.seq.desc() if newest_first else ae.c.seq
        query = select(ae).where(*filters).order_by(order)
        if limit is not None or offset:
            # the page's numbers first, from the filter's index alone (an actor and its tokens are
            # two ranges of it, merged and sorted as numbers), then only those events are read
            page = select(ae.c.seq).where(*filters).order_by(order).limit(limit).offset(offset or None)
            query = select(ae).where(ae.c.seq.in_(page.scalar_subquery())).order_by(order)

        def fetch(conn: Connection) -> list[e.AuditEvent]:
            return [
                e.AuditEvent(
                    r.seq,
                    r.time_ms,
                    r.actor,
                    r.action,
                    r.entity_type,
                    r.entity_id,
                    r.before,
                    r.after,
                    r.prev_hash,
                    r.hash,
                )
                for r in conn.execute(query)
            ]

        return self._read("read the audit log", fetch)

    def count_audit_events(
        self,
        *,
        entity_id: str | None = None,
        actor: str | None = None,
        user: str | None = None,
        actions: Sequence[str] | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> int:
        filters = self._audit_filters(entity_id, actor, user, actions, since_ms, until_ms)
        query = select(func.count()).select_from(t.audit_events).where(*filters)
        return self._read("count audit events", lambda conn: int(conn.execute(query).scalar() or 0))

    def audit_actions(self) -> list[str]:
        # one seek of ix_audit_action per action, not a scan of the log (a DISTINCT reads it all)
        query = text(
            "WITH RECURSIVE found(action) AS ("
            " SELECT MIN(action) FROM audit_events"
            " UNION ALL"
            " SELECT (SELECT MIN(action) FROM audit_events WHERE action > found.action)"
            " FROM found WHERE found.action IS NOT NULL"
            ") SELECT action FROM found WHERE action IS NOT NULL"
        )
        return self._read("list the audit log's actions", lambda conn: sorted(conn.scalars(query)))

    def _audit_filters(
        self,
        entity_id: str | None,
        actor: str | None,
        user: str | None,
        actions: Sequence[str] | None,
        since_ms: int | None,
        until_ms: int | None,
    ) -> list[ColumnElement[bool]]:
        """The WHERE terms of an audit query, one per filter given."""
        ae = t.audit_events
        filters: list[ColumnElement[bool]] = []
        if entity_id is not None:
            filters.append(ae.c.entity_id == entity_id)
        if actor is not None:
            filters.append(ae.c.actor == actor)
        if user is not None:
            filters.append(or_(ae.c.actor == user, self._token_actor(user)))
        if actions is not None:
            filters.append(ae.c.action.in_(list(actions)))
        if since_ms is not None:
            filters.append(ae.c.time_ms >= since_ms)
        if until_ms is not None:
            filters.append(ae.c.time_ms <= until_ms)
        return filters

    def _token_actor(self, user: str) -> ColumnElement[bool]:
        """Whether the actor is `user` with one of its tokens (`alice (token ci)`), case-sensitive.

        SQLite's LIKE ignores case, so there it is the range of texts that start with the prefix,
        exact under SQLite's binary collation and a range of `ix_audit_actor`; PostgreSQL's LIKE
        keeps case, and the index's pattern operator class serves it whatever the collation."""
        prefix = f"{user}{TOKEN_INFIX}"
        actor = t.audit_events.c.actor
        if self._sqlite:  # the prefix ends in a space: the next text after all that start with it
            return and_(actor >= prefix, actor < prefix[:-1] + chr(ord(prefix[-1]) + 1))
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return actor.like(pattern + "%", escape="\\")

    def verify_audit(self, anchor: AuditHead | None = None) -> AuditCheck:
        rows, head = self._read_chain()
        return self._chain.check(rows, head, anchor)

    def adopt_audit(self) -> AuditAdoption:
        event = self._event("audit.adopt", "audit_log", "")
        return self._write("adopt the audit log", lambda conn: self._chain.adopt(conn, event))

    def _read_chain(self) -> tuple[list[Row[Any]], Row[Any] | None]:
        self.settle()

        def attempt() -> tuple[list[Row[Any]], Row[Any] | None]:
            with self.engine.connect() as conn:
                if not self._sqlite:  # events and head from one snapshot, as appenders left them
                    conn.execution_options(isolation_level="REPEATABLE READ")
                return self._chain.read(conn)

        return retrying(attempt, "read the audit log")

    def scrub(self) -> str:
        if not self._sqlite:
            return POSTGRES_RESIDUE
        raw = self.engine.raw_connection()
        try:
            with own_checkpoints(self.engine):
                busy = _truncate_wal(raw)
        finally:
            raw.close()
        if busy is None:
            return SQLITE_SCRUBBED
        wal = f"{os.path.basename(self.engine.url.database or 'plinth.db')}-wal"
        seconds = CHECKPOINT_TRIES * CHECKPOINT_WAIT_MS / 1000
        return (
            "SQLite overwrote the removed rows in the database file (secure_delete), but its write-ahead "
            f"log could not be truncated: {busy} for {seconds:g} s. The removed values stay in {wal} "
            "until its next checkpoint; run the same command again once those readers are done "
            "(it removes nothing more and truncates the log)."
        )


def _truncate_wal(raw: PoolProxiedConnection) -> str | None:
    """Checkpoint the write-ahead log into the database and truncate it to nothing; None when done,
    else why not. The usual busy wait is shortened so a reader holding the log delays an erasure
    by seconds, not minutes."""
    cursor = raw.cursor()
    try:
        waited = cursor.execute("PRAGMA busy_timeout").fetchone()[0]
        cursor.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
        try:
            reason = "another connection kept reading or writing the database"
            for _ in range(CHECKPOINT_TRIES):
                try:
                    busy, _frames, _copied = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                except sqlite3.OperationalError as exc:
                    busy, reason = 1, f"the database stayed locked ({exc})"
                if not busy:
                    return None
            return reason
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {int(waited)}")
    finally:
        cursor.close()
