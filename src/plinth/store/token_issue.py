"""Issue an API token the way `plinth tokens create` does, on any identity store.

Without a user, the token's name is also a service account's: the account is made if new,
given the role in the workspace, and the token is issued for it (`--name ci-bot` makes service
account `ci-bot`). With a user, the token is that user's, capped to the role in the workspace;
a user who does not exist yet is created and given that role. On a team server each step is
checked there: an admin of the workspace may do all of it, anyone else only issue a token for
itself up to its own role.
"""

from __future__ import annotations

from dataclasses import dataclass

from plinth.core.access import Role
from plinth.core.errors import ConflictError
from plinth.core.identity import PrincipalKind, TokenInfo
from plinth.store.identity import IdentityStore


@dataclass(frozen=True)
class IssuedToken:
    """A new token: what is stored about it, and its secret, shown this once."""

    info: TokenInfo
    secret: str
    created_principal: bool


def issue_token(
    identity: IdentityStore,
    *,
    name: str,
    workspace: str,
    role: Role,
    user: str | None = None,
    expires_ms: int | None = None,
    by: str,
) -> IssuedToken:
    """Issue token `name` in `workspace` with `role`: for service account `name`, or for `user`.

    Args:
        identity: where principals, memberships and tokens are kept.
        name: the token's name (and the service account's, without `user`).
        workspace: the token's home workspace; its role applies there.
        role: the service account's role in `workspace`, or the cap on `user`'s own role.
        user: issue the token for this user instead of a service account.
        expires_ms: when the token stops working (epoch ms); None for never.
        by: who the audit log names (a team server records its caller instead).

    Raises:
        ConflictError: `name` is a user (without `user`) or the principal already has an active
            token of that name.
        Forbidden: (team server) the caller may not issue this token.
    """
    principal = name if user is None else user
    known = identity.principal_kind(principal)
    if user is None and known is PrincipalKind.USER:
        raise ConflictError(
            f"{name!r} is a user, not a service account; issue a token for that user with "
            f"--user {name}, or pick another --name."
        )
    kind = known or (PrincipalKind.SERVICE if user is None else PrincipalKind.USER)
    created = known is None
    if created:
        identity.ensure_principal(principal, kind)
    if created or user is None:
        identity.set_member(workspace, principal, kind, role, by=by)
    info, secret = identity.create_token(
        name=name,
        principal=principal,
        kind=kind,
        workspace=workspace,
        role=role,
        expires_ms=expires_ms,
        by=by,
    )
    return IssuedToken(info=info, secret=secret, created_principal=created)
