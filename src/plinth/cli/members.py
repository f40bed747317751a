"""`plinth members`: who holds which role in a workspace."""

from __future__ import annotations

import click

from plinth.cli import render
from plinth.cli.options import json_option
from plinth.cli.render import console, say, table
from plinth.core.access import Role, check_workspace_name
from plinth.core.identity import PrincipalKind
from plinth.core.settings import Settings
from plinth.store.identity_open import identity_from_settings

ROLES_HELP = "viewer, editor, maintainer, admin, auditor or predictor."


@click.group("members", short_help="Add, remove and list the members of a workspace.")
def members() -> None:
    """A workspace's members and their roles. Roles nest: viewer < editor < maintainer < admin;
    auditor is viewer plus raw prediction logs and the audit log; predictor may load models and
    call predict. On a team server, an admin of the workspace manages its members."""


@members.command("add")
@click.argument("workspace")
@click.argument("user")
@click.option("--role", required=True, metavar="ROLE", help=ROLES_HELP)
@click.option("--service", is_flag=True, help="A new principal is a service account, not a user.")
def members_add(workspace: str, user: str, role: str, service: bool) -> None:
    """Give USER the role ROLE in WORKSPACE (replacing any role it had there); a new USER is created."""
    settings = Settings.from_env()
    identity = identity_from_settings(settings)
    check_workspace_name(workspace)
    parsed = Role.parse(role)
    kind = identity.principal_kind(user)
    if kind is None:
        kind = PrincipalKind.SERVICE if service else PrincipalKind.USER
        identity.ensure_principal(user, kind)
    identity.set_member(workspace, user, kind, parsed, by=settings.user)
    say(f"{user} ({kind.value}) is now {parsed.value} in {workspace}.")


@members.command("remove")
@click.argument("workspace")
@click.argument("user")
def members_remove(workspace: str, user: str) -> None:
    """Take USER's role in WORKSPACE away; its tokens then grant nothing there."""
    settings = Settings.from_env()
    identity_from_settings(settings).remove_member(check_workspace_name(workspace), user, by=settings.user)
    say(f"{user} is no longer a member of {workspace}.")


@members.command("list")
@click.argument("workspace")
@json_option
def members_list(workspace: str, as_json: bool) -> None:
    """List WORKSPACE's members and their roles."""
    found = identity_from_settings(Settings.from_env()).members(check_workspace_name(workspace))
    if as_json:
        render.emit_json(
            [{"principal": m.principal, "kind": m.kind.value, "role": m.role.value} for m in found]
        )
        return
    if not found:
        say(
            f"{workspace} has no members yet; add one with `plinth members add {workspace} USER --role ROLE`."
        )
        return
    rows = [(m.principal, m.kind.value, m.role.value) for m in found]
    console.print(table(f"Members of {workspace} ({len(found)})", ["principal", "kind", "role"], rows))
