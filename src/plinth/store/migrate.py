"""Apply Alembic migrations when a store is opened (and from `plinth db upgrade`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from plinth.core.errors import SchemaError
from plinth.store.engine import retrying, writing
from plinth.store.lookup import schema_head

if TYPE_CHECKING:
    from alembic.config import Config

# From the scripts' file names (a test checks it is Alembic's head): lets an up-to-date store
# open without loading Alembic.
HEAD = schema_head()
_MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at plinth's migrations, bound to `connection` if given."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", _MIGRATIONS)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_head() -> str:
    """The newest revision among the migration scripts."""
    from alembic.script import ScriptDirectory

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

    def current() -> str | None:
        with engine.connect() as conn:
            return current_revision(conn)

    if retrying(current, "open the metadata store") == HEAD:
        return False
    return retrying(lambda: _upgrade_locked(engine), "migrate the schema")


def _upgrade_locked(engine: Engine) -> bool:
    from alembic import command
    from alembic.script import ScriptDirectory

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
