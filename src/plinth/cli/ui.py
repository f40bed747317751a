"""`plinth ui`: the web UI over this machine's own store, for one person, on loopback."""

from __future__ import annotations

import dataclasses
import ipaddress
import webbrowser

import click

from plinth.cli.render import safe_url, say
from plinth.cli.server import check_port
from plinth.core.errors import ConfigError

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


@click.command("ui", short_help="Open the web UI over this machine's store (127.0.0.1, no login).")
@click.option("--port", default=5050, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Loopback address to listen on; a shared UI is `plinth server`, which has login.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the UI in the default browser.")
def ui(port: int, host: str, open_browser: bool) -> None:
    """Serve the web UI over PLINTH_STORE and PLINTH_ARTIFACTS (default: the embedded store).

    Experiments and runs (filter, sort, compare), run pages with charts and artifacts, models,
    flows, deployments and their monitoring, lineage, the audit log and costs. Every request is
    you, with every right, so it listens on this machine's loopback only: to share a UI with a
    team, run `plinth server`, which signs people in and applies their roles.
    """
    import uvicorn

    from plinth.core.settings import Settings
    from plinth.server.app import create_app
    from plinth.server.config import ServerConfig

    check_loopback(host)
    settings = Settings.from_env()
    if settings.is_remote:
        raise ConfigError(
            f"PLINTH_STORE={safe_url(settings.store_url or '')} is a team server: open its address in a "
            "browser instead (its UI is at /); `plinth ui` serves this machine's own store."
        )
    config = ServerConfig.load(None, settings)
    config = dataclasses.replace(config, local_user=settings.user)
    check_port(host, port)
    app = create_app(config)
    address = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    say(f"plinth ui on {address} over {safe_url(config.store_url)} (as {settings.user}; Ctrl-C stops it)")
    if open_browser:
        webbrowser.open(address)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def check_loopback(host: str) -> None:
    """ConfigError unless `host` is a loopback address or name.

    Raises:
        ConfigError: a non-loopback host (the UI would serve everyone every right).
    """
    if host.lower() in LOOPBACK_NAMES:
        return
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return
    except ValueError:
        pass
    raise ConfigError(
        f"--host {host!r} is not a loopback address: `plinth ui` has no login and gives every right, "
        "so it listens on 127.0.0.1 (or ::1) only. To share a UI, run `plinth server` (tokens, SSO, roles)."
    )
