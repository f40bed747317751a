"""The `[oidc]` table of `server.toml`: the identity provider, and group claims to workspace roles.

    [oidc]
    issuer = "https://login.example.com/realms/acme"
    client_id = "plinth"
    client_secret_env = "PLINTH_OIDC_SECRET"    # or client_secret = "…"
    scopes = ["openid", "profile", "email", "groups"]
    groups_claim = "groups"
    username_claim = "preferred_username"       # else email, else sub
    session_hours = 12

    [[oidc.groups]]
    group = "ml-team"
    workspace = "vision"
    role = "editor"

Memberships of the workspaces named in `[[oidc.groups]]` belong to single sign-on: at each
login a user's role there is set from their groups, and removed when no group maps to it any
more. Other workspaces are left to `plinth members`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plinth.core.access import RIGHTS, Role, check_workspace_name
from plinth.core.errors import ConfigError, PlinthError

_KEYS = {
    "issuer",
    "client_id",
    "client_secret",
    "client_secret_env",
    "state_secret",
    "state_secret_env",
    "scopes",
    "groups_claim",
    "username_claim",
    "session_hours",
    "ca_bundle",
    "groups",
}


@dataclass(frozen=True)
class GroupRole:
    """One `[[oidc.groups]]` entry: members of `group` get `role` in `workspace`."""

    group: str
    workspace: str
    role: Role


@dataclass(frozen=True)
class OidcConfig:
    """How the team server signs people in through an OpenID Connect provider.

    Args:
        issuer: the provider's issuer URL (its discovery document is under
            `/.well-known/openid-configuration`); ID tokens must name it exactly.
        client_id: this server's client id at the provider.
        client_secret: its secret (None for a public client).
        scopes: scopes asked for; `openid` is always among them.
        groups_claim: the ID token or userinfo claim listing the user's groups.
        username_claim: the claim naming the user; `email`, then `sub`, when it is missing.
        session_hours: how long a login's session token lives.
        groups: group-to-role mappings, in file order.
        state_secret: key material sealing login state and one-time codes; every worker
            must share it (default: derived from `client_secret`).
        ca_bundle: a PEM file of CAs to trust for the provider (besides the system's).
    """

    issuer: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ("openid", "profile", "email", "groups")
    groups_claim: str = "groups"
    username_claim: str = "preferred_username"
    session_hours: float = 12.0
    groups: tuple[GroupRole, ...] = ()
    state_secret: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> OidcConfig:
        """The `[oidc]` table `raw` as a config; `*_env` keys are read from `environ`.

        Raises:
            ConfigError: a key is unknown, missing or of the wrong type, naming it.
        """
        env = os.environ if environ is None else environ
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise ConfigError(
                f"Unknown [oidc] setting(s) {', '.join(unknown)}; use: {', '.join(sorted(_KEYS))}."
            )
        scopes = _strings(raw, "scopes", ["openid", "profile", "email", "groups"])
        hours = raw.get("session_hours", 12)
        if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= 24 * 90:
            raise ConfigError(f"[oidc] session_hours must be a number of hours in (0, 2160], not {hours!r}.")
        return cls(
            issuer=_text(raw, "issuer").rstrip("/"),
            client_id=_text(raw, "client_id"),
            client_secret=_secret(raw, env, "client_secret"),
            scopes=tuple(dict.fromkeys(["openid", *scopes])),
            groups_claim=_text(raw, "groups_claim", "groups"),
            username_claim=_text(raw, "username_claim", "preferred_username"),
            session_hours=float(hours),
            groups=tuple(_group(entry, i) for i, entry in enumerate(_entries(raw))),
            state_secret=_secret(raw, env, "state_secret"),
            ca_bundle=_text(raw, "ca_bundle", "") or None,
        )

    @property
    def managed_workspaces(self) -> frozenset[str]:
        """The workspaces whose memberships single sign-on sets and removes."""
        return frozenset(g.workspace for g in self.groups)

    def roles_for(self, groups: Iterable[str]) -> dict[str, Role]:
        """The role per workspace that `groups` earn.

        Where several entries match one workspace, a role holding all the rights of another
        wins over it; between roles that do not nest (editor, auditor), the first in file order.
        """
        have = set(groups)
        roles: dict[str, Role] = {}
        for entry in self.groups:
            if entry.group not in have:
                continue
            current = roles.get(entry.workspace)
            if current is None or RIGHTS[entry.role] > RIGHTS[current]:
                roles[entry.workspace] = entry.role
        return roles


def _text(raw: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if value is None:
        raise ConfigError(f"[oidc] {key} is missing; set it in the server config (see docs/sso.md).")
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise ConfigError(f"[oidc] {key} must be a non-empty string, not {value!r}.")
    return value.strip()


def _secret(raw: Mapping[str, Any], env: Mapping[str, str], key: str) -> str | None:
    if key in raw and f"{key}_env" in raw:
        raise ConfigError(f"[oidc] sets both {key} and {key}_env; keep one.")
    if f"{key}_env" in raw:
        name = _text(raw, f"{key}_env")
        value = env.get(name)
        if not value:
            raise ConfigError(f"[oidc] {key}_env names {name}, which is not set in the server's environment.")
        return value
    return _text(raw, key) if key in raw else None


def _strings(raw: Mapping[str, Any], key: str, default: list[str]) -> list[str]:
    value = raw.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f'[oidc] {key} must be a list of strings, e.g. ["openid", "email"], not {value!r}.')
    return value


def _entries(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    entries = raw.get("groups", [])
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ConfigError(
            '[[oidc.groups]] must be tables like group = "ml-team", workspace = "vision", role = "editor".'
        )
    return entries


def _group(entry: Mapping[str, Any], index: int) -> GroupRole:
    where = f"[[oidc.groups]] entry {index + 1}"
    extra = sorted(set(entry) - {"group", "workspace", "role"})
    if extra:
        raise ConfigError(f"{where} has unknown key(s) {', '.join(extra)}; use group, workspace and role.")
    values = {}
    for key in ("group", "workspace", "role"):
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where} needs {key} as a non-empty string.")
        values[key] = value.strip()
    try:
        return GroupRole(
            values["group"], check_workspace_name(values["workspace"]), Role.parse(values["role"])
        )
    except PlinthError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
