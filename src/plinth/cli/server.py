"""`plinth server`: the team server (REST API, tokens, SSO, roles per workspace)."""

from __future__ import annotations

import dataclasses
import errno
import importlib.util
import os
import socket
import sys
import tempfile
from typing import TYPE_CHECKING

import click

from plinth.cli.render import safe_url, say
from plinth.core.errors import ConfigError

if TYPE_CHECKING:
    from plinth.server.config import ServerConfig

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
"""uvicorn's levels without `trace`, which would log whole requests, tokens included."""


@click.command("server", short_help="Run the team server: the store over HTTP, with tokens and roles.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--workers", default=None, type=click.IntRange(1, 64), help="Server processes [default: config, else 1]."
)
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="server.toml: store, artifacts, public_url, cors_origins, [oidc], ...",
)
@click.option(
    "--init-admin", is_flag=True, help="Issue a superuser token for `admin`, print it once, then serve."
)
@click.option("--ssl-certfile", default=None, type=click.Path(dir_okay=False), help="TLS certificate (PEM).")
@click.option("--ssl-keyfile", default=None, type=click.Path(dir_okay=False), help="TLS private key (PEM).")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(LOG_LEVELS),
    help="How much the server logs (never the requests' headers: no level logs a token).",
)
@click.option("--no-access-log", is_flag=True, help="Do not log one line per request.")
def server(
    host: str,
    port: int,
    workers: int | None,
    config_path: str | None,
    init_admin: bool,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    log_level: str,
    no_access_log: bool,
) -> None:
    """Serve the store in PLINTH_STORE and the artifacts in PLINTH_ARTIFACTS to a team.

    Clients set PLINTH_STORE=http://HOST:PORT and PLINTH_TOKEN (or run `plinth login`). The API
    is under /api/v1 (OpenAPI at /openapi.json); /healthz and /readyz answer without a token,
    /metrics with an admin's. Bootstrap the first admin with PLINTH_ADMIN_TOKEN in the server's
    environment, or with --init-admin.
    """
    import uvicorn

    from plinth.core.settings import Settings
    from plinth.server.config import ServerConfig
    from plinth.server.main import ACCESS_LOG_ENV, CONFIG_ENV

    config = ServerConfig.load(config_path, Settings.from_env())
    # plinth's own access log (uvicorn's line, written off the event loop); info and debug show it
    logged = not no_access_log and log_level in ("info", "debug")
    config = dataclasses.replace(config, access_log=logged)
    processes = workers or config.workers
    _check_tls(ssl_certfile, ssl_keyfile)
    check_port(host, port)
    if init_admin:
        _init_admin(config)
    scheme = "https" if ssl_certfile else "http"
    plural = "s" if processes > 1 else ""
    store = safe_url(config.store_url)
    say(f"plinth server on {scheme}://{host}:{port} over {store} ({processes} worker{plural})")
    if processes > 1:
        if config_path is not None:
            os.environ[CONFIG_ENV] = os.path.abspath(config_path)
        os.environ[ACCESS_LOG_ENV] = "1" if logged else "0"
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="plinth-server-metrics-")
        target: object = "plinth.server.main:app"
    else:
        from plinth.server.app import create_app

        target = create_app(config)
    fast = (
        importlib.util.find_spec("uvloop") is not None and importlib.util.find_spec("httptools") is not None
    )
    uvicorn.run(
        target,  # type: ignore[arg-type]
        factory=processes > 1,
        host=host,
        port=port,
        workers=processes,
        loop="uvloop" if fast else "auto",
        http="httptools" if fast else "auto",
        log_level=log_level,
        access_log=False,  # the app keeps its own (see above)
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        timeout_graceful_shutdown=30,
    )


def _init_admin(config: ServerConfig) -> None:
    from plinth.server.bootstrap import init_admin

    info, secret = init_admin(config)
    say(f"Superuser token {info.name!r} for {info.principal} (shown this once; keep it secret):")
    click.echo(secret)
    sys.stdout.flush()  # before the server's own output, even into a pipe


def _check_tls(certfile: str | None, keyfile: str | None) -> None:
    if (certfile is None) != (keyfile is None):
        raise ConfigError(
            "TLS needs both --ssl-certfile and --ssl-keyfile (PEM files); give both or neither."
        )
    for option, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if path is not None and not os.path.isfile(path):
            raise ConfigError(f"{option} {path!r}: no such file.")


def check_port(host: str, port: int) -> None:
    """ConfigError when `host:port` cannot be listened on (in use, or not an address of this host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} is not an address of this machine: {exc.strerror}.") from exc
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"Port {port} on {host} is in use; stop what listens there or pick another with --port."
                ) from exc
            raise ConfigError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from exc
