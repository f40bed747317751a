"""`plinth db`: the metadata database's schema, upgraded on purpose."""

from __future__ import annotations

import click

from plinth.cli.render import safe_url, say
from plinth.core.access import DEFAULT_WORKSPACE
from plinth.core.settings import Settings


@click.group("db", short_help="Manage the metadata database (schema upgrades).")
def db() -> None:
    """The metadata database named by PLINTH_STORE (default: SQLite under PLINTH_HOME)."""


@db.command("upgrade", short_help="Apply schema migrations to the metadata database.")
def db_upgrade() -> None:
    """Apply schema migrations to the store named by PLINTH_STORE (or the SQLite default), and
    to every workspace it holds (each workspace is a schema, or a file, of its own).

    Opening a store migrates it anyway; run this to migrate a shared PostgreSQL store
    once, on purpose, after upgrading plinth.
    """
    from plinth.store.migrate import HEAD

    settings = Settings.from_env()
    if settings.is_remote:
        raise click.UsageError(
            "PLINTH_STORE names a team server; run `plinth db upgrade` where the server runs."
        )
    for url, ran in _upgrade_all(settings):
        say(f"Schema of {safe_url(url)} {'upgraded to' if ran else 'already at'} revision {HEAD}.")


def _upgrade_all(settings: Settings) -> list[tuple[str, bool]]:
    """(URL, whether it ran migrations) of the store and then of each of its workspaces."""
    from plinth.store.engine import dispose, make_engine
    from plinth.store.migrate import upgrade
    from plinth.store.sql.identity import SqlIdentity
    from plinth.store.workspaces import ensure_schema, workspace_url

    base = settings.resolved_store_url
    engine = make_engine(base)
    try:
        done = [(base, upgrade(engine))]
    finally:
        dispose(engine)
    identity = SqlIdentity.from_settings(settings)
    try:
        names = sorted(w.name for w in identity.list_workspaces() if w.name != DEFAULT_WORKSPACE)
    finally:
        identity.close()
    for name in names:
        url = workspace_url(base, name)
        if not url.startswith("sqlite"):
            ensure_schema(url)  # a workspace created but never opened has no schema yet
        engine = make_engine(url)
        try:
            done.append((url, upgrade(engine)))
        finally:
            dispose(engine)
    return done
