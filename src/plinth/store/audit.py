"""The keyed, hash-chained audit log: how events are appended and how the chain is keyed.

Each event's `hash` is sha256 over the previous event's hash and the event's own fields, so an
event edited in place no longer matches its hash. Its `mac` is HMAC-SHA256 of that hash under
the store's audit key (`audit_key.py`), which never lives in the database: a chain rewritten
with recomputed hashes no longer matches its MACs. The one-row `audit_head` table holds the
newest event's sequence number and hash with a MAC over both, upserted in the same transaction
as every append, so deleting the newest events, or all of them, leaves a head naming events that
are gone. Appends continue from the head (or from a newer event), never from below it, so a gap
that was cut stays visible. What the check makes of a chain is in `audit_check.py`.

A store without a head (one upgraded from an earlier plinth, which wrote no MACs) gets one at its
next append: from then on its events are keyed and its head kept, but no append or check ever
keys the events already there. Someone who can write the database but lacks the key can strip
every MAC and the head and rewrite the events at will, and the chain then looks exactly like one
written before keying; so `plinth audit verify` fails on unkeyed events ("not keyed", naming
them) instead of vouching for them. `plinth audit adopt`, run once by someone who trusts the log
as it stands, keys them: it checks their plain hash chain, keys them up to its first damage and
records that as an `audit.adopt` event. It refuses when an unkeyed event follows a keyed one, or
keyed events have lost their head: a store written before keying has unkeyed events only at the
start. A log emptied of every event and its head looks like a fresh store: only an anchor
(`audit_check.py`) tells them apart.

An appender whose key does not verify the head refuses to append (`WrongAuditKey`): everything
that appends to one store must use the same key, and a second key would make the chain
unverifiable for everyone.

Appends ride on most writes, so they are kept cheap, and the lock that serializes appenders is
held briefly: a write transaction of `SqlStore` appends its events last, as it commits, and on
PostgreSQL the lock with the read of the chain's ends go in one round trip (behind the
transaction's own statements, when it left them to go with its commit), the events, the head
and the COMMIT in one more; a transaction that appends more than once reads the chain's ends once;
a head read back exactly as this appender last wrote or verified it is not checked against the
key again.

Where one process makes most of a store's appends (a team server), the chain's end is usually
the one this appender wrote last, so a transaction of its own may skip reading it
(`append(guess=True)`): its statements, the lock, a guard that the head is still the one this
appender wrote, the events and the COMMIT go in one round trip. If another appender got there
first, the guard (or the events' sequence numbers, already taken) fails the transaction before
its COMMIT, which then rolls it back, and `ChainMoved` tells the caller to make it again; the
chain reads its ends then, and guesses again only after a pause that grows while guesses keep
failing, so appenders in several processes fall back to reading. A guess never skips a check:
the head it continues from is the one this appender wrote and keyed, which the guard compares in
full, so a head edited or moved by anyone else fails it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, select
from sqlalchemy.exc import DBAPIError

from plinth.core.audit import AuditAdoption, AuditCheck, AuditHead
from plinth.core.errors import AuditTampered, ConfigError, WrongAuditKey
from plinth.store.audit_check import (
    GENESIS,
    adoptable,
    check_chain,
    event_hash,
    event_mac,
    head_mac,
    same_mac,
)
from plinth.store.engine import driver_cursor, pipeline
from plinth.store.schema import audit_events, audit_head

# Appends go through the driver's cursor: they ride on most writes, and SQLAlchemy's per-statement
# cost is several times the statements' own here.
_TIP = (
    "SELECT 1, seq, hash, mac, time_ms FROM audit_head WHERE id = 1 "
    "UNION ALL SELECT 0, seq, hash, mac, time_ms FROM "
    "(SELECT seq, hash, mac, time_ms FROM audit_events ORDER BY seq DESC LIMIT 1) AS newest"
)
_INSERT = (
    'INSERT INTO audit_events (seq, time_ms, actor, action, entity_type, entity_id, "before", "after", '
    "prev_hash, hash, mac) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
_HEAD_UPSERT = (
    "INSERT INTO audit_head (id, seq, hash, mac, time_ms) VALUES (1, {p}, {p}, {p}, {p}) "
    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac, "
    "time_ms = excluded.time_ms"
)
_LOCK = "SELECT pg_advisory_xact_lock(74110002)"
"""What PostgreSQL's appenders take turns at, held until their transaction ends."""
_HEAD_IS = "SELECT 1 / count(*) FROM audit_head WHERE id = 1 AND seq = %s AND hash = %s AND mac = %s"
"""A guessed append's guard (PostgreSQL): fails its transaction, dividing by zero, unless the
head is still the one given (see the module's docstring)."""
_GUARD_FAILED = "22012"  # division_by_zero: `_HEAD_IS`
_TAKEN = "23505"  # unique_violation: of audit_events' sequence numbers
_EVENTS_KEY = "audit_events_pkey"
GUESS_PAUSE_S = (1.0, 60.0)
"""After a failed guess the chain reads its ends for this long before guessing again, doubling
with each failure in a row up to the second figure."""
_SET_MAC = "UPDATE audit_events SET mac = {p} WHERE seq = {p}"
_CHAIN = select(audit_events).order_by(audit_events.c.seq)
_HEAD = select(audit_head).where(audit_head.c.id == 1)


Send = Callable[[], Callable[[], None] | None]
"""Sends statements of a transaction (`AuditChain.append`'s `first`); returns a check of their
results to run once they are in, or None."""


class ChainMoved(Exception):
    """A guessed append found the chain moved on (see the module's docstring): its transaction
    was rolled back; make it again."""


class _End(NamedTuple):
    """The head, or the newest event: where the chain ends."""

    seq: int
    hash: str
    mac: str | None
    time_ms: int


class AuditChain:
    """Appends to, keys and checks one store's audit chain.

    Args:
        key: the store's audit key; None writes the chain unkeyed (plain hashes, no head), which
            only suits throwaway stores: `open_store` always passes the key.
    """

    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key is not None else None
        self._verified: _End | None = None
        """The newest head this chain wrote or verified: read back unchanged, it needs no new MAC."""
        self._ends: tuple[Any, _End | None, _End | None] | None = None
        """(transaction, head, newest) after this chain's last append: later appends in the same
        transaction, which keeps other appenders out, continue from there without reading."""
        self._last: _End | None = None
        """The head this chain wrote with its newest commit, the chain's end then: what a guessed
        append continues from (None: read the ends)."""
        self._remembering = threading.Lock()
        self._guessing = threading.Lock()
        """Held by the one guessed append in flight: others of this process read the ends."""
        self._pause_s = 0.0
        self._guess_after = 0.0

    def append(
        self,
        conn: Connection,
        events: Sequence[Mapping[str, Any]],
        *,
        commit: bool = False,
        first: Sequence[Send] = (),
        guess: bool = False,
    ) -> None:
        """Append events (each with time_ms, actor, action, entity_type, entity_id, before, after)
        inside the caller's write transaction, which serializes appenders.

        Args:
            commit: the events end the transaction: on PostgreSQL they are sent with its COMMIT,
                so the chain's lock is held for two round trips (its ends read, then the events
                and the commit) and no more. SQLite's transaction is still its caller's to commit.
            first: the transaction's own statements, still to be sent (PostgreSQL): they go ahead
                of the lock, with the transaction's BEGIN when it is still to be sent, in the
                round trip that reads the chain's ends; the checks they return run once their
                results are in, before any event is sent, and may raise to undo the transaction.
            guess: with `commit`, on PostgreSQL: continue from the end this chain wrote last
                without reading it, all in one round trip, where it may (see the module's
                docstring). Only for a transaction its caller can make again, and whose checks
                never refuse: they run after the COMMIT went out.

        Raises:
            WrongAuditKey: the head does not verify under this chain's key.
            AuditTampered: the head was edited (the newest event still verifies under the key).
            ChainMoved: a guess failed; the transaction was rolled back.
        """
        if not events and not first:
            return
        if guess and commit and events and conn.dialect.name == "postgresql":
            last = self._last
            if last is not None and time.monotonic() >= self._guess_after and self._guessing.acquire(False):
                try:
                    self._append_guessed(conn, events, first, last)
                finally:
                    self._guessing.release()
                return
        transaction = conn.get_transaction()
        ends = self._ends
        known = ends is not None and transaction is not None and ends[0] is transaction
        with _cursor(conn, pipelined=True) as (cursor, p, sync):
            checks = [check for send in first if (check := send()) is not None]
            if not events:
                sync()
                for check in checks:
                    check()
                return
            if ends is not None and known:
                head, newest = ends[1], ends[2]
                if checks:
                    sync()
            else:
                if p == "%s":
                    cursor.execute(_LOCK)
                head, newest = _tip(cursor)
            for check in checks:  # their results came back with the chain's ends, or come now
                check()
            if not known and self._key is not None:
                self._check_key(head, newest)
            self._ends = None  # until the rows are in: a failed insert leaves nothing to continue from
            head, newest = self._insert(cursor, p, events, head, newest)
            if commit and conn.dialect.name == "postgresql":  # behind the events: one round trip
                cursor.execute("COMMIT", prepare=False)
        if commit:
            if p == "%s":  # committed with the events: where a later guess may continue from
                self._committed(head, newest)
            return
        if transaction is not None and not conn.in_nested_transaction():  # a savepoint may be undone
            self._ends = (transaction, head, newest)

    def _append_guessed(
        self, conn: Connection, events: Sequence[Mapping[str, Any]], first: Sequence[Send], last: _End
    ) -> None:
        """`append(commit=True)` continuing from `last` without reading the chain's ends."""
        self._ends = None
        try:
            with _cursor(conn, pipelined=True) as (cursor, p, _sync):
                checks = [check for send in first if (check := send()) is not None]
                cursor.execute(_LOCK)
                cursor.execute(_HEAD_IS, (last.seq, last.hash, last.mac))
                head, newest = self._insert(cursor, p, events, last, last)
                cursor.execute("COMMIT", prepare=False)
        except DBAPIError as exc:
            self._last = None
            if _moved(exc.orig):
                self._pause_s = min(max(self._pause_s * 2, GUESS_PAUSE_S[0]), GUESS_PAUSE_S[1])
                self._guess_after = time.monotonic() + self._pause_s
                raise ChainMoved("the audit chain moved on since this process last appended") from exc
            raise
        for check in checks:  # committed: nothing of theirs refuses (see `append`)
            check()
        self._pause_s = 0.0
        self._committed(head, newest)

    def _committed(self, head: _End | None, newest: _End) -> None:
        """Remember the chain's end after a commit, where it is a head this chain wrote: where
        the next guess continues from (a later end than one already remembered, only)."""
        if head is None or head.seq != newest.seq:
            return
        with self._remembering:  # threads commit in turn, but may get here in any order
            last = self._last
            if last is None or head.seq > last.seq:
                self._last = head

    def adopt(self, conn: Connection, event: Mapping[str, Any]) -> AuditAdoption:
        """Key the unkeyed events at the start of the chain as they stand, up to the first damage
        to their plain hash chain, and record that as `event` (its entity_id and after are filled
        in here), inside the caller's write transaction.

        Raises:
            ConfigError: this chain has no key.
            AuditTampered: an unkeyed event follows a keyed one, keyed events lost their head,
                or the head was edited.
            WrongAuditKey: the head does not verify under this chain's key.
        """
        if self._key is None:
            raise ConfigError("The audit log cannot be adopted without the store's audit key.")
        self._ends = None  # adopting rewrites MACs: later appends read the chain's ends afresh
        with _cursor(conn) as (cursor, p, _sync):
            if p == "%s":
                cursor.execute(_LOCK)
            head, newest = _tip(cursor)
            self._check_key(head, newest)
            adopted, damage = adoptable(list(conn.execute(_CHAIN)), head)
            if not adopted:
                return AuditAdoption(0, None, *damage)
            cursor.executemany(_SET_MAC.format(p=p), [(event_mac(self._key, r.hash), r.seq) for r in adopted])
            if head is None and newest is not None:  # a chain from before keying gets its head now
                head = self._set_head(cursor, p, newest.seq, newest.hash, newest.time_ms)
            last = adopted[-1]
            record = {
                **event,
                "entity_id": f"1-{last.seq}",
                "after": json.dumps({"events": len(adopted), "hash": last.hash}),
            }
            _head, end = self._insert(cursor, p, [record], head, newest)
        return AuditAdoption(len(adopted), end.seq, *damage)

    def read(self, conn: Connection) -> tuple[list[Row[Any]], Row[Any] | None]:
        """Every event, oldest first, and the head, as one consistent snapshot of `conn`."""
        return list(conn.execute(_CHAIN)), conn.execute(_HEAD).first()

    def check(self, rows: Sequence[Row[Any]], head: Row[Any] | None, anchor: AuditHead | None) -> AuditCheck:
        """What is wrong with the chain read by `read`, if anything (see `audit_check`)."""
        return check_chain(rows, head, self._key, anchor)

    def _insert(
        self, cursor: Any, p: str, events: Sequence[Mapping[str, Any]], head: _End | None, newest: _End | None
    ) -> tuple[_End | None, _End]:
        """Insert `events` after the chain's end and move the head over them; returns the head
        and the newest event as they are now.

        The head is written when there is one, when the chain is empty, and when the newest event
        is unkeyed (a chain from before keying gets its head now); keyed events whose head was
        deleted stay without one, so the deletion stays visible.
        """
        seq, prev = _continue_from(head, newest)
        rows = []
        for event in events:
            fields = {"seq": seq, "time_ms": event["time_ms"], **{c: _text(event[c]) for c in _TEXT}}
            digest = event_hash(prev, fields)
            mac = None if self._key is None else event_mac(self._key, digest)
            rows.append((*(fields[c] for c in _COLUMNS), prev, digest, mac))
            seq, prev = seq + 1, digest
        if len(rows) == 1:  # executemany costs a pipeline of its own on PostgreSQL
            cursor.execute(_INSERT.format(p=p), rows[0])
        else:
            cursor.executemany(_INSERT.format(p=p), rows)
        last = rows[-1]
        end = _End(int(last[0]), prev, last[-1], int(last[1]))
        if self._key is not None and (head is not None or newest is None or newest.mac is None):
            head = self._set_head(cursor, p, end.seq, prev, end.time_ms)
        return head, end

    def _set_head(self, cursor: Any, p: str, seq: int, digest: str, time_ms: int) -> _End:
        assert self._key is not None
        head = _End(seq, digest, head_mac(self._key, seq, digest), time_ms)
        cursor.execute(_HEAD_UPSERT.format(p=p), head)
        self._verified = head
        return head

    def _check_key(self, head: _End | None, newest: _End | None) -> None:
        assert self._key is not None
        if head is not None and (
            head == self._verified or same_mac(head.mac, head_mac(self._key, head.seq, head.hash))
        ):
            self._verified = head
            return
        newest_ok = (
            newest is not None
            and newest.mac is not None
            and same_mac(newest.mac, event_mac(self._key, newest.hash))
        )
        if head is None and (newest is None or newest.mac is None or newest_ok):
            return
        if head is not None and newest_ok:
            raise AuditTampered(
                f"The audit head (event {head.seq}) was edited: its keyed hash does not match, while the "
                "newest event's does. Nothing more is appended until it is looked into: run "
                "`plinth audit verify` (with --anchor where one was taken)."
            )
        raise WrongAuditKey(
            "The audit log of this store was keyed with another audit key than this process's, so "
            "nothing is appended with this one. Set PLINTH_AUDIT_KEY to the store's key (every process "
            "that writes to one store needs the same key), or use the PLINTH_HOME whose audit.key "
            "wrote it."
        )


_TEXT = ("actor", "action", "entity_type", "entity_id", "before", "after")
_COLUMNS = ("seq", "time_ms", *_TEXT)


def _text(value: Any) -> str | None:
    """Text columns hold text: hashed as stored, so a number given for one still verifies."""
    return value if value is None or isinstance(value, str) else str(value)


@contextmanager
def _cursor(conn: Connection, pipelined: bool = False) -> Iterator[tuple[Any, str, Callable[[], None]]]:
    """The driver's cursor on `conn`, its placeholder, and a call that waits for every statement
    sent so far. Appenders take turns: SQLite's write transaction already makes them; on
    PostgreSQL the caller takes `_LOCK` first.

    `pipelined` sends PostgreSQL the statements together until one's result is read or the wait
    is called (psycopg's pipeline, where libpq has it): the lock with the read of the chain's
    ends, the inserted events with the head. Each statement still runs after the one before, so
    the read sees the lock held.
    """
    with driver_cursor(conn) as cursor:  # errors as SQLAlchemy's: `retrying` tells a lock from bad data
        if conn.dialect.name == "postgresql":
            with pipeline(conn) if pipelined else nullcontext() as pipe:
                yield cursor, "%s", pipe.sync if pipe is not None else _sent
        else:
            yield cursor, "?", _sent


def _moved(error: Any) -> bool:
    """Whether a guessed append's transaction failed for the chain having moved on: its guard
    failed, or its events' sequence numbers were taken."""
    state = getattr(error, "sqlstate", None)
    if state == _GUARD_FAILED:
        return True
    diag = getattr(error, "diag", None)
    return state == _TAKEN and getattr(diag, "constraint_name", None) == _EVENTS_KEY


def _sent() -> None:
    """Nothing to wait for: each statement was answered as it was executed."""


def _tip(cursor: Any) -> tuple[_End | None, _End | None]:
    """The head and the newest event (either may be None), in one statement."""
    head = newest = None
    cursor.execute(_TIP)
    for is_head, *end in cursor.fetchall():
        if is_head:
            head = _End(*end)
        else:
            newest = _End(*end)
    return head, newest


def _continue_from(head: _End | None, newest: _End | None) -> tuple[int, str]:
    """Next sequence number and previous hash: after the head or a newer event, whichever is
    later, so a cut tail leaves a gap and events added past the head stay in the chain."""
    if newest is not None and (head is None or newest.seq > head.seq):
        return newest.seq + 1, newest.hash
    if head is not None:
        return head.seq + 1, head.hash
    return 1, GENESIS
