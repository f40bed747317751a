"""Browser tests of the web UI: Playwright driving Debian's Chromium (`/usr/bin/chromium`).

- `browser`: one headless Chromium per test process (no browser download: the system's).
- `ui_server`: a team server in a thread over this test's embedded store (PLINTH_HOME), so a
  test fills the store with the public API and then looks at it. By default it serves as
  `plinth ui` does (the local user, every right, no sign-in); `ui_server_factory(local=False)`
  gives a team server with sign-in, whose `.issue(name, role)` makes tokens.
- `page`: a fresh browser context and page per test. Whatever the page logs as a console error
  or throws fails the test at teardown, unless the test allowed it (`console.allow("422")`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from plinth.core.settings import Settings
from plinth.server.config import ServerConfig
from team_servers import ThreadServer, new_admin_token

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.xdist_group("ui")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/test-services.sh (installs Debian's chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


class Console:
    """What a page logged as an error, and the patterns a test expects to see."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        """Let errors matching `pattern` (a regex) pass: a test that provokes a 4xx on purpose."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Any, console: Console, ui_server_factory: Any) -> Iterator[Any]:
    """A fresh browser page. It closes before any server the test started stops (the factory
    is set up first, so torn down last): a request still in flight when the test ends would
    otherwise meet a closed port and log an error."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    opened = context.new_page()
    opened.on("console", lambda m: console.errors.append(_said(m)) if m.type == "error" else None)
    opened.on("pageerror", lambda exc: console.errors.append(f"uncaught: {exc}"))
    yield opened
    context.close()
    assert console.unexpected() == [], "the browser console had errors"


def _said(message: Any) -> str:
    """A console error with the address of the page or file that logged it."""
    where = (message.location or {}).get("url") or ""
    return f"{message.text} (at {where})" if where else message.text


@pytest.fixture
def ui_server_factory() -> Iterator[Callable[..., ThreadServer]]:
    """`ui_server_factory(local=True, **config)`: a server over this test's embedded store."""
    started: list[ThreadServer] = []

    def start(local: bool = True, **config: Any) -> ThreadServer:
        settings = Settings.from_env()  # the test's own home: the same store, artifacts and audit key
        loaded = ServerConfig.load(None, settings, environ={"PLINTH_ADMIN_TOKEN": new_admin_token()})
        server = ThreadServer(
            dataclasses.replace(loaded, local_user=settings.user if local else None, **config)
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def ui_server(ui_server_factory: Callable[..., ThreadServer]) -> ThreadServer:
    return ui_server_factory()


def sign_in(page: Any, server: ThreadServer, token: str) -> None:
    """Sign the page's browser in with an API token, as the login form does."""
    response = page.request.post(
        f"{server.url}/api/v1/ui/session", data={"token": token}, headers={"x-requested-with": "tests"}
    )
    assert response.ok, response.text()
