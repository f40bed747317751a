"""`SqlBase`: what every part of `SqlStore` stands on.

The engine, typed read and write helpers, `batch()`, the audit chain, and the caches of run keys,
metric key ids, experiments and environments with their undo when a transaction rolls back.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Self, TypeVar

from sqlalchemy import Connection, select

from plinth.core import entities as e
from plinth.core.errors import NotFound, PlinthError, RunNotActive, StoreBusy, StoreError
from plinth.core.ids import now_ms
from plinth.core.validation import check_key, param_text
from plinth.store import schema as t
from plinth.store.audit import AuditChain, ChainMoved, Send
from plinth.store.deferral import Deferrals, Deferred
from plinth.store.engine import (
    dispose,
    driver_cursor,
    is_sqlite,
    make_engine,
    refuse_unstorable,
    retrying,
    writing,
)
from plinth.store.migrate import upgrade

T = TypeVar("T")

log = logging.getLogger("plinth.store")


def _nothing(_conn: Connection) -> None:
    """A write transaction's work when all it is for is what it makes first."""


def mapping_digest(values: Mapping[str, Any]) -> str:
    """'N keys sha256:…' over the canonical JSON of a mapping: what an audit event records of it."""
    body = json.dumps(dict(values), sort_keys=True, separators=(",", ":"), default=str)
    return f"{len(values)} keys sha256:{hashlib.sha256(body.encode()).hexdigest()}"


def checked_tags(tags: Mapping[str, str], what: str = "tag") -> dict[str, str]:
    """Tags (or params, with `what`) held to the rules of a run's: keys as `check_key`, values as
    `param_text` (at most MAX_PARAM_VALUE characters of storable text).

    Raises:
        InvalidInput: a key or value breaks them; the message names it.
    """
    return {check_key(k, what): param_text(k, v, what) for k, v in tags.items()}


class SqlBase:
    """The engine, transactions, audit appends and lookup caches of `SqlStore`.

    Args:
        url: SQLAlchemy URL, e.g. `sqlite:///.plinth/plinth.db` or
            `postgresql+psycopg://postgres@127.0.0.1:5432/plinth`.
        actor: who mutations are recorded as in the audit log.
        audit_key: the store's audit key, which keys the audit chain; None leaves it unkeyed.
    """

    def __init__(self, url: str, *, actor: str = "unknown", audit_key: str | None = None) -> None:
        self.url = url
        self.actor = actor
        self._chain = AuditChain(audit_key)
        self.engine = make_engine(url)
        self._sqlite = is_sqlite(self.engine)
        self._placeholder = "?" if self._sqlite else "%s"
        self._run_keys: dict[str, int] = {}
        self._key_ids: dict[str, int] = {}
        self._key_names: dict[int, str] = {}
        self._experiments: dict[str, e.Experiment] = {}
        self._known_envs: set[str] = set()
        self._large_experiments: dict[str, int] = {}  # experiment id -> a run count it is known to reach
        self._walk_shares: dict[tuple[int, tuple[str, ...], bool], tuple[bool, float]] = {}
        """(metric key id, experiment ids, descending) -> (whether a walk of the metric's index checks
        filters first, when that was sampled): `SqlRunSearch._filters_first`."""
        self._lock = threading.Lock()
        self._batch = threading.local()
        self._deferrals = Deferrals()
        upgrade(self.engine)

    def close(self) -> None:
        """Make the writes held back, then dispose of pooled connections."""
        try:
            self.settle()
        except StoreError as exc:  # closing a store whose database is gone still closes it
            log.warning("Writes held back were lost as the store closed: %s", exc)
        dispose(self.engine)

    def acting_as(self, actor: str) -> Self:
        """This store recording `actor` as who made its mutations (in audit events, as a model
        version's creator...): a shallow copy sharing the engine, caches and audit chain, cheap
        enough to make per request. Close the store it was made from, never the copy."""
        acting = copy.copy(self)
        acting.actor = actor
        return acting

    # transactions ----------------------------------------------------------------------------
    def _write(self, what: str, fn: Callable[[Connection], T]) -> T:
        """`fn` in a write transaction (the open `batch()`'s, if any), retried while locked."""
        shared: Connection | None = getattr(self._batch, "conn", None)
        if shared is not None:  # inside `batch()`: join its transaction
            return fn(shared)

        def attempt(guess: bool = True) -> T:
            with self._transaction(guess=guess) as conn:
                return fn(conn)

        try:
            try:
                return retrying(attempt, what)
            except ChainMoved:  # rolled back; made again, reading the audit chain's ends
                return retrying(functools.partial(attempt, False), what)
        except StoreError as exc:
            if isinstance(exc, StoreBusy) or not self._make_deferred_alone():
                raise
            return retrying(attempt, what)  # without the held-back write the database refused

    def _read(self, what: str, fn: Callable[[Connection], T]) -> T:
        """`fn` on a fresh connection, retried while the database is locked."""

        self.settle()

        def attempt() -> T:
            with self.engine.connect() as conn:
                found = fn(conn)
                if conn.in_transaction():
                    conn.commit()  # not rolled back: psycopg forgets its prepared statements on ROLLBACK
                return found

        return retrying(attempt, what)

    def batch_is_atomic(self) -> bool:
        """True unless this thread has a `batch()` open, which a new one would join."""
        return getattr(self._batch, "conn", None) is None

    @contextlib.contextmanager
    def batch(self, *, independent: bool = False) -> Iterator[None]:
        """Make every write of this thread inside the block one transaction (one commit).

        Args:
            independent: no write in the block reads what another one in it writes (concurrent
                requests made together, as a server's group commit does): each may then leave
                its statements to go with the commit (`_send_at_commit`), as a write of its own
                does. Ignored inside another `batch()`.
        """
        if getattr(self._batch, "conn", None) is not None:
            yield
            return
        with self._transaction() as conn:
            self._batch.conn = conn
            self._batch.independent = independent
            try:
                yield
            finally:
                self._batch.conn = None
                self._batch.independent = False

    @contextlib.contextmanager
    def _transaction(self, deferred: bool = True, *, guess: bool = False) -> Iterator[Connection]:
        """A write transaction; the cache entries added while it is open go if it rolls back.

        It first makes the writes held back (`_hold_back`), unless `deferred` is False or it is
        inside another on this thread.

        With `guess` (a transaction its caller makes again on `ChainMoved`), its audit events may
        continue from the chain's end as this process last wrote it, unread (`AuditChain.append`),
        unless a statement left to go with its commit has a check that may refuse it.

        Its audit events (`_append`) join the chain last, with its commit, so the chain's lock is
        held for the commit alone, not for the writes before it.

        The caches of run keys, metric key ids, experiments and environments hold rows this
        transaction may have created; kept after a rollback, they would name rows that do not exist.
        """
        nested = getattr(self._batch, "events", None) is not None
        taking = deferred and not nested and bool(self._deferrals)
        if taking:  # after any transaction still making them (see `Deferrals`)
            self._deferrals.turn.acquire()
        taken = self._deferrals.take() if taking else []
        outer = (
            getattr(self._batch, "undo", None),
            getattr(self._batch, "publish", None),
            getattr(self._batch, "events", None),
            getattr(self._batch, "sends", None),
            getattr(self._batch, "refusing", None),
        )
        undo: list[Callable[[], object]] = []
        publish: list[Callable[[], object]] = []
        events: list[dict[str, object]] = []
        sends: list[Send] = []
        refusing: list[Send] = []  # those of `sends` whose checks may refuse the transaction
        (
            self._batch.undo,
            self._batch.publish,
            self._batch.events,
            self._batch.sends,
            self._batch.refusing,
        ) = (undo, publish, events, sends, refusing)
        try:
            with writing(self.engine) as conn:
                for item in taken:
                    item.write(conn)
                yield conn
                self._before_commit(conn)
                self._chain.append(conn, events, commit=True, first=sends, guess=guess and not refusing)
        except BaseException:
            for forget in undo:
                forget()
            self._deferrals.put_back(taken)
            raise
        else:  # committed: other threads may now use what it made
            self._deferrals.done(taken)
            for apply in publish:
                apply()
        finally:
            (
                self._batch.undo,
                self._batch.publish,
                self._batch.events,
                self._batch.sends,
                self._batch.refusing,
            ) = outer
            if taking:
                self._deferrals.turn.release()

    # held-back writes (see `deferral`) ---------------------------------------------------------
    def _hold_back(self, what: str, write: Callable[[Connection], None]) -> None:
        """Have `write` made by this process's next write transaction on this store, or alone
        within `DEFER_S`; reads through this store make it first. It must not fail for its data:
        check that first (a refusal drops it, with a warning). Inside `batch()` it joins the
        batch's transaction at once."""
        shared: Connection | None = getattr(self._batch, "conn", None)
        if shared is not None:
            write(shared)
            return
        self._deferrals.hold(Deferred(what, write), self.settle)

    def settle(self) -> None:
        """Make the writes this store holds back, if any, unless this thread is inside a write
        transaction (which has made them, or waits for the one making them)."""
        if not self._deferrals.waiting() or getattr(self._batch, "events", None) is not None:
            return
        with self._deferrals.turn:  # once a transaction still making them is done
            if self._deferrals.pending():
                self._write("make held-back writes", _nothing)

    def _make_deferred_alone(self) -> bool:
        """Make each held-back write in a transaction of its own, dropping (with a warning) those
        the database refuses; False when none was waiting. Called when a write that made them
        failed for other than a busy database: one of them may be why."""
        with self._deferrals.turn:
            items = self._deferrals.take()
            for i, item in enumerate(items):

                def attempt(item: Deferred = item) -> None:
                    with self._transaction(deferred=False) as conn:
                        item.write(conn)

                try:
                    retrying(attempt, item.what)
                except StoreBusy:
                    self._deferrals.put_back(items[i:])
                    raise
                except PlinthError as exc:
                    log.warning("Could not %s; it is given up: %s", item.what, exc)
                    self._deferrals.drop(item)
                else:
                    self._deferrals.done([item])
        return bool(items)

    def _send_at_commit(
        self, conn: Connection, send: Callable[[Any], Callable[[], None] | None], *, refuses: bool = False
    ) -> bool:
        """Leave statements of this thread's write transaction to be sent with its commit, if it
        is its write's own (no `batch()` open, or an independent one) and on PostgreSQL: ahead of
        the audit chain's lock, in the round trip that reads the chain's ends
        (`AuditChain.append`), not in round trips of their own. False: the caller sends them now.
        Nothing in the transaction may read what they write before it commits.

        `send` gets a driver cursor of its own on `conn`, open until the check it returns (if
        any) has run once the results are in; a check may raise to undo the transaction only
        where `refuses` says so (its results then come in before the commit goes out)."""
        sends: list[Send] | None = getattr(self._batch, "sends", None)
        if self._sqlite or sends is None:
            return False
        if getattr(self._batch, "conn", None) is not None and not getattr(self._batch, "independent", False):
            return False

        def sent() -> Callable[[], None]:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            check = send(cursor)

            def checked() -> None:
                try:
                    if check is not None:
                        check()
                finally:
                    cursor.close()

            return checked

        sends.append(sent)
        if refuses:
            self._batch.refusing.append(sent)
        return True

    def _before_commit(self, conn: Connection) -> None:
        """Send what this thread's write transaction sends in round trips of its own, once its
        writes are made and before the round trip of its commit (`SqlMetrics` copies points in)."""

    def _publish(self, apply: Callable[[], object]) -> None:
        """Add a cache entry naming rows this thread's open write transaction may have made once
        it commits (at once outside one): another thread (a server's other requests) must not
        use a row it cannot see yet."""
        pending: list[Callable[[], object]] | None = getattr(self._batch, "publish", None)
        if pending is None:
            apply()
        else:
            pending.append(apply)

    def _remember(self, forget: Callable[[], object]) -> None:
        """Note how to drop a cache entry, should this thread's open write transaction roll back."""
        undo: list[Callable[[], object]] | None = getattr(self._batch, "undo", None)
        if undo is not None:
            undo.append(forget)

    # audit -----------------------------------------------------------------------------------
    def _audit(
        self,
        conn: Connection,
        action: str,
        kind: str,
        entity_id: str,
        *,
        before: str | None = None,
        after: str | None = None,
    ) -> None:
        self._append(conn, [self._event(action, kind, entity_id, before=before, after=after)])

    def _append(self, conn: Connection, events: Sequence[dict[str, object]]) -> None:
        """Add audit events to this thread's open write transaction, which appends them to the
        chain as it commits (at once outside one, on `conn`)."""
        pending: list[dict[str, object]] | None = getattr(self._batch, "events", None)
        if pending is None:
            self._chain.append(conn, events)
        else:
            pending.extend(events)

    def _event(
        self, action: str, kind: str, entity_id: str, *, before: str | None = None, after: str | None = None
    ) -> dict[str, object]:
        return {
            "time_ms": now_ms(),
            "actor": self.actor,
            "action": action,
            "entity_type": kind,
            "entity_id": entity_id,
            "before": before,
            "after": after,
        }

    def _insert_ignore(
        self, conn: Connection, table: str, cols: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        marks = ", ".join([self._placeholder] * len(cols))
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks}) ON CONFLICT DO NOTHING"
        conn.exec_driver_sql(sql, rows if len(rows) > 1 else rows[0])

    # cached lookups --------------------------------------------------------------------------
    def _run_key(self, conn: Connection, run_id: str) -> int:
        key = self._run_keys.get(run_id)
        if key is None:
            key = conn.execute(select(t.runs.c.key).where(t.runs.c.id == run_id)).scalar()
            if key is None:
                raise NotFound(f"No run with id {run_id!r}; list runs with `plinth runs list`.")
            self._run_keys[run_id] = key
            self._remember(functools.partial(self._run_keys.pop, run_id, None))
        return key

    def _key_id(self, conn: Connection | None, name: str, create: bool) -> int:
        kid = self._key_ids.get(name)
        if kid is not None:
            return kid
        if conn is None:
            return self._read("look up a metric", lambda c: self._key_id(c, name, create))
        kid = conn.execute(select(t.metric_keys.c.id).where(t.metric_keys.c.name == name)).scalar()
        if kid is None and create:
            conn.exec_driver_sql(
                f"INSERT INTO metric_keys (name) VALUES ({self._placeholder}) ON CONFLICT (name) DO NOTHING",
                (name,),
            )
            kid = conn.execute(select(t.metric_keys.c.id).where(t.metric_keys.c.name == name)).scalar()
        if kid is None:
            return -1
        self._publish(functools.partial(self._key_ids.__setitem__, name, kid))
        return kid

    def _require_running(self, conn: Connection, run_id: str) -> int:
        refuse_unstorable((run_id,))
        with driver_cursor(conn) as cursor:  # every logging call asks first: kept off SQLAlchemy's path
            cursor.execute(f'SELECT "key", status FROM runs WHERE id = {self._placeholder}', (run_id,))
            row = cursor.fetchone()
        if row is None:
            raise NotFound(f"No run with id {run_id!r}; list runs with `plinth runs list`.")
        key, status = row
        if status != "RUNNING":
            raise RunNotActive(f"Run {run_id} has ended ({status}); start a new run to log more.")
        return int(key)
