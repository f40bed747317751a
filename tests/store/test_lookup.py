"""`SqliteModelLookup` reads only plain SQLite files at this plinth's schema; the blob store
opens a local folder without fsspec."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from plinth.store.blobs import BlobStore, local_folder
from plinth.store.lookup import SqliteModelLookup, schema_head, sqlite_path
from plinth.store.migrate import script_head
from plinth.store.sql import SqlStore


def test_the_schema_head_is_alembics() -> None:
    assert schema_head() == script_head()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////data/plinth.db", "/data/plinth.db"),
        ("sqlite:///plinth.db", "plinth.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///plinth.db?timeout=5", None),
        ("sqlite:///my%20store.db", None),
        ("sqlite+pysqlite:///plinth.db", None),
        ("postgresql+psycopg://u@h/db", None),
    ],
)
def test_only_plain_sqlite_urls_name_a_file(url: str, path: str | None) -> None:
    assert sqlite_path(url) == path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A store's database at the current schema."""
    path = tmp_path / "plinth.db"
    SqlStore(f"sqlite:///{path}").close()
    return path


def set_revision(path: Path, revision: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def test_a_store_at_the_current_schema_is_read(db: Path) -> None:
    lookup = SqliteModelLookup.open(f"sqlite:///{db}")
    assert lookup is not None
    lookup.close()


@pytest.mark.parametrize("revision", ["0001", "9999"])
def test_a_store_at_another_schema_is_left_to_the_store(db: Path, revision: str) -> None:
    set_revision(db, revision)
    assert SqliteModelLookup.open(f"sqlite:///{db}") is None


def test_a_file_that_is_not_a_store_is_left_to_the_store(tmp_path: Path) -> None:
    (tmp_path / "not.db").write_text("not a database")
    with contextlib.closing(sqlite3.connect(tmp_path / "empty.db")) as conn:
        conn.execute("CREATE TABLE t (x)")
    for name in ("not.db", "empty.db", "missing.db"):
        assert SqliteModelLookup.open(f"sqlite:///{tmp_path / name}") is None
    assert not (tmp_path / "missing.db").exists()


def test_the_lookup_cannot_write(db: Path) -> None:
    lookup = SqliteModelLookup.open(f"sqlite:///{db}")
    assert lookup is not None
    with contextlib.closing(lookup), pytest.raises(sqlite3.OperationalError, match="readonly"):
        lookup._conn.execute("CREATE TABLE t (x)")


@pytest.mark.parametrize(
    ("url", "folder"),
    [
        ("/data/artifacts", "/data/artifacts"),
        ("file:///data/artifacts", "/data/artifacts"),
        ("artifacts", None),
        ("~/artifacts", None),
        ("s3://bucket/artifacts", None),
        ("simplecache::/data/artifacts", None),
    ],
)
def test_absolute_folders_are_opened_without_fsspec(url: str, folder: str | None) -> None:
    assert local_folder(url) == folder


def test_a_local_blob_store_reads_and_lists_as_through_fsspec(tmp_path: Path) -> None:
    blobs = BlobStore(f"file://{tmp_path / 'artifacts'}/")
    digest, _ = blobs.put_bytes(b"model bytes")
    assert blobs.root == str(tmp_path / "artifacts") and blobs.local
    assert blobs.read_bytes(digest) == b"model bytes"
    assert [b.digest for b in blobs.list_blobs()] == [digest]
    blobs.delete(digest)
    assert not blobs.exists(digest)
