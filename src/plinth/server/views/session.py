"""Signing the browser in and out, and what the UI needs to know about the server and its user.

A browser holds its credential in the HttpOnly session cookie the API already accepts (with
`X-Requested-With` on unsafe methods): single sign-on sets it (`plinth.server.oidc`), and here a
person may paste an API token instead. `plinth ui` needs neither: every request is the local user.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from plinth.core.access import Right
from plinth.server.admin_routes import describe
from plinth.server.config import ServerConfig
from plinth.server.context import SESSION_COOKIE, RequestContext, client_of, server_state
from plinth.server.views.common import AUTHENTICATED, needs, view_router


class TokenLogin(BaseModel):
    """An API token (`plinth tokens create`) to sign the browser in with."""

    token: str


def router(config: ServerConfig) -> APIRouter:
    """`GET /ui/config`, `GET /ui/me`, `POST /ui/session` (sign in), `DELETE /ui/session`."""
    router = view_router()
    secure = bool(config.public_url and config.public_url.startswith("https://"))

    @router.get("/config", openapi_extra=needs(Right.PUBLIC))
    def server_config() -> dict[str, Any]:
        """How to sign in here: `local` (no sign-in, `plinth ui`), `sso` (single sign-on offered)."""
        return {
            "local": config.local_user is not None,
            "sso": bool(config.oidc),
            "allow_resume": config.allow_resume,
        }

    @router.get("/me", openapi_extra=needs(Right.AUTHENTICATED))
    def me(ctx: RequestContext = AUTHENTICATED) -> dict[str, Any]:
        """The signed-in principal, its roles, and the workspace this request acts in."""
        rights = sorted(r.value for r in Right if ctx.principal.may(ctx.workspace, r))
        return {**describe(ctx.principal), "workspace": ctx.workspace, "rights": rights}

    @router.post("/session", openapi_extra=needs(Right.PUBLIC))
    def sign_in(body: TokenLogin, request: Request, response: Response) -> dict[str, Any]:
        """Check an API token and keep it in the session cookie (HttpOnly: scripts never read it).

        Raises (answered by the app's error table): Unauthorized for an unknown, revoked or
        expired token; TooManyAttempts after repeated failures from this address.
        """
        token = body.token.strip()
        principal = server_state(request).authorizer.authenticate(token, client_of(request))
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=secure or request.url.scheme == "https",
            path="/",
        )
        return describe(principal)

    @router.delete("/session", openapi_extra=needs(Right.PUBLIC))
    def sign_out(response: Response) -> dict[str, bool]:
        """Forget the session cookie in this browser (the token itself stays valid)."""
        response.delete_cookie(SESSION_COOKIE, path="/")
        return {"signed_out": True}

    return router
