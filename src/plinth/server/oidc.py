"""Single sign-on: the team server as an OpenID Connect relying party (authorization code + PKCE).

    GET  /api/v1/auth/login      start: redirect to the provider            (public)
    GET  /api/v1/auth/callback   the provider's answer: sign the user in    (public)
    POST /api/v1/auth/token      a one-time login code -> a session token   (public)
    POST /api/v1/auth/logout     revoke this session token, drop the cookie (any valid token)

`/login` seals the login in progress (state, nonce and the PKCE verifier for the provider) into a
short-lived cookie, so whichever worker takes the callback can check it: the state must match,
the ID token must verify against the provider's keys with the expected issuer, audience, expiry
and nonce. The user's group claims then set their roles (`oidc_config` says which memberships
sign-on owns), and the user gets a session token (`purpose="session"`, `session_hours` long):

- a browser gets it as an HttpOnly, SameSite=Lax cookie (Secure over https) and goes to `/`;
- `plinth login` passes `cli_port` and the S256 `code_challenge` of a verifier only it holds;
  the callback redirects to `http://127.0.0.1:<cli_port>/callback?code=…` with a one-time code
  (or shows the code to paste, without `cli_port`), and `POST /token` trades the code and the
  verifier for the token. A code lives 5 minutes and works once: it is sealed (any worker opens
  it), and the token it makes is named after it, so a second exchange is refused.
"""

from __future__ import annotations

import hmac
import html
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from plinth.core.access import Right, Role
from plinth.core.errors import ConflictError, Forbidden, InvalidInput, PlinthError, Unauthorized
from plinth.core.identity import PrincipalKind
from plinth.server.context import (
    SESSION_COOKIE,
    RequestContext,
    credential,
    require,
    right_extra,
    server_state,
)
from plinth.server.oidc_config import OidcConfig
from plinth.server.oidc_provider import OidcProvider, new_verifier, s256
from plinth.server.sealed import Sealer
from plinth.store.identity import check_principal_name

if TYPE_CHECKING:
    from plinth.server.config import ServerConfig
    from plinth.store.identity import IdentityStore

log = logging.getLogger("plinth.server")

PREFIX = "/api/v1/auth"
LOGIN_TTL_S = 600.0
CODE_TTL_S = 300.0
SSO_ACTOR = "sso"
"""How the audit log names single sign-on when it changes a user's memberships."""

_LOGIN_COOKIE = "plinth_login_"
_AUTHENTICATED = Depends(require(Right.AUTHENTICATED))
_CHALLENGE = r"^[A-Za-z0-9_-]{43}$"


class CodeExchange(BaseModel):
    """Body of `POST /auth/token`."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=2048)
    code_verifier: str = Field(min_length=43, max_length=128, pattern=r"^[A-Za-z0-9._~-]+$")


def oidc_router(config: ServerConfig, *, provider: OidcProvider | None = None) -> APIRouter:
    """The sign-on routes for `config.oidc` (parsed here), redirecting to `config.public_url`.

    Raises:
        ConfigError: the `[oidc]` table cannot be used (the message names the key).
    """
    oidc = OidcConfig.parse(config.oidc)
    flow = SignOn(oidc, provider or OidcProvider(oidc), public_url=config.public_url)
    router = APIRouter(prefix=PREFIX, tags=["auth"])
    public = right_extra(Right.PUBLIC)

    @router.get("/login", summary="Sign in through the identity provider", openapi_extra=public)
    def login(
        request: Request,
        cli_port: int | None = Query(None, ge=1024, le=65535),
        code_challenge: str | None = Query(None, pattern=_CHALLENGE),
    ) -> Response:
        return flow.start(request, cli_port, code_challenge)

    @router.get("/callback", summary="The identity provider's answer", openapi_extra=public)
    def callback(
        request: Request,
        code: str | None = Query(None, max_length=4096),
        state: str | None = Query(None, max_length=256),
        error: str | None = Query(None, max_length=256),
        error_description: str | None = Query(None, max_length=1024),
    ) -> Response:
        if error is not None:
            raise Unauthorized(
                f"The identity provider refused the login ({error}: {error_description or '-'})."
            )
        if not code or not state:
            raise InvalidInput("The callback needs code and state; start again at /api/v1/auth/login.")
        return flow.finish(request, code, state)

    @router.post("/token", summary="Trade a one-time login code for a session token", openapi_extra=public)
    def token(request: Request, body: CodeExchange) -> dict[str, Any]:
        return flow.exchange(server_state(request).identity, body.code, body.code_verifier)

    @router.post(
        "/logout", summary="Revoke this session token", openapi_extra=right_extra(Right.AUTHENTICATED)
    )
    def logout(request: Request, ctx: RequestContext = _AUTHENTICATED) -> Response:
        revoked = flow.logout(ctx, credential(request))
        response = Response(content=f'{{"revoked": {str(revoked).lower()}}}', media_type="application/json")
        response.delete_cookie(SESSION_COOKIE, path=flow.cookie_path("/"))
        return response

    return router


class SignOn:
    """The steps of a sign-on, shared by every worker holding the same `[oidc]` config."""

    def __init__(self, config: OidcConfig, provider: OidcProvider, *, public_url: str | None) -> None:
        self.config = config
        self.provider = provider
        self.public_url = public_url.rstrip("/") if public_url else None
        self.sealer = Sealer(config.state_secret or config.client_secret)
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def base_url(self, request: Request) -> str:
        """The server's URL as the browser sees it: `public_url`, else as the request came."""
        return self.public_url or str(request.base_url).rstrip("/")

    def start(self, request: Request, cli_port: int | None, challenge: str | None) -> Response:
        """Redirect to the provider, the login in progress sealed in a cookie."""
        if cli_port is not None and challenge is None:
            raise InvalidInput("cli_port needs a code_challenge (S256 of a verifier the client keeps).")
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), new_verifier()
        pending = {"s": state, "n": nonce, "v": verifier, "p": cli_port, "c": challenge}
        url = self.provider.authorization_url(
            redirect_uri=self._callback_url(request), state=state, nonce=nonce, verifier=verifier
        )
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(
            _LOGIN_COOKIE + state[:12],
            self.sealer.seal(pending, purpose="login state", ttl_s=LOGIN_TTL_S),
            max_age=int(LOGIN_TTL_S),
            path=self.cookie_path("/api/v1/auth"),
            secure=self._secure(request),
            httponly=True,
            samesite="lax",
        )
        return response

    def finish(self, request: Request, code: str, state: str) -> Response:
        """Check the provider's answer, sign the user in, and hand over the session."""
        cookie_name = _LOGIN_COOKIE + state[:12]
        sealed = request.cookies.get(cookie_name)
        if not sealed:
            raise Unauthorized("No login in progress here for this state; start again at /api/v1/auth/login.")
        pending = self.sealer.open(sealed, purpose="login state")
        if not hmac.compare_digest(str(pending["s"]), state):
            raise Unauthorized("The login state does not match; start again at /api/v1/auth/login.")
        answer = self.provider.exchange(
            code=code, redirect_uri=self._callback_url(request), verifier=pending["v"]
        )
        claims = self.provider.verify_id_token(answer["id_token"], nonce=pending["n"])
        if self.config.groups_claim not in claims:
            claims = {
                **_same_subject(self.provider.userinfo(str(answer.get("access_token", ""))), claims),
                **claims,
            }
        identity = server_state(request).identity
        name = username(self.config, claims)
        roles = apply_groups(identity, self.config, name, group_claim(claims, self.config.groups_claim))
        home = next(iter(roles), None)
        log.info("sso login of %s: roles %s", name, {ws: role.value for ws, role in roles.items()})
        response = self._hand_over(request, identity, name, home, pending)
        response.delete_cookie(cookie_name, path=self.cookie_path("/api/v1/auth"))
        return response

    def exchange(self, identity: IdentityStore, code: str, verifier: str) -> dict[str, Any]:
        """The session token for a one-time login `code`, given the verifier of its challenge."""
        sealed = self.sealer.open(code, purpose="login code")
        if not hmac.compare_digest(s256(verifier), str(sealed["c"])):
            raise Unauthorized(
                "The code verifier does not match the login's code challenge (PKCE); log in again."
            )
        jti = str(sealed["j"])
        self._claim(jti, float(sealed["exp"]))
        try:
            return self._session(identity, str(sealed["u"]), sealed.get("w"), f"login-{jti}")
        except ConflictError as exc:
            raise Unauthorized("This login code was already used; run `plinth login` again.") from exc

    def logout(self, ctx: RequestContext, secret: str | None) -> bool:
        """Revoke the request's token if it is a sign-on session; whether it was."""
        from plinth.access.tokens import hash_secret

        identity = ctx.state.identity
        info = identity.token_by_hash(hash_secret(secret)) if secret else None
        if info is None or info.purpose != "session":
            return False
        identity.revoke_token(info.name, principal=info.principal, by=ctx.principal.actor)
        return True

    def _hand_over(
        self,
        request: Request,
        identity: IdentityStore,
        name: str,
        home: str | None,
        pending: Mapping[str, Any],
    ) -> Response:
        if pending.get("c") is None:  # a browser: the session as a cookie
            session = self._session(identity, name, home, f"login-{secrets.token_hex(6)}")
            response: Response = RedirectResponse(f"{self.base_url(request)}/", status_code=303)
            response.set_cookie(
                SESSION_COOKIE,
                session["token"],
                max_age=int(self.config.session_hours * 3600),
                path=self.cookie_path("/"),
                secure=self._secure(request),
                httponly=True,
                samesite="lax",
            )
            return response
        code = self.sealer.seal(
            {"u": name, "w": home, "c": pending["c"], "j": secrets.token_hex(8)},
            purpose="login code",
            ttl_s=CODE_TTL_S,
        )
        if pending.get("p") is not None:
            return RedirectResponse(
                f"http://127.0.0.1:{int(pending['p'])}/callback?code={code}", status_code=303
            )
        return HTMLResponse(_code_page(code), headers={"cache-control": "no-store"})

    def _session(self, identity: IdentityStore, name: str, home: Any, token_name: str) -> dict[str, Any]:
        expires_ms = int((time.time() + self.config.session_hours * 3600) * 1000)
        info, secret = identity.create_token(
            name=token_name,
            principal=name,
            kind=PrincipalKind.USER,
            workspace=home if isinstance(home, str) else None,
            role=None,
            expires_ms=expires_ms,
            by=name,
            purpose="session",
        )
        return {"token": secret, "name": info.name, "principal": name, "expires_ms": info.expires_ms}

    def _claim(self, jti: str, expires: float) -> None:
        """Mark code `jti` used in this process (the token name stops replays across workers)."""
        now = time.time()
        with self._lock:
            for key in [k for k, exp in self._used.items() if exp < now]:
                del self._used[key]
            if jti in self._used:
                raise Unauthorized("This login code was already used; run `plinth login` again.")
            self._used[jti] = expires

    def _callback_url(self, request: Request) -> str:
        return f"{self.base_url(request)}{PREFIX}/callback"

    def cookie_path(self, path: str) -> str:
        """`path` under the path of `public_url` (a server behind a proxy at `/team`)."""
        prefix = urlsplit(self.public_url).path.rstrip("/") if self.public_url else ""
        return f"{prefix}{path}"

    def _secure(self, request: Request) -> bool:
        return self.base_url(request).startswith("https://")


def username(config: OidcConfig, claims: Mapping[str, Any]) -> str:
    """The plinth user a login's claims name: `username_claim`, else `email`, else `sub`.

    Raises:
        InvalidInput: the claim cannot name a plinth user.
    """
    for key in (config.username_claim, "email", "sub"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            try:
                return check_principal_name(value.strip())
            except PlinthError as exc:
                raise InvalidInput(
                    f"The identity provider's {key} claim {value!r} cannot name a user: {exc}"
                ) from exc
    raise InvalidInput("The ID token names no user (no username, email or sub claim).")


def group_claim(claims: Mapping[str, Any], key: str) -> list[str]:
    """The groups in claim `key`: a list of names, or one name; paths like `/ml-team` also match `ml-team`."""
    value = claims.get(key)
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    groups = [g for g in names if isinstance(g, str)]
    return groups + [g.rsplit("/", 1)[-1] for g in groups if "/" in g]


def apply_groups(
    identity: IdentityStore, config: OidcConfig, name: str, groups: list[str]
) -> dict[str, Role]:
    """Set `name`'s roles in the workspaces sign-on manages from `groups`; returns those roles.

    A managed workspace where no group earns a role loses the user's membership; workspaces no
    `[[oidc.groups]]` entry names are left as they are.

    Raises:
        Forbidden: `name` is a service account's name.
    """
    if identity.principal_kind(name) is PrincipalKind.SERVICE:
        raise Forbidden(
            f"{name!r} is a service account; a person cannot sign in as it. Ask an admin to rename one."
        )
    identity.ensure_principal(name, PrincipalKind.USER)
    wanted = config.roles_for(groups)
    current = identity.roles_of(name)
    granted: dict[str, Role] = {}
    for entry in config.groups:  # file order, so the home workspace is the first mapped one
        workspace, role = entry.workspace, wanted.get(entry.workspace)
        if role is None or workspace in granted:
            continue
        if not identity.workspace_exists(workspace):
            log.warning(
                "[[oidc.groups]] maps %r to workspace %r, which does not exist", entry.group, workspace
            )
            continue
        if current.get(workspace) != role:
            identity.set_member(workspace, name, PrincipalKind.USER, role, by=SSO_ACTOR)
        granted[workspace] = role
    for workspace in sorted(config.managed_workspaces - set(wanted)):
        if workspace in current:
            identity.remove_member(workspace, name, by=SSO_ACTOR)
    return granted


def _same_subject(userinfo: Mapping[str, Any], claims: Mapping[str, Any]) -> Mapping[str, Any]:
    """Userinfo claims, only when they are about the ID token's subject (OIDC Core 5.3.2)."""
    return userinfo if userinfo.get("sub") == claims.get("sub") else {}


def _code_page(code: str) -> str:
    safe = html.escape(code)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>plinth login</title></head><body>"
        "<h1>Signed in</h1><p>Paste this one-time code into <code>plinth login</code> "
        f"(it works once, for 5 minutes):</p><pre>{safe}</pre></body></html>"
    )
