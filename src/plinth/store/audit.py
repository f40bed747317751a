"""The hash-chained audit log: each event's hash covers its fields and the previous hash."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import Connection, func, insert, select

from plinth.store.schema import audit_events

GENESIS = "0" * 64
_LAST = select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
_INSERT = insert(audit_events)


def event_hash(prev_hash: str, fields: dict[str, object]) -> str:
    """sha256 over the previous hash and the canonical JSON of an event's fields."""
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def append_event(
    conn: Connection,
    *,
    time_ms: int,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    before: str | None = None,
    after: str | None = None,
) -> None:
    """Append one event inside the caller's write transaction (which serializes writers)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(74110002)")
    last = conn.execute(_LAST).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    fields = {
        "seq": seq,
        "time_ms": time_ms,
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "before": before,
        "after": after,
    }
    conn.execute(_INSERT, {**fields, "prev_hash": prev, "hash": event_hash(prev, fields)})


def count_events(conn: Connection) -> int:
    """Number of audit events stored."""
    return int(conn.execute(select(func.count()).select_from(audit_events)).scalar() or 0)


def append_events(conn: Connection, events: list[dict[str, object]]) -> None:
    """Append many events (each with time_ms, actor, action, entity_type, entity_id, before, after)."""
    if not events:
        return
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(74110002)")
    last = conn.execute(_LAST).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    rows = []
    for event in events:
        fields = {"seq": seq, **event}
        digest = event_hash(prev, fields)
        rows.append({**fields, "prev_hash": prev, "hash": digest})
        seq, prev = seq + 1, digest
    conn.execute(_INSERT, rows)
