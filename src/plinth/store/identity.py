"""`IdentityStore`: workspaces, principals, their API tokens and their roles per workspace.

Two implementations: `SqlIdentity` (the default workspace's database, used by the team server
and by admin commands run directly against a SQL store) and the client of the server's admin
API. Tokens are stored as the sha256 of their secret only; the secret is returned once, by
`create_token`. Every mutation is an audit event in the default workspace's chain, naming who
made it (`by`) and never a secret or a hash.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping

from plinth.core.access import Role
from plinth.core.errors import InvalidInput
from plinth.core.identity import Member, PrincipalKind, TokenInfo, Workspace

SUPERUSER_PURPOSE = "superuser"
"""The purpose of a token that holds every right everywhere (`plinth server --init-admin`).
Only server-side code sets it: an admin route must never take a token's purpose from a client."""

PURPOSES = ("api", "session", "step", SUPERUSER_PURPOSE)
"""What a token is for: `api` (made by `plinth tokens create`), `session` (an SSO login), `step`
(a flow step's short-lived token), `superuser` (the bootstrap admin's)."""

TOKEN_PREFIX = "plt_"


def new_secret() -> str:
    """A new token secret: `plt_` and 43 URL-safe characters (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """What the store keeps of a secret: its sha256, hex (secrets are random: no salt needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_principal_name(name: str) -> str:
    """`name` if it can name a user or service account; InvalidInput saying what can otherwise."""
    if not isinstance(name, str) or not _PRINCIPAL.fullmatch(name):
        raise InvalidInput(
            f"{name!r} cannot name a user or service account; use 1-128 letters, digits and "
            "'.', '_', '@', '+', '-', starting with a letter or digit, e.g. 'alice' or 'ci-bot'."
        )
    return name


def check_token_name(name: str) -> str:
    """`name` if it can name a token; InvalidInput saying what can otherwise."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise InvalidInput(
            f"{name!r} cannot name a token; use 1-64 letters, digits and '.', '_', '-', "
            "starting with a letter or digit, e.g. 'ci' or 'laptop'."
        )
    return name


def check_purpose(purpose: str) -> str:
    """`purpose` if it is one of `PURPOSES`; InvalidInput naming them otherwise."""
    if purpose not in PURPOSES:
        raise InvalidInput(f"Unknown token purpose {purpose!r}; use one of: {', '.join(PURPOSES)}.")
    return purpose


class IdentityStore(ABC):
    """Workspaces, principals, API tokens and memberships.

    `by` on every mutation names who made it (a `Principal.actor`), as the audit log records it.
    """

    def close(self) -> None:  # noqa: B027 - nothing to release unless an implementation says so
        """Release what the store holds."""

    # workspaces ----------------------------------------------------------------------------
    @abstractmethod
    def create_workspace(self, name: str, description: str = "", *, by: str) -> Workspace:
        """Create workspace `name`.

        Raises:
            InvalidInput: `name` cannot name a workspace.
            ConflictError: it exists.
        """

    @abstractmethod
    def list_workspaces(self) -> list[Workspace]:
        """Every workspace, `default` included, by name."""

    @abstractmethod
    def workspace_exists(self, name: str) -> bool:
        """Whether workspace `name` exists (`default` always does)."""

    # principals ----------------------------------------------------------------------------
    @abstractmethod
    def ensure_principal(self, name: str, kind: PrincipalKind) -> None:
        """Record user or service account `name` unless it exists.

        Raises:
            InvalidInput: `name` cannot name a principal.
            ConflictError: `name` exists as the other kind.
        """

    @abstractmethod
    def principal_kind(self, name: str) -> PrincipalKind | None:
        """Whether `name` is a user or a service account; None when unknown."""

    # members -------------------------------------------------------------------------------
    @abstractmethod
    def set_member(self, workspace: str, principal: str, kind: PrincipalKind, role: Role, *, by: str) -> None:
        """Give `principal` (recorded as `kind` if new) `role` in `workspace`, replacing its role there.

        Raises:
            NotFound: no such workspace.
            ConflictError: `principal` exists as the other kind.
        """

    @abstractmethod
    def remove_member(self, workspace: str, principal: str, *, by: str) -> None:
        """Take `principal`'s role in `workspace` away.

        Raises:
            NotFound: `principal` has no role there.
        """

    @abstractmethod
    def members(self, workspace: str) -> list[Member]:
        """The members of `workspace`, by principal name."""

    @abstractmethod
    def roles_of(self, principal: str) -> dict[str, Role]:
        """`principal`'s role in each workspace where it has one."""

    # tokens --------------------------------------------------------------------------------
    @abstractmethod
    def create_token(
        self,
        *,
        name: str,
        principal: str,
        kind: PrincipalKind,
        workspace: str | None,
        role: Role | None,
        expires_ms: int | None,
        by: str,
        purpose: str = "api",
    ) -> tuple[TokenInfo, str]:
        """Issue a token for `principal` (recorded as `kind` if new); returns it and its secret,
        which is shown this once: only its hash is kept.

        `workspace` is the token's home workspace; `role`, which needs a workspace, caps what the
        token may do there below its principal's own role, and limits it to that workspace.

        Raises:
            InvalidInput: a name or purpose that cannot be used, a role without a workspace, an
                expiry in the past.
            NotFound: no such workspace.
            ConflictError: `principal` has an active token of that name, or exists as the other kind.
        """

    @abstractmethod
    def list_tokens(self, *, principal: str | None = None, workspace: str | None = None) -> list[TokenInfo]:
        """Tokens (active, expired and revoked), oldest first; never a secret."""

    @abstractmethod
    def revoke_token(self, name: str, *, principal: str | None = None, by: str) -> TokenInfo:
        """Revoke the active token `name` (of `principal`, when given); returns it revoked.

        Raises:
            NotFound: no active token of that name.
            ConflictError: several principals have one; name the principal.
        """

    @abstractmethod
    def token_by_hash(self, digest: str) -> TokenInfo | None:
        """The token whose secret hashes to `digest` (`plinth.access.tokens.hash_secret`), or None."""

    @abstractmethod
    def touch_tokens(self, used: Mapping[str, int]) -> None:
        """Record when tokens were last used: token id -> epoch ms (one batch, never earlier)."""
