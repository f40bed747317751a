"""SQLite's write-ahead log is moved into the database by a thread soon after commits, not by
the commit that happens to pass SQLite's threshold; the thread ends when idle and comes back."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.store import wal
from plinth.store.engine import _sqlite_writes, driver_cursor, writing
from plinth.store.sql import SqlStore
from waiting import wait_until


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'plinth.db'}", actor="tester", audit_key=None)
    yield store
    store.close()


def database_pages(path: Path) -> int:
    """Pages in the database file itself, not counting those still in its log."""
    return os.path.getsize(path) // 4096


def write_a_megabyte(store: SqlStore, n: int) -> None:
    with writing(store.engine) as conn, driver_cursor(conn) as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS filler (i INTEGER, body TEXT)")
        cursor.executemany("INSERT INTO filler VALUES (?, ?)", [(n, "x" * 1000) for _ in range(1000)])


def test_commits_leave_the_checkpoint_to_the_thread(store: SqlStore, tmp_path: Path) -> None:
    db = tmp_path / "plinth.db"
    before = database_pages(db)
    write_a_megabyte(store, 1)  # 250 pages: far below the pages at which a commit checkpoints
    wait_until(lambda: database_pages(db) > before + 200, "the log was never moved into the database")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM filler").fetchone() == (1000,)


def test_every_connection_raises_the_floor_at_which_a_commit_checkpoints(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert pages == wal.AUTOCHECKPOINT_PAGES


def test_the_thread_ends_when_idle_and_the_next_commit_brings_it_back(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal, "_IDLE_S", 0.05)
    checkpointer = _sqlite_writes[store.engine][1]
    write_a_megabyte(store, 1)
    wait_until(lambda: checkpointer._thread is None, "the idle thread never ended")
    db = tmp_path / "plinth.db"
    before = database_pages(db)
    write_a_megabyte(store, 2)
    wait_until(lambda: database_pages(db) > before + 200, "no thread checkpointed the second commit")
