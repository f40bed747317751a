"""Who is asking: principals, their tokens, workspaces and memberships. Plain values, no IO."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from plinth.core.access import RIGHTS, Right, Role


class PrincipalKind(enum.StrEnum):
    """A person (from SSO, or created by an admin) or a machine."""

    USER = "user"
    SERVICE = "service"


@dataclass(frozen=True)
class Workspace:
    """A namespace of experiments, datasets, models, flows and deployments."""

    name: str
    created_ms: int
    description: str = ""


@dataclass(frozen=True)
class Member:
    """A principal's role in one workspace."""

    workspace: str
    principal: str
    kind: PrincipalKind
    role: Role


@dataclass(frozen=True)
class TokenInfo:
    """An API token as stored and listed: never its secret (the store keeps only its hash).

    `workspace` is the token's home workspace (what a client works in when PLINTH_WORKSPACE is
    unset); `role`, when set, caps what the token may do there below its principal's own role.
    """

    id: str
    name: str
    principal: str
    kind: PrincipalKind
    workspace: str | None
    role: Role | None
    created_ms: int
    expires_ms: int | None
    last_used_ms: int | None
    revoked_ms: int | None
    created_by: str
    purpose: str = "api"  # "api", "session" (SSO login) or "step" (a flow step's short-lived token)

    def active(self, now_ms: int) -> bool:
        """Neither revoked nor expired at `now_ms`."""
        return self.revoked_ms is None and (self.expires_ms is None or now_ms < self.expires_ms)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: who, through which token, and the role it holds per workspace.

    `roles` are already capped by the token's role where it has one. `superuser` is the
    bootstrap admin (PLINTH_ADMIN_TOKEN, `plinth server --init-admin`): every right everywhere.
    """

    name: str
    kind: PrincipalKind
    token_name: str | None = None
    superuser: bool = False
    roles: Mapping[str, Role] = field(default_factory=dict)
    home_workspace: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller: 'alice' or 'alice (token ci)'."""
        return self.name if self.token_name is None else f"{self.name} (token {self.token_name})"

    def may(self, workspace: str, right: Right) -> bool:
        """Whether this principal holds `right` in `workspace`."""
        if right is Right.PUBLIC or self.superuser:
            return True
        if right is Right.AUTHENTICATED:
            return True
        role = self.roles.get(workspace)
        return role is not None and right in RIGHTS[role]
