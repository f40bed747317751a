"""`plinth db`: the metadata database's schema, upgraded on purpose."""

from __future__ import annotations

import click

from plinth.cli.render import safe_url, say


@click.group("db", short_help="Manage the metadata database (schema upgrades).")
def db() -> None:
    """The metadata database named by PLINTH_STORE (default: SQLite under PLINTH_HOME)."""


@db.command("upgrade", short_help="Apply schema migrations to the metadata database.")
def db_upgrade() -> None:
    """Apply schema migrations to the store named by PLINTH_STORE (or the SQLite default).

    Opening a store migrates it anyway; run this to migrate a shared PostgreSQL store
    once, on purpose, after upgrading plinth.
    """
    from plinth.core.settings import Settings
    from plinth.store.engine import make_engine
    from plinth.store.migrate import HEAD, upgrade

    url = Settings.from_env().resolved_store_url
    engine = make_engine(url)
    try:
        ran = upgrade(engine)
    finally:
        engine.dispose()
    say(f"Schema of {safe_url(url)} {'upgraded to' if ran else 'already at'} revision {HEAD}.")
