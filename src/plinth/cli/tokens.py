"""`plinth tokens`: API tokens for people and service accounts; create, list, revoke."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from plinth.cli import render
from plinth.cli.options import json_option
from plinth.cli.render import console, say, table, when
from plinth.core.access import DEFAULT_WORKSPACE, Role, check_workspace_name
from plinth.core.errors import InvalidInput
from plinth.core.identity import PrincipalKind, TokenInfo
from plinth.core.ids import now_ms
from plinth.core.settings import Settings
from plinth.core.units import parse_duration
from plinth.store.identity_open import identity_from_settings
from plinth.store.token_issue import issue_token

REVOKE_DELAY_S = 5
"""Longest time a revoked token keeps working on a team server (its decision cache)."""


@click.group("tokens", short_help="Create, list and revoke API tokens.")
def tokens() -> None:
    """API tokens for people and service accounts. With PLINTH_STORE=http(s)://… these go through
    the team server with PLINTH_TOKEN, which checks who may do what; on a SQL store they change
    the database directly, as a local admin. The server keeps only a hash of each secret."""


@tokens.command("create")
@click.option("--name", required=True, metavar="NAME", help="The token's name; also the service account's.")
@click.option(
    "--workspace",
    default=None,
    metavar="NAME",
    help="Its workspace [default: PLINTH_WORKSPACE, else default].",
)
@click.option(
    "--role", required=True, metavar="ROLE", help="viewer, editor, maintainer, admin, auditor, predictor."
)
@click.option(
    "--expires", default=None, metavar="DURATION", help="Stop working after this long, e.g. 90d, 12h."
)
@click.option("--user", default=None, metavar="USER", help="Issue it for this user, not a service account.")
@json_option
def tokens_create(
    name: str, workspace: str | None, role: str, expires: str | None, user: str | None, as_json: bool
) -> None:
    """Create a token and show its secret, once.

    Without --user, service account NAME is made (if new), given ROLE in the workspace, and the
    token is issued for it. With --user, the token is that user's, its rights capped to ROLE
    (a new user is created with ROLE). With --json, print only {"name": ..., "token": ...}.
    """

    settings = Settings.from_env()
    issued = issue_token(
        identity_from_settings(settings),
        name=name,
        workspace=_workspace(workspace, settings.workspace),
        role=Role.parse(role),
        user=user,
        expires_ms=_expiry(expires),
        by=settings.user,
    )
    if as_json:
        render.emit_json({"name": issued.info.name, "token": issued.secret})
        return
    info = issued.info
    expiry = f"expires {when(info.expires_ms)}" if info.expires_ms is not None else "never expires"
    scope = f"{info.role.value if info.role else 'its own role'} in {info.workspace}, {expiry}"
    who = "service account" if info.kind is PrincipalKind.SERVICE else "user"
    say(f"Created token {info.name!r} for {who} {info.principal} ({scope}):")
    say(issued.secret)
    say("Copy it now: it will not be shown again.")


@tokens.command("list")
@click.option("--workspace", default=None, metavar="NAME", help="Only tokens of this workspace.")
@click.option(
    "--user", default=None, metavar="PRINCIPAL", help="Only tokens of this user or service account."
)
@json_option
def tokens_list(workspace: str | None, user: str | None, as_json: bool) -> None:
    """List tokens (never their secrets): your own, and those of the workspaces you administer."""

    found = identity_from_settings(Settings.from_env()).list_tokens(principal=user, workspace=workspace)
    if as_json:
        render.emit_json([_token_json(t) for t in found])
        return
    if not found:
        say("No tokens yet; create one with `plinth tokens create --name NAME --role ROLE`.")
        return
    columns = ["name", "principal", "kind", "workspace", "role", "created", "expires", "last used", "revoked"]
    console.print(table(f"Tokens ({len(found)})", columns, [_token_row(t) for t in found], no_wrap=("name",)))


@tokens.command("revoke")
@click.argument("name")
@click.option("--user", default=None, metavar="PRINCIPAL", help="Whose token, where several share the name.")
def tokens_revoke(name: str, user: str | None) -> None:
    """Revoke token NAME; requests with it are refused within a few seconds."""

    settings = Settings.from_env()
    info = identity_from_settings(settings).revoke_token(name, principal=user, by=settings.user)
    say(f"Revoked token {info.name!r} of {info.principal}; it stops working within {REVOKE_DELAY_S} s.")


def _workspace(given: str | None, setting: str | None) -> str:
    return check_workspace_name(given or setting or DEFAULT_WORKSPACE)


def _expiry(expires: str | None) -> int | None:
    """Epoch ms `expires` (a duration such as 90d) from now; None for a token that never expires."""
    seconds = parse_duration(expires)
    if seconds is None:
        return None
    if seconds <= 0:
        raise InvalidInput(f"--expires {expires!r} must be longer than zero; use e.g. 90d or 12h.")
    return now_ms() + int(seconds * 1000)


def _token_row(t: TokenInfo) -> tuple[str, ...]:
    return (
        t.name,
        t.principal,
        t.kind.value,
        t.workspace or "-",
        t.role.value if t.role else "-",
        when(t.created_ms),
        when(t.expires_ms) if t.expires_ms is not None else "never",
        when(t.last_used_ms),
        when(t.revoked_ms),
    )


def _token_json(t: TokenInfo) -> dict[str, Any]:
    return {
        **asdict(t),
        "kind": t.kind.value,
        "role": t.role.value if t.role else None,
    }
