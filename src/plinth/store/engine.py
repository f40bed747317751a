"""Engines for the metadata store: SQLite tuned for many writers, PostgreSQL over psycopg 3."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, OperationalError

from plinth.core.errors import ConfigError, InvalidInput
from plinth.core.validation import unstorable
from plinth.store.failures import BUSY_BUDGET_S, is_transient, store_failure
from plinth.store.wal import AUTOCHECKPOINT_PAGES, Checkpointer

T = TypeVar("T")

FOLD = "plinth_fold"
"""SQLite function lowering text by Unicode rules (str.lower): its own lower() folds ASCII only."""


def make_engine(url: str) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL; raise ConfigError for anything else."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"PLINTH_STORE={url!r} is not a database URL; use e.g. "
            "postgresql+psycopg://user@host:5432/db or leave it unset for SQLite."
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = _sqlite_engine(url, parsed.database)
    elif backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = _postgresql_engine(parsed)
    else:
        raise ConfigError(
            f"Unsupported metadata store {backend!r} in {url!r}; plinth speaks sqlite and postgresql."
        )
    event.listen(engine, "before_cursor_execute", _refuse_unstorable)
    return engine


def _refuse_unstorable(  # type: ignore[no-untyped-def]
    _conn, _cursor, _statement, parameters, _context, _executemany
) -> None:
    """Refuse text no database binds before the driver fails on it (see `refuse_unstorable`)."""
    refuse_unstorable(_texts(parameters))


def refuse_unstorable(values: Iterable[object]) -> None:
    """Refuse text no database binds (a NUL, a lone surrogate) among `values`.

    Every name, id, key and value plinth stores is checked when written, so such text is a
    lookup by something that cannot exist: it is refused the same way on every backend,
    not blamed on the database (PostgreSQL) or raised raw from the driver. Statements through
    SQLAlchemy are checked by an engine event; the driver-level fast paths call this themselves.
    """
    for value in values:
        problem = unstorable(value) if isinstance(value, str) else None
        if problem is not None and isinstance(value, str):
            raise InvalidInput(
                f"{value[:80]!r} holds {problem}; no name, id, key or value plinth stores holds "
                "one, so nothing can match it. Remove it."
            )


def _texts(parameters: Any) -> Iterator[str]:
    """The strings among a statement's parameters (a row or many, as a sequence or a mapping)."""
    stack = [parameters]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


IDLE_PING_S = 5.0
"""A pooled PostgreSQL connection idle longer than this is pinged before use (see below)."""
LOCK_TIMEOUT = "60s"
"""How long a PostgreSQL statement waits for a lock before it fails (and is retried)."""


def _postgresql_engine(url: URL) -> Engine:
    """A PostgreSQL engine whose connections cost no round trip of their own per transaction.

    Every connection sets its lock timeout once, when it opens, and plans every statement for
    the values it is given: psycopg prepares a statement run often on a connection, which saves
    PostgreSQL parsing it again, but a plan made once for any values (a generic plan) can be
    far worse than one made for the values at hand (a search ordered by a metric, planned
    without knowing its experiment or limit, read every run of the experiment: 15 ms against
    1 ms). A statement whose plan no value changes may ask for the plan to be kept (the walk
    of `plinth.store.sql.run_search`). A pooled connection is pinged
    before use only when it has been idle for `IDLE_PING_S` (a server restart, an idle timeout
    of a proxy): one in steady use is not, as a ping is a round trip, as long as a small
    write's statements. Should a connection be found dead in use anyway, SQLAlchemy
    invalidates the pool and the error is the store's to answer (its callers retry).

    The pool hands out the connection returned last: one caller at a time keeps one connection
    (and its PostgreSQL backend) warm, where taking turns between four made the same search
    0.8 ms instead of 1.0 ms; the others wait for bursts, and are pinged then if idle long.
    """
    engine = create_engine(url, pool_size=4, max_overflow=8, pool_use_lifo=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            dbapi_connection.execute(
                f"SET lock_timeout = '{LOCK_TIMEOUT}'; SET plan_cache_mode = force_custom_plan"
            )
        finally:
            dbapi_connection.autocommit = autocommit

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_S:
            return  # a new connection, or one in steady use
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:
            alive = False
        if not alive:  # the pool drops it and checks out another
            raise DisconnectionError("a pooled connection to PostgreSQL was closed")

    return engine


_IDLE_SINCE = "plinth_idle_since"


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        folder = os.path.dirname(os.path.abspath(database)) or "."
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"Cannot create the folder {folder!r} for the SQLite store: {exc.strerror}. "
                "Point PLINTH_HOME (or PLINTH_STORE) at a writable place."
            ) from exc
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
    _sqlite_writes[engine] = (threading.RLock(), Checkpointer(engine))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")  # see `wal`
        cursor.execute("PRAGMA foreign_keys = ON")
        # `like` is case-sensitive on every backend (`ilike` folds case), as on PostgreSQL
        cursor.execute("PRAGMA case_sensitive_like = ON")
        # deleted rows are overwritten, not left in free pages, so an erasure erases
        cursor.execute("PRAGMA secure_delete = ON")
        cursor.close()
        dbapi_connection.create_function(FOLD, 1, _fold, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front so two writers never deadlock upgrading locks.
        # Sent through the driver: every transaction pays for it, and SQLAlchemy's statement path
        # costs several times the statement; a failure is raised as SQLAlchemy's, for `retrying`.
        begin = "BEGIN IMMEDIATE" if conn.get_execution_options().get("plinth_write", False) else "BEGIN"
        with driver_cursor(conn) as cursor:
            cursor.execute(begin)

    return engine


def _fold(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def is_sqlite(engine: Engine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


@contextlib.contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction, committed on success, rolled back on error.

    On SQLite the threads of one process take turns at a lock of their own before asking for
    the database's write lock: SQLite has one writer at a time, and a writer that finds it taken
    waits in SQLite's busy handler, which sleeps in steps of up to 100 ms, so under many
    concurrent writers (a team server's requests) some would wait far longer than the writes
    in front of them take. Other processes still meet at SQLite's own lock.
    """
    sqlite = _sqlite_writes.get(engine)
    if sqlite is None:
        with engine.connect().execution_options(plinth_write=True) as conn, conn.begin():
            yield conn
        return
    lock, checkpointer = sqlite
    with _turn(lock) as held:
        found = _writer(engine) if held else None
        kept = found is not None
        conn = found if found is not None else engine.connect().execution_options(plinth_write=True)
        try:
            with conn.begin():
                yield conn
            checkpointer.committed()
        except BaseException as exc:  # rolled back; a connection an interruption or a lost
            if kept and (conn.invalidated or not isinstance(exc, Exception)):  # database left goes
                kept = False
                setattr(engine, _KEPT, None)
            raise
        finally:
            if not kept:
                conn.close()


def _writer(engine: Engine) -> Connection | None:
    """The connection this process writes `engine` with, kept between write transactions (taking
    one from the pool and giving it back costs more than a small transaction's statements); None
    while it is in a transaction (a write inside a write, which opens a connection of its own)."""
    kept: tuple[int, Connection] | None = getattr(engine, _KEPT, None)
    if kept is not None and kept[0] == os.getpid() and not kept[1].closed and not kept[1].invalidated:
        return None if kept[1].in_transaction() else kept[1]
    conn = engine.connect().execution_options(plinth_write=True)
    setattr(engine, _KEPT, (os.getpid(), conn))  # a forked child opens its own
    return conn


@contextlib.contextmanager
def own_checkpoints(engine: Engine) -> Iterator[None]:
    """The block runs while this process's checkpoint thread does not (see `wal`): SQLite answers
    a checkpoint that meets another at once, without waiting."""
    sqlite = _sqlite_writes.get(engine)
    with sqlite[1].running if sqlite is not None else contextlib.nullcontext():
        yield


def dispose(engine: Engine) -> None:
    """Close `engine`'s connections: the pool's, and the one `writing` keeps, if any."""
    kept: tuple[int, Connection] | None = getattr(engine, _KEPT, None)
    if kept is not None:
        setattr(engine, _KEPT, None)
        if kept[0] == os.getpid():
            kept[1].close()
    engine.dispose()


@contextlib.contextmanager
def _turn(lock: threading.RLock) -> Iterator[bool]:
    """`lock` held for the block; past the busy budget the block runs without it, and meets
    SQLite's own lock (and its timeout) as it would without one."""
    held = lock.acquire(timeout=BUSY_BUDGET_S)
    try:
        yield held
    finally:
        if held:
            lock.release()


_sqlite_writes: weakref.WeakKeyDictionary[Engine, tuple[threading.RLock, Checkpointer]] = (
    weakref.WeakKeyDictionary()
)
"""Each SQLite engine's write lock, taken in `writing` (see there), and its checkpointer, told
of each commit there (see `wal`)."""
_KEPT = "_plinth_writer"
"""The attribute of a SQLite engine holding its kept write connection and the process it belongs
to (see `_writer`): on the engine, not in a map keyed by it, as the connection refers to it."""


@contextlib.contextmanager
def driver_cursor(conn: Connection) -> Iterator[Any]:
    """The driver's own cursor on `conn`, for statements on hot paths that SQLAlchemy's
    per-statement cost would dominate. Its errors are raised as SQLAlchemy's, so `retrying`
    tells a locked database from bad data. Nothing checks the text it binds: check it first.
    """
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    except dbapi.Error as exc:
        lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
        raise DBAPIError.instance(
            None, None, exc, dbapi.Error, connection_invalidated=lost, dialect=conn.dialect
        ) from exc
    finally:
        cursor.close()


def pipeline(conn: Connection) -> contextlib.AbstractContextManager[Any]:
    """On PostgreSQL (where libpq has it), psycopg's pipeline on `conn`: statements executed in
    the block go out together, with the transaction's BEGIN when it is still to be sent, and
    wait for the server once, when a result is read or the block ends. Each still runs after
    the one before. Elsewhere a block that does nothing.
    """
    if conn.dialect.name != "postgresql" or not conn.dialect.loaded_dbapi.Pipeline.is_supported():
        return contextlib.nullcontext()
    driver: Any = conn.connection.driver_connection
    return driver.pipeline()


def retrying(action: Callable[[], T], what: str) -> T:
    """Run `action`, retrying while the database reports it is locked or a serialization clash.

    Raises:
        StoreBusy: still locked after the retry budget.
        StoreError: any other database failure, with the action named.
    """
    deadline = time.monotonic() + BUSY_BUDGET_S
    delay = 0.005
    while True:
        try:
            return action()
        except OperationalError as exc:
            if not is_transient(str(exc.orig)) or time.monotonic() > deadline:
                raise store_failure(str(exc.orig), what) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated and time.monotonic() < deadline:
                pass
            else:
                raise store_failure(str(exc.orig), what) from exc
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.5)
