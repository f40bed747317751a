"""`plinth login` and `plinth logout`: keep (or drop) a token for a team server.

`plinth login URL` signs in through the server's single sign-on: it opens the browser at the
server's login page and waits on a one-shot listener at `http://127.0.0.1:<free port>/callback`
for the server to hand back a one-time code; with `--no-browser` it prints the URL and reads
the code the page shows. Either way the code, with the PKCE verifier only this process knows,
buys a session token, kept 0600 under PLINTH_CONFIG_DIR (`plinth.store.credentials`).
`--token` keeps a token made by `plinth tokens create` instead (for CI).
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import sys
import threading
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import click

from plinth.cli.render import say
from plinth.core.errors import InvalidInput, Unauthorized
from plinth.core.settings import Settings

if TYPE_CHECKING:
    from plinth.store.http import ServerClient

LOGIN_WAIT_S = 300.0


@click.command("login", short_help="Sign in to a team server and keep the token.")
@click.argument("url", required=False)
@click.option("--no-browser", is_flag=True, help="Print the sign-in URL and read the code it shows back.")
@click.option(
    "--token",
    metavar="TOKEN",
    help="Keep this API token instead of signing in ('-' reads it from stdin), e.g. in CI.",
)
def login(url: str | None, no_browser: bool, token: str | None) -> None:
    """Sign in to the team server at URL (default: PLINTH_STORE) and keep the credential.

    Opens the browser at the server's single sign-on; with --no-browser, prints the URL to open
    on any machine and asks for the one-time code the page then shows. The token is kept in
    PLINTH_CONFIG_DIR/credentials.json (readable by you only) and used whenever PLINTH_STORE
    names this server and PLINTH_TOKEN is unset.
    """
    from plinth.store.credentials import save_token

    settings = Settings.from_env()
    server = server_url(url, settings)
    name: str | None = None
    if token is not None:
        secret = sys.stdin.readline().strip() if token == "-" else token.strip()
    else:
        secret, name = sign_in(client(server, settings, None), no_browser=no_browser)
    me = client(server, settings, secret).request("GET", "/whoami").json()
    path = save_token(config_dir(settings), server, secret, name=name or me.get("token_name"))
    roles = ", ".join(f"{ws}: {role}" for ws, role in sorted(me.get("roles", {}).items()))
    if me.get("superuser"):
        roles = "superuser"
    say(f"Logged in to {server} as {me['name']} ({roles or 'no role yet'}).")
    say(f"Token kept in {path}.")


def server_url(url: str | None, settings: Settings) -> str:
    """The server to log in to: `url`, else PLINTH_STORE when it names a team server."""
    chosen = url or (settings.store_url if settings.is_remote else None)
    if not chosen:
        raise InvalidInput(
            "Name the team server, e.g. `plinth login https://plinth.example.com`, or set PLINTH_STORE."
        )
    if urlsplit(chosen).scheme.lower() not in ("http", "https"):
        raise InvalidInput(f"{chosen!r} is not a team server URL; use http(s)://host[:port].")
    return chosen.rstrip("/")


def client(server: str, settings: Settings, token: str | None) -> ServerClient:
    """A client of `server` sending `token` (None: none)."""
    from plinth.store.http import ServerClient

    return ServerClient(server, token=token, ca_bundle=settings.ca_bundle)


def sign_in(api: ServerClient, *, no_browser: bool) -> tuple[str, str]:
    """Sign in through the browser; returns the session token and its name."""
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    base = str(api.http.base_url).rstrip("/")
    if no_browser:
        say("Open this URL in a browser, sign in, then paste the code it shows:")
        say(f"  {base}/auth/login?{urlencode({'code_challenge': challenge})}")
        code = click.prompt("Code", prompt_suffix=": ").strip()
    else:
        code = _code_from_browser(base, challenge)
    answer = api.request(
        "POST", "/auth/token", json={"code": code, "code_verifier": verifier}, idempotent=False
    ).json()
    return str(answer["token"]), str(answer["name"])


def _code_from_browser(base: str, challenge: str) -> str:
    """Open the browser at the login page; the code the server redirects to our listener with."""
    listener = CallbackListener()
    try:
        url = f"{base}/auth/login?{urlencode({'cli_port': listener.port, 'code_challenge': challenge})}"
        say("Opening the browser to sign in; if it does not open, visit:")
        say(f"  {url}")
        webbrowser.open(url)
        return listener.wait(LOGIN_WAIT_S)
    finally:
        listener.close()


class CallbackListener:
    """A one-shot HTTP listener on 127.0.0.1 (a free port) for `/callback?code=…`."""

    def __init__(self) -> None:
        self.code: str | None = None
        self._got = threading.Event()
        self._server = HTTPServer(("127.0.0.1", 0), self._handler())
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.2,), daemon=True)
        self._thread.start()

    def wait(self, timeout_s: float) -> str:
        """The code, once the browser brings it.

        Raises:
            Unauthorized: no code came within `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        while not self._got.wait(0.5) or self.code is None:
            if time.monotonic() > deadline:
                raise Unauthorized(
                    f"No sign-in came back within {timeout_s:.0f} s; run `plinth login` again."
                )
        return self.code

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                code = parse_qs(parts.query).get("code", [""])[0]
                if parts.path != "/callback" or not code or listener._got.is_set():
                    self.send_error(404)
                    return
                listener.code = code
                listener._got.set()
                self._page("Signed in. You can close this tab and go back to the terminal.")

            def _page(self, text: str) -> None:
                body = f"<!doctype html><meta charset='utf-8'><title>plinth</title><p>{html.escape(text)}</p>"
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body.encode())))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: Any) -> None:  # keeps the code out of logs
                return

        return Handler


def config_dir(settings: Settings) -> str:
    """Where credentials are kept (PLINTH_CONFIG_DIR); InvalidInput when there is none."""
    if not settings.config_dir:
        raise InvalidInput("No folder to keep credentials in; set PLINTH_CONFIG_DIR.")
    return settings.config_dir
