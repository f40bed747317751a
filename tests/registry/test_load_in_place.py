"""A process's first `load_model` reads a local SQLite store in place: no backend is opened, no
SQLAlchemy or fsspec is imported and nothing is written, yet every check a backend makes is made."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.core.errors import IntegrityError, NotFound, SchemaError, SignatureError
from plinth.core.settings import Settings
from plinth.tracking import context


@pytest.fixture(scope="module")
def clf() -> LogisticRegression:
    x, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(x, y)


@pytest.fixture
def home(tmp_path: Path, clf: LogisticRegression) -> Iterator[Path]:
    """PLINTH_HOME holding model `m` (versions 1 and 2, `m@champion` = 1) and model `bare`
    (no aliases); no backend is open afterwards."""
    plinth.configure()
    plinth.register_model("m", clf, input_example=load_iris(return_X_y=True)[0][:3])
    plinth.register_model("m", clf)
    plinth.register_model("bare", clf)
    plinth.set_alias("m", "champion", 1)
    context.reset()
    yield tmp_path / "home"
    context.reset()


def in_place(ref: str) -> plinth.Model:
    """`load_model(ref)`, checked to have read the store in place (no backend was opened)."""
    model = plinth.load_model(ref)
    assert context.current() is None
    return model


def edit(home: Path, sql: str, *params: object) -> None:
    """Change the database behind plinth's back, as any writer of the file could."""
    with contextlib.closing(sqlite3.connect(home / "plinth.db")) as conn, conn:
        conn.execute(sql, params)


def one(home: Path, sql: str) -> object:
    """The single value `sql` selects from the store's database."""
    with contextlib.closing(sqlite3.connect(home / "plinth.db")) as conn:
        [(value,)] = conn.execute(sql).fetchall()
    return value


@pytest.mark.parametrize(
    ("ref", "version"), [("m/1", 1), ("m", 2), ("m@champion", 1), ("m@latest", 2), ("models:/m/2", 2)]
)
def test_references_load_in_place(home: Path, clf: LogisticRegression, ref: str, version: int) -> None:
    model = in_place(ref)
    x = load_iris(return_X_y=True)[0][:5]
    assert (model.name, model.version) == ("m", version)
    np.testing.assert_array_equal(model.predict(x), clf.predict(x))


def test_a_version_read_in_place_is_the_one_the_store_returns(home: Path) -> None:
    read = in_place("m@champion").model_version
    assert read == plinth.get_model_version("m", 1)
    assert read.aliases == ("champion",) and read.signature is not None


@pytest.mark.parametrize("ref", ["nope", "nope/1", "nope@champion", "m/7", "m@nope", "bare@nope"])
def test_unknown_models_versions_and_aliases_are_refused_as_by_the_store(home: Path, ref: str) -> None:
    with pytest.raises(NotFound) as read_in_place:
        plinth.load_model(ref)
    assert context.current() is None
    plinth.configure()
    with pytest.raises(NotFound) as through_the_store:
        plinth.load_model(ref)
    assert str(read_in_place.value) == str(through_the_store.value)


def test_loading_writes_nothing(home: Path) -> None:
    db, key = home / "plinth.db", home / "audit.key"
    key.unlink()  # opening a backend would make a new one
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    in_place("m@champion")
    in_place("m")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert not key.exists()


def test_a_fresh_process_loads_without_sqlalchemy_or_fsspec(home: Path) -> None:
    probe = (
        "import json, sys, plinth; m = plinth.load_model('m@champion'); "
        "print(json.dumps([m.version, sorted(set(sys.modules) & {'sqlalchemy', 'alembic', 'fsspec'})]))"
    )
    env = {**os.environ, "PLINTH_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout) == [1, []]


def test_a_record_pointing_at_another_package_is_refused(home: Path) -> None:
    other = one(home, "SELECT digest FROM model_versions WHERE name = 'bare'")
    edit(home, "UPDATE model_versions SET digest = ? WHERE name = 'm' AND version = 1", other)
    with pytest.raises(IntegrityError, match="points at the package of bare/1"):
        in_place("m/1")


def test_required_signatures_are_checked(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_REQUIRE_SIGNED", "1")
    with pytest.raises(SignatureError, match="not signed"):
        plinth.load_model("m/1")
    assert context.current() is None


def test_a_signature_is_verified_and_a_changed_record_refused(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "k.pem"
    key.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    monkeypatch.setenv("PLINTH_SIGNING_KEY", str(key))
    monkeypatch.setenv("PLINTH_REQUIRE_SIGNED", "1")
    plinth.configure()
    plinth.register_model("signed", LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
    context.reset()
    assert in_place("signed/1").version == 1
    edit(home, "UPDATE model_versions SET flavor = 'python' WHERE name = 'signed'")
    with pytest.raises(SignatureError, match="does not match"):
        in_place("signed/1")


def test_a_store_at_an_older_schema_is_opened_and_migrated(home: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    from plinth.store.lookup import schema_head
    from plinth.store.migrate import alembic_config

    engine = create_engine(f"sqlite:///{home / 'plinth.db'}")
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "-1")
    engine.dispose()
    assert plinth.load_model("m/1").version == 1
    assert context.current() is not None  # opened as a backend, which migrated the store
    assert one(home, "SELECT version_num FROM alembic_version") == schema_head()


def test_a_store_from_a_newer_plinth_is_refused_as_by_the_store(home: Path) -> None:
    edit(home, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaError, match="newer than this plinth"):
        plinth.load_model("m/1")


def test_a_missing_store_is_created_and_says_the_model_is_unknown(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="No model named 'm'"):
        plinth.load_model("m/1")
    assert (tmp_path / "home" / "plinth.db").exists()


def test_a_postgresql_store_is_opened_as_a_backend(
    pg_schema_factory: Callable[[], str], monkeypatch: pytest.MonkeyPatch, clf: LogisticRegression
) -> None:
    monkeypatch.setenv("PLINTH_STORE", pg_schema_factory())
    plinth.configure()
    plinth.register_model("m", clf)
    context.reset()
    assert plinth.load_model("m/1").version == 1
    assert context.current() is not None


def test_an_open_backend_is_used(home: Path, tmp_path: Path) -> None:
    be = plinth.configure(Settings.from_env().with_home(str(tmp_path / "elsewhere")))
    with pytest.raises(NotFound, match="No model named 'm'"):
        plinth.load_model("m/1")
    assert context.current() is be
