"""The audit chain's hashes, and the rules that tell damage from a wrong key.

What is checked, each finding naming the first event it concerns:

* the plain chain: sequence numbers without gaps ("missing"), each event linked to the one before
  ("cut"), each hash matching its fields ("edited");
* the ends: the head against the newest event ("missing tail" when events it names are gone,
  "inserted" for events past it, "rewritten" when the newest differs), a keyed chain without its
  head ("missing head"), and an event with no MAC after one with a MAC ("rewritten");
* with an anchor: the events it names are there and unchanged ("missing tail", "rewritten");
* with the key: each event's MAC ("rewritten": its hash was recomputed without the key), the
  head's ("head") and the anchor's ("anchor").

Events without a MAC at the start of the chain are not damage by themselves: an earlier plinth
wrote them before the store was keyed, and appends never key older events. But someone without
the key can make a keyed chain look like that (strip every MAC and the head, then rewrite at
will), so nothing vouches for them: with nothing else wrong, the check fails as "not keyed",
naming them, until `plinth audit adopt` keys them (`adoptable` says which, and when it may not).

All but the last group need no key. A wrong key makes every MAC fail at once, so when no MAC
verifies (neither the head's, nor any event's, nor the anchor's) and nothing in the other groups
is wrong, the check raises WrongAuditKey instead of reporting damage. When something else is
wrong too, that damage is reported (it holds under any key) and the MACs are left out of it.
The one case this cannot tell from a wrong key is a chain rewritten from its very first event
with the head forged to match: an anchor whose MAC verifies proves the key right and turns it
into a report of damage.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plinth.core.audit import NOT_KEYED, AuditCheck, AuditHead
from plinth.core.errors import AuditTampered, WrongAuditKey

GENESIS = "0" * 64
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
"""The canonical JSON an event is hashed over (what `json.dumps` with these options writes, without
building an encoder per event)."""
_FIELDS = ("seq", "time_ms", "actor", "action", "entity_type", "entity_id", "before", "after")


def event_hash(prev_hash: str, fields: Mapping[str, object]) -> str:
    """sha256 over the previous hash and the canonical JSON of an event's fields."""
    body = _CANONICAL.encode(fields)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def event_mac(key: bytes, digest: str) -> str:
    """HMAC-SHA256 of an event's chain hash under the audit key."""
    return hmac.digest(key, digest.encode(), "sha256").hex()


def head_mac(key: bytes, seq: int, digest: str) -> str:
    """HMAC-SHA256 of the head's sequence number and hash (worded apart from event MACs)."""
    return hmac.digest(key, f"head:{seq}:{digest}".encode(), "sha256").hex()


def same_mac(stored: str | None, expected: str) -> bool:
    """Whether a stored MAC (None when missing) is the expected one, compared in constant time."""
    return stored is not None and hmac.compare_digest(stored, expected)


@dataclass(frozen=True)
class _Finding:
    seq: int
    problem: str
    reason: str


def unkeyed_events(rows: Sequence[Any]) -> tuple[int, int | None]:
    """How many events at the start of the chain carry no MAC, and the first event without a MAC
    that comes after one with a MAC (None when there is none)."""
    leading = next((i for i, row in enumerate(rows) if row.mac is not None), len(rows))
    stray = next((row.seq for row in rows[leading:] if row.mac is None), None)
    return leading, stray


def adoptable(rows: Sequence[Any], head: Any | None) -> tuple[list[Any], tuple[int, str] | tuple[None, None]]:
    """The unkeyed events that `plinth audit adopt` keys (those at the start of the chain, up to the
    first damage to their plain chain), and that damage as (seq, reason), or (None, None).

    Only events at the start of the chain can have been written before the store was keyed;
    an unkeyed event after a keyed one, or keyed events without their head, are damage.

    Raises:
        AuditTampered: the chain holds such damage.
    """
    leading, stray = unkeyed_events(rows)
    refusal = None
    if stray is not None:
        refusal = (
            f"event {stray} carries no keyed hash while events before it do: it was rewritten or "
            "added without the audit key"
        )
    elif head is None and leading < len(rows):
        refusal = (
            "the audit head is missing while events are keyed: it was deleted, and the newest events "
            "may have gone with it"
        )
    if refusal is not None:
        raise AuditTampered(
            f"The audit log cannot be adopted: {refusal}. Adopting keys only the events an earlier "
            "plinth wrote before this store was keyed, which come first in the log; compare it with "
            "a backup or an anchor (`plinth audit verify --anchor PATH_OR_URL`)."
        )
    finding = _plain(rows[:leading])
    if finding is None:
        return list(rows[:leading]), (None, None)
    return [r for r in rows[:leading] if r.seq < finding.seq], (finding.seq, finding.reason)


def check_chain(
    rows: Sequence[Any], head: Any | None, key: bytes | None, anchor: AuditHead | None
) -> AuditCheck:
    """Check events (rows with seq, fields, prev_hash, hash, mac; oldest first) and the head row.

    Raises:
        WrongAuditKey: no MAC verifies under `key` and nothing else is wrong.
    """
    plain = _plain(rows)
    found = [f for f in (plain, _ends(rows, head), _anchored(rows, anchor)) if f is not None]
    note = ""
    if key is not None:
        keyed, macs, verified = _keyed(rows, head, anchor, key)
        if macs and not verified:
            if not found:
                raise WrongAuditKey(_wrong_key(len(rows), anchor))
            note = "; no keyed hash verifies under this audit key either: check PLINTH_AUDIT_KEY"
        else:
            found += keyed
    head_entity = None if head is None else AuditHead(head.seq, head.hash, head.time_ms, head.mac)
    unkeyed = unkeyed_events(rows)[0] if key is not None else 0
    if not found and unkeyed:
        return AuditCheck(len(rows), False, 1, _not_keyed(unkeyed), NOT_KEYED, True, head_entity, unkeyed)
    if not found:
        return AuditCheck(len(rows), True, keyed=key is not None, head=head_entity)
    first = min(found, key=lambda f: f.seq)  # stable: key-free findings come first on a tie
    return AuditCheck(
        len(rows), False, first.seq, first.reason + note, first.problem, key is not None, head_entity, unkeyed
    )


def _plain(rows: Sequence[Any]) -> _Finding | None:
    previous, expected = GENESIS, 1
    for row in rows:
        if row.seq != expected:
            return _Finding(
                expected,
                "missing",
                f"event {expected} is missing (the next one is {row.seq}): it was deleted",
            )
        if row.prev_hash != previous:
            return _Finding(
                row.seq, "cut", f"event {row.seq} does not follow event {row.seq - 1}: the chain was cut"
            )
        if row.hash != event_hash(previous, {f: getattr(row, f) for f in _FIELDS}):
            return _Finding(row.seq, "edited", f"event {row.seq} was edited after it was written")
        previous, expected = row.hash, expected + 1
    return None


def _ends(rows: Sequence[Any], head: Any | None) -> _Finding | None:
    last = rows[-1].seq if rows else 0
    if head is None:
        if any(r.mac is not None for r in rows):
            return _Finding(
                last + 1,
                "missing head",
                "the audit head is missing: it was deleted, and the newest events may have gone with it",
            )
        return None
    if last < head.seq:
        what = f"all {head.seq} events are" if not rows else f"events {last + 1} to {head.seq} are"
        return _Finding(
            last + 1,
            "missing tail",
            f"{what} missing: the newest events were deleted (the audit head records {head.seq})",
        )
    if last > head.seq:
        return _Finding(
            head.seq + 1,
            "inserted",
            f"events {head.seq + 1} to {last} come after the audit head ({head.seq}): "
            "they were added without the audit key",
        )
    if rows[-1].hash != head.hash:
        return _Finding(last, "rewritten", f"event {last} does not match the audit head: it was rewritten")
    stray = unkeyed_events(rows)[1]
    if stray is not None:
        return _Finding(
            stray,
            "rewritten",
            f"event {stray} has no keyed hash while events before it do: it was rewritten or added "
            "without the audit key",
        )
    return None


def _anchored(rows: Sequence[Any], anchor: AuditHead | None) -> _Finding | None:
    if anchor is None:
        return None
    last = rows[-1].seq if rows else 0
    if last < anchor.seq:
        return _Finding(
            last + 1,
            "missing tail",
            f"events {last + 1} to {anchor.seq} are missing: the anchor of {anchor.when} records "
            f"{anchor.seq} events",
        )
    at = next((r for r in rows if r.seq == anchor.seq), None)
    if at is not None and at.hash != anchor.hash:
        return _Finding(
            anchor.seq,
            "rewritten",
            f"event {anchor.seq} differs from the anchor of {anchor.when}: it or an event before it "
            "was rewritten",
        )
    return None  # an event missing at the anchor's place is reported by the plain chain


def _keyed(
    rows: Sequence[Any], head: Any | None, anchor: AuditHead | None, key: bytes
) -> tuple[list[_Finding], int, int]:
    """Findings from the MACs, how many MACs there were, and how many verified."""
    found: list[_Finding] = []
    macs = verified = 0
    for row in rows:
        if row.mac is None:
            continue
        macs += 1
        if same_mac(row.mac, event_mac(key, row.hash)):
            verified += 1
        elif not found:
            found.append(
                _Finding(
                    row.seq,
                    "rewritten",
                    f"event {row.seq} does not match its keyed hash: it was rewritten (its hash "
                    "recomputed) without the audit key",
                )
            )
    if head is not None:
        macs += 1
        if same_mac(head.mac, head_mac(key, head.seq, head.hash)):
            verified += 1
        else:
            found.append(
                _Finding(head.seq, "head", "the audit head was edited: its keyed hash does not match")
            )
    if anchor is not None:
        macs += 1
        if same_mac(anchor.mac, head_mac(key, anchor.seq, anchor.hash)):
            verified += 1
        else:
            found.append(
                _Finding(
                    anchor.seq,
                    "anchor",
                    "the anchor does not verify under this store's audit key: it was edited or "
                    "comes from another store",
                )
            )
    return found, macs, verified


def _not_keyed(count: int) -> str:
    which, its = (
        ("event 1 is", "its MAC was")
        if count == 1
        else (f"{count} events (1 to {count}) are", "their MACs were")
    )
    return (
        f"{which} not keyed: written before this store was keyed, or {its} removed; if this store was "
        "upgraded from an earlier plinth and you trust its log as it is, run `plinth audit adopt` once"
    )


def _wrong_key(events: int, anchor: AuditHead | None) -> str:
    anchored = ", nor the anchor's" if anchor is not None else ""
    return (
        f"The audit key in use is not the one this store's audit log was written with: no keyed hash "
        f"verifies under it (neither the head's, nor any of the {events} events'{anchored}), while the "
        "chain itself is intact. Set PLINTH_AUDIT_KEY to the store's key, or use the PLINTH_HOME whose "
        "audit.key wrote it. Were the key right, the whole chain would have been rewritten: check it "
        "against an anchor (`plinth audit verify --anchor PATH_OR_URL`)."
    )
