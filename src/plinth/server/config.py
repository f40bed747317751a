"""The team server's configuration: a `server.toml` file, overridden by the environment.

Read once, when the server starts (`plinth server --config server.toml`, and again in each
worker process); the app factory takes the result (`create_app(config)`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from plinth.core.errors import ConfigError
from plinth.core.settings import Settings

DEFAULT_MAX_BODY = 64 * 2**20

ENV = {
    "store": "PLINTH_STORE",
    "artifacts": "PLINTH_ARTIFACTS",
    "public_url": "PLINTH_PUBLIC_URL",
    "cors_origins": "PLINTH_CORS_ORIGINS",
    "max_body_bytes": "PLINTH_MAX_BODY_BYTES",
    "metrics_open": "PLINTH_METRICS_OPEN",
    "admin_token": "PLINTH_ADMIN_TOKEN",
    "workers": "PLINTH_SERVER_WORKERS",
    "presign": "PLINTH_PRESIGN",
    "allow_resume": "PLINTH_ALLOW_RESUME",
}
"""The variable that overrides each key of the file."""

KEYS = frozenset(ENV) | {"oidc"}


@dataclass(frozen=True)
class ServerConfig:
    """What `plinth server` serves and how.

    Keys of `server.toml` (each also set by the variable named; the variable wins):

        store = "postgresql+psycopg://plinth@db/plinth"   # PLINTH_STORE; default the embedded SQLite
        artifacts = "s3://bucket/plinth"                  # PLINTH_ARTIFACTS; default HOME/artifacts
        public_url = "https://plinth.example.com"         # PLINTH_PUBLIC_URL: the URL clients and
                                                          # SSO redirects use behind a proxy
        cors_origins = ["https://app.example.com"]        # PLINTH_CORS_ORIGINS (comma-separated);
                                                          # empty: no CORS headers at all
        max_body_bytes = 67108864                         # PLINTH_MAX_BODY_BYTES: largest request
                                                          # body (artifact chunks have their own)
        metrics_open = false                              # PLINTH_METRICS_OPEN: /metrics without a token
        workers = 1                                       # PLINTH_SERVER_WORKERS (--workers wins)
        admin_token = "..."                               # PLINTH_ADMIN_TOKEN: prefer the variable
        presign = true                                    # PLINTH_PRESIGN: artifacts on S3 move
                                                          # through presigned URLs, not the server
        allow_resume = false                              # PLINTH_ALLOW_RESUME: the web UI may resume
                                                          # a failed flow run in the server

        [oidc]                                            # single sign-on (see docs/sso.md)
        issuer = "https://login.example.com"
        client_id = "plinth"
        [[oidc.groups]]
        group = "ml-team"
        workspace = "vision"
        role = "editor"

    Args:
        store_url: the default workspace's metadata store URL (other workspaces sit beside it).
        artifacts_url: the artifact store URL, shared by every workspace.
        public_url: the server's URL as clients see it; None: as the request arrived.
        cors_origins: origins a browser may call the API from; empty turns CORS off.
        max_body_bytes: largest request body outside the artifact routes (413 beyond).
        metrics_open: serve /metrics without a token (for a scraper inside the network).
        admin_token: a superuser token (bootstrap); compared in constant time, never logged.
        oidc: the raw `[oidc]` table; empty when single sign-on is off.
        workers: server processes.
        presign: hand clients presigned S3 URLs for artifact bytes (artifacts on S3 only).
        local_user: `plinth ui`: every request without a token is this user, with every right
            (the server then listens on loopback only); None on a team server.
        allow_resume: the web UI may resume a failed flow run in the server's process (else the
            page shows the command to run).
        access_log: log one line per request on standard output (`plinth server` sets it
            unless told --no-access-log or a level above info).
        settings: the rest of plinth's settings (audit key, S3 options, home), with `store_url`
            and `artifacts_url` above applied.
    """

    store_url: str
    artifacts_url: str
    settings: Settings = field(repr=False)
    public_url: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY
    metrics_open: bool = False
    admin_token: str | None = field(default=None, repr=False)
    oidc: Mapping[str, Any] = field(default_factory=dict)
    workers: int = 1
    presign: bool = False
    local_user: str | None = None
    allow_resume: bool = False
    access_log: bool = False

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> ServerConfig:
        """The configuration in the TOML file at `path` (None: none), overridden by `environ`.

        Args:
            path: a `server.toml` file; None uses the environment and defaults alone.
            settings: plinth's settings (PLINTH_STORE and PLINTH_ARTIFACTS already read).
            environ: the variables to read; default `os.environ`.

        Raises:
            ConfigError: the file is missing, is not TOML, has an unknown key, or a value of the
                wrong type; the message names the key.
        """
        env = os.environ if environ is None else environ
        doc = _read(path) if path is not None else {}
        unknown = sorted(set(doc) - KEYS)
        if unknown:
            raise ConfigError(
                f"Unknown key {unknown[0]!r} in {os.fspath(path or '')}; "
                f"the keys are: {', '.join(sorted(KEYS))}."
            )
        values = {**doc, **{key: env[var] for key, var in ENV.items() if env.get(var)}}
        if settings.store_url:
            values["store"] = settings.store_url
        if settings.artifacts_url:
            values["artifacts"] = settings.artifacts_url
        return _build(values, settings)


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"No server config at {os.fspath(path)!r}; check the --config path.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read the server config {os.fspath(path)!r}: {exc.strerror}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The server config {os.fspath(path)!r} is not valid TOML: {exc}.") from exc


def _build(values: Mapping[str, Any], settings: Settings) -> ServerConfig:
    store = _text(values, "store")
    artifacts = _text(values, "artifacts")
    if store is not None and store.split(":", 1)[0].lower() in ("http", "https"):
        raise ConfigError(
            f"store = {store!r} names a team server; the server itself needs a database URL "
            "(sqlite:///… or postgresql+psycopg://…)."
        )
    resolved = replace(settings, store_url=store or settings.store_url, artifacts_url=artifacts)
    return ServerConfig(
        store_url=resolved.resolved_store_url,
        artifacts_url=resolved.resolved_artifacts_url,
        settings=resolved,
        public_url=_url(values),
        cors_origins=_origins(values),
        max_body_bytes=_int(values, "max_body_bytes", DEFAULT_MAX_BODY),
        metrics_open=_bool(values, "metrics_open"),
        admin_token=_text(values, "admin_token"),
        oidc=_table(values, "oidc"),
        workers=_int(values, "workers", 1),
        presign=_bool(values, "presign"),
        allow_resume=_bool(values, "allow_resume"),
    )


def _problem(key: str, expected: str, got: object) -> ConfigError:
    return ConfigError(f"Server config {key} (or {ENV.get(key, key)}): expected {expected}, got {got!r:.80}.")


def _text(values: Mapping[str, Any], key: str) -> str | None:
    value = values.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _problem(key, "a string", value)
    return value


def _url(values: Mapping[str, Any]) -> str | None:
    value = _text(values, "public_url")
    if value is not None and not value.startswith(("http://", "https://")):
        raise _problem("public_url", "an http:// or https:// URL", value)
    return value.rstrip("/") if value else None


def _origins(values: Mapping[str, Any]) -> tuple[str, ...]:
    value = values.get("cors_origins", ())
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _problem("cors_origins", "a list of origins such as ['https://app.example.com']", value)
    for origin in value:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise _problem("cors_origins", "origins such as 'https://app.example.com'", origin)
    return tuple(value)


def _int(values: Mapping[str, Any], key: str, default: int) -> int:
    value = values.get(key, default)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise _problem(key, "a whole number", value) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _problem(key, "a whole number of at least 1", value)
    return value


def _bool(values: Mapping[str, Any], key: str) -> bool:
    value = values.get(key, False)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
    if not isinstance(value, bool):
        raise _problem(key, "true or false", value)
    return value


def _table(values: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = values.get(key, {})
    if not isinstance(value, dict):
        raise _problem(key, "a table ([oidc] with issuer, client_id, ...)", value)
    return value
