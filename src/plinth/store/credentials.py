"""Tokens `plinth login` keeps per team server, in `PLINTH_CONFIG_DIR/credentials.json`.

The file is readable by its owner only (0600, in a 0700 folder) and is replaced atomically
(a temporary file renamed over it), so a crash never leaves half a file and no other user
ever sees a token. Servers are keyed by their normalized URL: `HTTPS://Host:443/api/v1/`
and `https://host` are the same server.

    {"version": 1,
     "servers": {"https://plinth.example.com": {"token": "plt_…", "name": "login-3fa2", "saved_ms": …}}}
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from plinth.core.errors import ConfigError, InvalidInput

FILE_NAME = "credentials.json"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_server_url(url: str) -> str:
    """`url` as the key of its server: scheme and host lowercased, default port and a trailing
    `/` or `/api/v1` dropped.

    Raises:
        InvalidInput: `url` is not an http(s) URL with a host.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise InvalidInput(f"{url!r} is not a team server URL; use e.g. https://plinth.example.com.")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path.rstrip("/")
    if path.endswith("/api/v1"):
        path = path[: -len("/api/v1")]
    return f"{scheme}://{netloc}{path.rstrip('/')}"


def credentials_path(config_dir: str | os.PathLike[str]) -> Path:
    """Where the credentials of `config_dir` live."""
    return Path(config_dir) / FILE_NAME


def save_token(
    config_dir: str | os.PathLike[str], server_url: str, token: str, *, name: str | None = None
) -> Path:
    """Keep `token` for `server_url`, replacing the one kept before; returns the file's path.

    Args:
        config_dir: the folder (`Settings.config_dir`); created 0700 when missing.
        server_url: the team server, e.g. `https://plinth.example.com`.
        token: the secret to send as `Authorization: Bearer …`.
        name: the token's name on the server (shown by `plinth tokens list`), if known.

    Raises:
        InvalidInput: `server_url` is not an http(s) URL, or `token` is empty.
        ConfigError: the existing file cannot be read as credentials.
    """
    if not token or not token.strip():
        raise InvalidInput("The token is empty; pass the secret `plinth tokens create` printed.")
    key = normalize_server_url(server_url)
    servers = _read(config_dir)
    entry: dict[str, Any] = {"token": token.strip(), "saved_ms": int(time.time() * 1000)}
    if name:
        entry["name"] = name
    servers[key] = entry
    return _write(config_dir, servers)


def load_token(config_dir: str | os.PathLike[str] | None, server_url: str) -> str | None:
    """The token kept for `server_url`, or None when there is none (or no `config_dir`).

    Raises:
        ConfigError: the file exists but cannot be read as credentials.
    """
    if config_dir is None:
        return None
    entry = _read(config_dir).get(normalize_server_url(server_url))
    token = entry.get("token") if isinstance(entry, dict) else None
    return token if isinstance(token, str) and token else None


def remove_token(config_dir: str | os.PathLike[str], server_url: str) -> bool:
    """Forget the token kept for `server_url`; whether there was one."""
    key = normalize_server_url(server_url)
    servers = _read(config_dir)
    if servers.pop(key, None) is None:
        return False
    _write(config_dir, servers)
    return True


def saved_entry(config_dir: str | os.PathLike[str], server_url: str) -> dict[str, Any] | None:
    """What is kept for `server_url` (token, name, saved_ms), or None."""
    entry = _read(config_dir).get(normalize_server_url(server_url))
    return dict(entry) if isinstance(entry, dict) else None


def _read(config_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = credentials_path(config_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror or exc}; check its permissions.") from exc
    try:
        data = json.loads(text)
        servers = data["servers"]
        if not isinstance(servers, dict):
            raise TypeError("servers is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a plinth credentials file ({exc}); delete it and run `plinth login` again."
        ) from exc
    return dict(servers)


def _write(config_dir: str | os.PathLike[str], servers: dict[str, Any]) -> Path:
    folder = Path(config_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / FILE_NAME
    text = json.dumps({"version": 1, "servers": servers}, indent=2, sort_keys=True) + "\n"
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".credentials-", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
