"""Checking and listing the hash-chained audit log."""

from __future__ import annotations

from dataclasses import dataclass

from plinth.core.entities import AuditEvent
from plinth.store.audit import GENESIS, event_hash
from plinth.store.base import Store


@dataclass(frozen=True)
class AuditCheck:
    """The outcome of `verify_audit`: how many events were checked and the first bad one."""

    events: int
    ok: bool
    first_bad_seq: int | None = None
    reason: str | None = None


def verify_audit(store: Store) -> AuditCheck:
    """Recompute the chain; name the first event that was edited, or that follows a deleted one."""
    previous_hash, expected_seq = GENESIS, 1
    events = store.audit_events()
    for event in events:
        if event.seq != expected_seq:
            return AuditCheck(
                len(events),
                False,
                expected_seq,
                f"event {expected_seq} is missing (the next one is {event.seq}): it was deleted",
            )
        if event.prev_hash != previous_hash:
            return AuditCheck(
                len(events),
                False,
                event.seq,
                f"event {event.seq} does not follow event {event.seq - 1}: the chain was cut",
            )
        if event.hash != event_hash(previous_hash, _fields(event)):
            return AuditCheck(
                len(events), False, event.seq, f"event {event.seq} was edited after it was written"
            )
        previous_hash, expected_seq = event.hash, expected_seq + 1
    return AuditCheck(len(events), True)


def _fields(event: AuditEvent) -> dict[str, object]:
    return {
        "seq": event.seq,
        "time_ms": event.time_ms,
        "actor": event.actor,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "before": event.before,
        "after": event.after,
    }
