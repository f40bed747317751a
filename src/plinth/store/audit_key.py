"""The audit chain's key: PLINTH_AUDIT_KEY, or a key file made once under PLINTH_HOME.

The key belongs to the store but never lives inside it: whoever can rewrite the database cannot
recompute the keyed hashes without it. The key file sits beside the default SQLite database, so
it guards against someone who can edit the database but cannot read PLINTH_HOME (a database
shared with a team, a copy handed on, a backup restored); whoever can read the folder can read
the key. Teams set PLINTH_AUDIT_KEY from a secret store on every process that appends.
"""

from __future__ import annotations

import os
import secrets
import stat
import warnings
from collections.abc import Mapping
from dataclasses import replace

from plinth.core.errors import ConfigError, PlinthWarning
from plinth.core.settings import Settings

KEY_FILE = "audit.key"
MIN_LENGTH = 16


def audit_key_path(settings: Settings) -> str:
    """Where the key file of `settings` lives: `HOME/audit.key`."""
    return os.path.abspath(os.path.join(settings.home, KEY_FILE))


def audit_secret(settings: Settings) -> str:
    """The audit key of `settings`: PLINTH_AUDIT_KEY, else the key file (made 0600 on first use).

    Raises:
        ConfigError: the key is too short, or the key file cannot be read or made.
    """
    if settings.audit_key is not None:
        if len(settings.audit_key) < MIN_LENGTH:
            raise ConfigError(
                f"PLINTH_AUDIT_KEY has {len(settings.audit_key)} characters; use at least {MIN_LENGTH} "
                "random ones, e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`."
            )
        return settings.audit_key
    path = audit_key_path(settings)
    try:
        return _read(path)
    except FileNotFoundError:
        return _create(path)
    except OSError as exc:
        raise _unusable(path, exc) from exc


def with_audit_key(settings: Settings) -> Settings:
    """`settings` carrying their audit key, so every process they travel to keys the chain alike."""
    return settings if settings.audit_key else replace(settings, audit_key=audit_secret(settings))


def audit_key_env(environ: Mapping[str, str]) -> dict[str, str]:
    """{"PLINTH_AUDIT_KEY": key} for workers started from `environ`, which may not see its key file.

    Empty when `environ` cannot be read as settings: the worker reports that itself.
    """
    try:
        return {"PLINTH_AUDIT_KEY": audit_secret(Settings.from_env(environ))}
    except ConfigError:
        return {}


def _read(path: str) -> str:
    with open(path, encoding="ascii") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        key = fh.read().strip()
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(
            PlinthWarning(f"The audit key file {path} can be read by others; run `chmod 600 {path}`."),
            stacklevel=3,
        )
    if len(key) < MIN_LENGTH:
        raise ConfigError(
            f"The audit key file {path} is empty or damaged. Restore it from a backup, or set "
            "PLINTH_AUDIT_KEY to the store's key (a new key cannot verify the events already written)."
        )
    return key


def _create(path: str) -> str:
    """Make the key file at once, complete: written under a unique name, then linked into place,
    so a process racing this one either wins or reads the winner's key (never a half-written file)."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        staging = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(staging, path)
            except FileExistsError:
                pass  # another process made it first: its key is the key
        finally:
            os.unlink(staging)
        return _read(path)
    except OSError as exc:
        raise _unusable(path, exc) from exc


def _unusable(path: str, exc: OSError) -> ConfigError:
    return ConfigError(
        f"Cannot read or create the audit key file {path}: {exc.strerror or exc}. Make PLINTH_HOME "
        "writable, or set PLINTH_AUDIT_KEY to the store's audit key."
    )
