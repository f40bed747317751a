"""Where the web UI shows an object: the address of a run, model version, flow run or dataset page.

The UI's root is found, in order:

1. the address given to `plinth.notebook.register(ui_url=...)`;
2. `PLINTH_UI_URL` (`Settings.ui_url`), e.g. `http://127.0.0.1:5050` where `plinth ui` runs;
3. the team server the store is (`PLINTH_STORE=https://plinth.example.com`): it serves the UI
   at its root, so its address without `/api/v1` and without any credentials is the UI's;
4. else none, and outputs show no links.

Settings are those of the backend in use (`plinth.configure(...)`), else `Settings.from_env()`.
Page addresses follow the UI's router (`plinth/ui/static/app.js`): `/runs/{id}`,
`/experiments/{name}`, `/models/{name}/versions/{n}`, `/flows/{id}`, and the lineage page for
a dataset version. A page opens in the browser's current workspace (the UI keeps it per tab).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from plinth.core.errors import ConfigError
from plinth.core.settings import Settings
from plinth.tracking import context

API_SUFFIX = "/api/v1"
"""What a team server's store URL may end with (its REST API); the UI is at the root above it."""

_chosen: str | None = None
"""The address `register(ui_url=...)` gave, if any."""


def choose(url: str | None) -> None:
    """Use `url` as the UI's root from now on (None: go back to the settings).

    Raises:
        ConfigError: `url` is not an http(s) address.
    """
    global _chosen
    _chosen = None if url is None else _checked(url, "register(ui_url=...)")


def ui_root(settings: Settings | None = None) -> str | None:
    """The web UI's root address without a trailing slash, or None when none is known."""
    if _chosen is not None:
        return _chosen
    found = settings or _settings()
    configured = found.ui_url  # PLINTH_UI_URL
    if configured:
        return _checked(configured, "PLINTH_UI_URL")
    if found.is_remote and found.store_url:
        return _without_credentials(found.store_url.rstrip("/").removesuffix(API_SUFFIX))
    return None


def page(path: str, settings: Settings | None = None) -> str | None:
    """The UI's address of `path` (starting with '/'), or None when no UI is known."""
    root = ui_root(settings)
    return None if root is None else root + path


def run_url(run_id: str) -> str | None:
    """The run's page."""
    return page(f"/runs/{quote(run_id, safe='')}")


def experiment_url(name: str) -> str | None:
    """The experiment's runs table."""
    return page(f"/experiments/{quote(name, safe='/')}")


def model_url(name: str) -> str | None:
    """The registered model's page (its versions and aliases)."""
    return page(f"/models/{quote(name, safe='/')}")


def model_version_url(name: str, version: int) -> str | None:
    """One model version's page."""
    return page(f"/models/{quote(name, safe='')}/versions/{version}")


def flow_run_url(run_id: str) -> str | None:
    """The flow run's page (graph, timing, steps)."""
    return page(f"/flows/{quote(run_id, safe='')}")


def lineage_url(kind: str, ident: str) -> str | None:
    """The lineage page of a dataset, run, model or request (`kind` as the page names it)."""
    return page("/lineage?" + urlencode({"kind": kind, "id": ident}))


def dataset_url(ref: str) -> str | None:
    """A dataset version ('NAME/N'): the UI shows it on its lineage page."""
    return lineage_url("dataset", ref)


def costs_url() -> str | None:
    """The costs page."""
    return page("/costs")


def _settings() -> Settings:
    """The settings of the backend in use, else those of the environment (opens nothing)."""
    current = context.current()
    return current.settings if current is not None else Settings.from_env()


def _checked(url: str, source: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{source} is {url!r}, not an http(s) address; give the web UI's address, "
            "e.g. http://127.0.0.1:5050 where `plinth ui` runs."
        )
    return _without_credentials(url.strip().rstrip("/"))


def _without_credentials(url: str) -> str:
    """`url` without user, password, query or fragment: a notebook output is shared, secrets are not."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
