"""`plinth whoami`: who the store sees you as, and your role in each workspace."""

from __future__ import annotations

from typing import Any

import click

from plinth.cli import render
from plinth.cli.options import json_option
from plinth.cli.render import say
from plinth.core.settings import Settings


@click.command("whoami", short_help="Show who you are to the store, and your roles.")
@json_option
def whoami(as_json: bool) -> None:
    """Show the principal your token belongs to on the team server (PLINTH_STORE=http(s)://…),
    its token and its role per workspace; on a SQL store, the local user, who needs no token."""
    settings = Settings.from_env()
    me = _remote(settings) if settings.is_remote else _local(settings)
    if as_json:
        render.emit_json(me)
        return
    token = f" (token {me['token_name']})" if me.get("token_name") else ""
    say(f"{me['name']}{token}, {me['kind']}, on {render.safe_url(me['store'])}")
    if me["superuser"]:
        say("superuser: every right in every workspace" if settings.is_remote else me["note"])
    for ws, role in sorted(me["roles"].items()):
        home = "  (home)" if ws == me.get("home_workspace") else ""
        say(f"  {ws}: {role}{home}")
    if not me["superuser"] and not me["roles"]:
        say("No role in any workspace yet; ask an admin to add you with `plinth members add`.")


def _remote(settings: Settings) -> dict[str, Any]:
    from plinth.store.http import client_from_settings
    from plinth.store.remote_identity import RemoteIdentity

    principal = RemoteIdentity(client_from_settings(settings)).whoami()
    return {
        "name": principal.name,
        "kind": principal.kind.value,
        "token_name": principal.token_name,
        "superuser": principal.superuser,
        "roles": {ws: role.value for ws, role in principal.roles.items()},
        "home_workspace": principal.home_workspace,
        "store": settings.store_url,
    }


def _local(settings: Settings) -> dict[str, Any]:
    return {
        "name": settings.user,
        "kind": "user",
        "token_name": None,
        "superuser": True,
        "roles": {},
        "home_workspace": settings.workspace,
        "store": settings.resolved_store_url,
        "note": "local admin: works on the store directly (PLINTH_USER), no token needed",
    }
