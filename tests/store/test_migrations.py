"""Alembic migrations: the code's HEAD matches the scripts, upgrades are idempotent and guarded."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from plinth.core.errors import ConfigError, SchemaError
from plinth.store.engine import make_engine
from plinth.store.migrate import HEAD, script_head, upgrade
from plinth.store.schema import metadata


def test_head_constant_matches_scripts() -> None:
    assert script_head() == HEAD


def test_upgrade_creates_every_table_once(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        assert upgrade(engine) is True
        assert upgrade(engine) is False
        tables = set(inspect(engine).get_table_names())
        assert set(metadata.tables) <= tables
    finally:
        engine.dispose()


def test_sqlite_is_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match="newer than this plinth"):
        upgrade(engine)
    engine.dispose()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url at all"])
def test_unsupported_store_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        make_engine(url)


def test_upgrade_from_0005_keeps_metrics_and_allows_nan(store_url: str) -> None:
    from alembic import command

    from plinth.store.engine import writing
    from plinth.store.migrate import alembic_config

    engine = make_engine(store_url)
    try:
        with writing(engine) as conn:
            command.upgrade(alembic_config(conn), "0005")
        with writing(engine) as conn:
            conn.execute(text("INSERT INTO metrics VALUES (1, 1, 0, 0, 5, 0.25)"))
            conn.execute(text("INSERT INTO latest_metrics VALUES (1, 1, 0, 0, 5, 0.25)"))
        assert upgrade(engine) is True
        with writing(engine) as conn:
            conn.execute(text("INSERT INTO metrics VALUES (1, 1, 1, 0, 6, NULL)"))
            rows = conn.execute(text("SELECT step, value FROM metrics ORDER BY step")).all()
            latest = conn.execute(text("SELECT value FROM latest_metrics")).scalar()
        assert [tuple(r) for r in rows] == [(0, 0.25), (1, None)]
        assert latest == 0.25
        columns = {c["name"]: c for c in inspect(engine).get_columns("prediction_logs")}
        assert columns["request_id"]["type"].length == 128
    finally:
        engine.dispose()


def test_params_tags_and_the_audit_log_survive_their_leaner_tables(store_url: str) -> None:
    from alembic import command

    from plinth.store.engine import writing
    from plinth.store.migrate import alembic_config
    from plinth.store.sql import SqlStore

    store = SqlStore(store_url)
    try:
        kept = store.create_run(
            experiment="e",
            name="kept",
            params={"lr": "0.1", "opt": "adam"},
            tags={"team": "vision"},
            environment=None,
            heartbeat_s=30,
            user="ana",
        )
        gone = store.create_run(
            experiment="e",
            name="gone",
            params={"lr": "0.2"},
            tags={"team": "nlp"},
            environment=None,
            heartbeat_s=30,
            user="ana",
        )
        with writing(store.engine) as conn:
            command.downgrade(alembic_config(conn), "0011")
        assert upgrade(store.engine) is True
        if store.engine.dialect.name == "sqlite":
            with store.engine.connect() as conn:
                tables = dict(
                    conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()
                )
                indexes = {
                    row[0]
                    for row in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")
                }
            assert "WITHOUT ROWID" in tables["params"] and "WITHOUT ROWID" in tables["tags"]
            assert {"ix_params_key_value", "ix_params_key_num", "ix_tags_key_value"} <= indexes
            assert "seq INTEGER NOT NULL" in tables["audit_events"] and "ix_audit_entity" not in indexes
        with store.engine.connect() as conn:
            if store.engine.dialect.name == "sqlite":
                numbers_index = "SELECT sql FROM sqlite_master WHERE name = 'ix_params_key_num'"
            else:
                numbers_index = (
                    "SELECT indexdef FROM pg_indexes "
                    "WHERE indexname = 'ix_params_key_num' AND schemaname = current_schema()"
                )
            assert "value_num IS NOT NULL" in conn.exec_driver_sql(numbers_index).scalar_one()
        assert store.verify_audit().ok  # the audit chain came through whole
        found = store.get_run(kept.id)
        assert found.params == {"lr": "0.1", "opt": "adam"} and found.tags == {"team": "vision"}
        with writing(store.engine) as conn:  # a run's params and tags go with it
            conn.execute(text("DELETE FROM runs WHERE id = :id"), {"id": gone.id})
            left = conn.execute(text("SELECT count(*) FROM params")).scalar_one()
            left_tags = conn.execute(text("SELECT count(*) FROM tags")).scalar_one()
        assert (left, left_tags) == (2, 1)
    finally:
        store.engine.dispose()
