"""Who is asking, and may they: one module for the team server and a model server with `--auth`.

`Authorizer.authenticate` turns a bearer secret into a `Principal`; `authorize` checks that the
principal's role in a workspace grants a `Right`. A secret's outcome (the principal, or why it
was refused) is cached by the secret's sha256 for `cache_s` (5 s by default), so a request
with a known token costs a hash and a dictionary lookup, and a revoked token stops working
within `cache_s` on every worker process. Unknown tokens are cached too, and every failure,
cached or not, counts toward the client's back-off (`backoff.py`).

Role capping: a token with a role acts only in its own workspace, with the largest role whose
rights lie within both its principal's role there and the token's role. Roles nest, so that is
the lesser of the two; for two roles beside each other (`predictor` and `viewer`) no role is
within both and the token may do nothing there.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from plinth.access.backoff import Backoff
from plinth.access.tokens import hash_secret, same_secret
from plinth.core.access import RIGHTS, Right, Role
from plinth.core.errors import Forbidden, PlinthError, Unauthorized
from plinth.core.identity import Principal, PrincipalKind
from plinth.core.ids import now_ms
from plinth.store.identity import SUPERUSER_PURPOSE, IdentityStore

ADMIN = "admin"
"""The name of the principal the server's admin token (PLINTH_ADMIN_TOKEN) authenticates as."""

_AGAIN = "create a new one with `plinth tokens create` or log in with `plinth login`."
NO_TOKEN = "This request needs a token; set PLINTH_TOKEN to an API token or run `plinth login`."
UNKNOWN_TOKEN = f"The token is not known to this server; check PLINTH_TOKEN, or {_AGAIN}"
_MAX_CACHED = 10_000  # past this many secrets, expired outcomes are dropped (then all)


class TokenResolver(Protocol):
    """Finds the principal a secret stands for."""

    def resolve(self, secret: str) -> Principal | None:
        """The principal of `secret`; None when no token has it.

        Raises:
            Unauthorized: the token was revoked or has expired (the message says which).
        """


class Authorizer:
    """Authenticates bearer secrets (cached) and authorizes principals' rights per workspace.

    Args:
        resolver: finds the principal of a secret not in the cache.
        admin_token: the server's bootstrap secret (PLINTH_ADMIN_TOKEN), compared in constant
            time; it authenticates as the superuser `admin`.
        cache_s: how long a secret's outcome is kept; a revocation takes effect within it.
        clock: seconds on a monotonic clock (tests pass their own).
        backoff: counts failed authentications per client (default: 5 in 60 s, then 1 s doubling).
        anonymous: who a request without a secret is (`plinth ui`: the local user, on loopback
            only); None: such a request is refused.
    """

    def __init__(
        self,
        resolver: TokenResolver,
        *,
        admin_token: str | None = None,
        cache_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
        anonymous: Principal | None = None,
    ) -> None:
        self.resolver = resolver
        self.anonymous = anonymous
        self.cache_s = cache_s
        self.backoff = backoff if backoff is not None else Backoff(clock=clock)
        self._admin = admin_token or None
        self._admin_principal = Principal(name=ADMIN, kind=PrincipalKind.SERVICE, superuser=True)
        self._clock = clock
        self._cache: dict[bytes, tuple[float, Principal | str]] = {}
        self._lock = threading.Lock()

    def authenticate(self, secret: str | None, client: str) -> Principal:
        """The principal `secret` stands for.

        Args:
            secret: the bearer token, None when the request had none.
            client: the caller's address, which failures are counted against.

        Raises:
            Unauthorized: no secret, or an unknown, revoked or expired one (the message says
                which and what to do).
            TooManyAttempts: `client` failed too often lately.
        """
        if not secret and self.anonymous is not None:
            return self.anonymous
        self.backoff.check(client)
        if not secret:
            raise Unauthorized(NO_TOKEN)
        if self._admin is not None and same_secret(secret, self._admin):
            self.backoff.succeeded(client)
            return self._admin_principal
        outcome = self._outcome(secret)
        if isinstance(outcome, Principal):
            self.backoff.succeeded(client)
            return outcome
        self.backoff.failed(client)
        raise Unauthorized(outcome)

    def lookup(self, secret: str) -> Principal | None:
        """The principal `secret` stands for, or None; through the same cache as `authenticate`
        but counted against no client (a model server asking about its callers' tokens)."""
        if self._admin is not None and same_secret(secret, self._admin):
            return self._admin_principal
        outcome = self._outcome(secret)
        return outcome if isinstance(outcome, Principal) else None

    def _outcome(self, secret: str) -> Principal | str:
        """The cached decision on `secret`: its principal, or why it is refused."""
        key = hashlib.sha256(secret.encode()).digest()
        now = self._clock()
        cached = self._cache.get(key)
        if cached is None or cached[0] <= now:
            cached = (now + self.cache_s, self._resolve(secret))
            self._keep(key, cached, now)
        return cached[1]

    def authorize(self, principal: Principal, workspace: str, right: Right) -> None:
        """Pass when `principal` holds `right` in `workspace`.

        Raises:
            Forbidden: it does not; the message names its role there and the role to ask for.
        """
        if not principal.may(workspace, right):
            raise Forbidden(forbidden_message(principal, workspace, right))

    def forget(self) -> None:
        """Drop every cached outcome (the next request of each token resolves it afresh)."""
        with self._lock:
            self._cache.clear()

    def _resolve(self, secret: str) -> Principal | str:
        try:
            principal = self.resolver.resolve(secret)
        except Unauthorized as exc:
            return str(exc)
        return UNKNOWN_TOKEN if principal is None else principal

    def _keep(self, key: bytes, entry: tuple[float, Principal | str], now: float) -> None:
        with self._lock:
            if len(self._cache) >= _MAX_CACHED:
                for stale in [k for k, (until, _) in self._cache.items() if until <= now]:
                    del self._cache[stale]
                if len(self._cache) >= _MAX_CACHED:
                    self._cache.clear()
            self._cache[key] = entry


def forbidden_message(principal: Principal, workspace: str, right: Right) -> str:
    """Why `principal` may not do what needs `right` in `workspace`, and what to ask for."""
    if right is Right.SUPERUSER:
        return (
            f"Only the server's bootstrap admin may do this ({principal.name} is not it): use the "
            "token of PLINTH_ADMIN_TOKEN or of `plinth server --init-admin`."
        )
    role = principal.roles.get(workspace)
    held = "no role" if role is None else f"role {role.value}"
    least = least_role(right)
    return (
        f"{principal.name} has {held} in workspace '{workspace}', which does not allow {right.value}; "
        f"ask an admin of '{workspace}' for a role that does "
        f"(e.g. `plinth members add {workspace} {principal.name} --role {least.value}`)."
    )


def least_role(right: Right) -> Role:
    """The role with the fewest rights that grants `right` (admin for a right no role grants)."""
    granting = [role for role in Role if right in RIGHTS[role]]
    return min(granting, key=lambda role: len(RIGHTS[role])) if granting else Role.ADMIN


def capped_role(member: Role | None, cap: Role) -> Role | None:
    """The role a token with role `cap` acts with, its principal having role `member`: the
    largest role whose rights lie within both (None: no role is)."""
    if member is None:
        return None
    both = RIGHTS[member] & RIGHTS[cap]
    within = [role for role in Role if RIGHTS[role] <= both]
    return max(within, key=lambda role: len(RIGHTS[role])) if within else None


class LocalResolver:
    """Resolves secrets against an `IdentityStore` (the server's own database).

    Records when each token was last used, in batches written at most every `flush_s`: the
    resolver only runs when the authorizer's cache misses, and the batch goes out during a later
    resolve once due (or on `flush()`), never as a write per request.

    Args:
        identity: where tokens and memberships are kept.
        clock_ms: epoch milliseconds (tests pass their own), for expiry and last use.
        flush_s: the shortest time between two writes of last-used times.
    """

    def __init__(
        self, identity: IdentityStore, *, clock_ms: Callable[[], int] = now_ms, flush_s: float = 5.0
    ) -> None:
        self.identity = identity
        self._clock_ms = clock_ms
        self._flush_ms = int(flush_s * 1000)
        self._used: dict[str, int] = {}
        self._flushed_ms: int | None = None
        self._lock = threading.Lock()

    def resolve(self, secret: str) -> Principal | None:
        """The principal of `secret`, with its roles capped by the token's; None when unknown.

        Raises:
            Unauthorized: the token was revoked or has expired.
        """
        info = self.identity.token_by_hash(hash_secret(secret))
        if info is None:
            return None
        now = self._clock_ms()
        if info.revoked_ms is not None:
            raise Unauthorized(f"Token {info.name!r} of {info.principal} was revoked; {_AGAIN}")
        if info.expires_ms is not None and now >= info.expires_ms:
            raise Unauthorized(f"Token {info.name!r} of {info.principal} has expired; {_AGAIN}")
        self._note_use(info.id, now)
        superuser = info.purpose == SUPERUSER_PURPOSE
        roles: Mapping[str, Role] = {} if superuser else self.identity.roles_of(info.principal)
        if info.role is not None and info.workspace is not None:
            role = capped_role(roles.get(info.workspace), info.role)
            roles = {} if role is None else {info.workspace: role}
        return Principal(
            name=info.principal,
            kind=info.kind,
            token_name=info.name,
            superuser=superuser,
            roles=roles,
            home_workspace=info.workspace,
        )

    def flush(self) -> None:
        """Write the last-used times noted since the last write."""
        with self._lock:
            used, self._used = self._used, {}
            self._flushed_ms = self._clock_ms()
        if not used:
            return
        try:
            self.identity.touch_tokens(used)
        except PlinthError:  # the store is unreachable: keep them for the next write
            with self._lock:
                for token_id, ms in used.items():
                    self._used[token_id] = max(ms, self._used.get(token_id, ms))
            raise

    def _note_use(self, token_id: str, now: int) -> None:
        with self._lock:
            self._used[token_id] = now
            due = self._flushed_ms is None or now - self._flushed_ms >= self._flush_ms
        if due:
            try:
                self.flush()
            except PlinthError:  # last use is bookkeeping: a request is not refused for it
                pass
