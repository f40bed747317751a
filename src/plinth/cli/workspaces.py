"""`plinth workspaces`: the namespaces experiments, datasets, models and flows belong to."""

from __future__ import annotations

from dataclasses import asdict

import click

from plinth.cli import render
from plinth.cli.options import json_option
from plinth.cli.render import console, say, table, when
from plinth.core.access import check_workspace_name
from plinth.core.settings import Settings
from plinth.store.identity_open import identity_from_settings


@click.group("workspaces", short_help="Create and list workspaces.")
def workspaces() -> None:
    """Workspaces: each holds its own experiments, datasets, models, flows and deployments, and
    gives each member a role (see `plinth members`). `default` always exists; PLINTH_WORKSPACE
    picks the one a client works in."""


@workspaces.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the workspace is for.")
def workspaces_create(name: str, description: str) -> None:
    """Create workspace NAME (on a team server: the superuser only)."""
    settings = Settings.from_env()
    made = identity_from_settings(settings).create_workspace(
        check_workspace_name(name), description, by=settings.user
    )
    say(
        f"Created workspace {made.name!r}; add people with `plinth members add {made.name} USER --role ROLE`."
    )


@workspaces.command("list")
@json_option
def workspaces_list(as_json: bool) -> None:
    """List the workspaces you hold a role in (every one, for an admin of the store)."""
    found = identity_from_settings(Settings.from_env()).list_workspaces()
    if as_json:
        render.emit_json([asdict(w) for w in found])
        return
    if not found:
        say("No workspaces you hold a role in; ask an admin to add you with `plinth members add`.")
        return
    rows = [(w.name, when(w.created_ms), w.description) for w in found]
    console.print(table(f"Workspaces ({len(found)})", ["name", "created", "description"], rows))
