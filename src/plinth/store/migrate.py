"""Apply Alembic migrations when a store is opened (and from `plinth db upgrade`)."""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from plinth.core.errors import SchemaError
from plinth.store.engine import retrying, writing

HEAD = "0001"
_MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at plinth's migrations, bound to `connection` if given."""
    cfg = Config()
    cfg.set_main_option("script_location", _MIGRATIONS)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_head() -> str:
    """The newest revision among the migration scripts."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return head or ""


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at, or None for an empty database."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> bool:
    """Bring the schema to HEAD under a lock; return True when a migration ran.

    Raises:
        SchemaError: the database was written by a newer plinth.
    """
    with engine.connect() as conn:
        if current_revision(conn) == HEAD:
            return False
    return retrying(lambda: _upgrade_locked(engine), "migrate the schema")


def _upgrade_locked(engine: Engine) -> bool:
    with writing(engine) as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(74110001)")
        found = current_revision(conn)
        if found == HEAD:
            return False
        known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
        if found is not None and found not in known:
            raise SchemaError(
                f"The metadata store is at schema revision {found!r}, newer than this plinth "
                f"knows ({HEAD!r}); upgrade plinth (pip install -U plinth)."
            )
        command.upgrade(alembic_config(conn), "head")
        return True
