"""`plinth logout`: forget, and revoke where the server can, the token kept for a team server."""

from __future__ import annotations

import click

from plinth.cli.login import client, config_dir, server_url
from plinth.cli.render import say
from plinth.core.settings import Settings


@click.command("logout", short_help="Revoke and forget the token kept for a team server.")
@click.argument("url", required=False)
def logout(url: str | None) -> None:
    """Forget the token kept for the team server at URL (default: PLINTH_STORE); a sign-on
    session token is revoked on the server too."""
    from plinth.core.errors import PlinthError
    from plinth.store.credentials import load_token, remove_token

    settings = Settings.from_env()
    server = server_url(url, settings)
    secret = load_token(config_dir(settings), server)
    if secret is None:
        say(f"No token kept for {server}.")
        return
    try:
        client(server, settings, secret).request("POST", "/auth/logout", idempotent=False)
    except PlinthError as exc:  # an expired session, or sign-on off: forgetting it is enough
        say(f"The server did not revoke it ({exc}); forgetting it here.")
    remove_token(config_dir(settings), server)
    say(f"Logged out of {server}.")
