"""The team server's admin API: who am I, workspaces, their members, principals and API tokens.

    GET    /api/v1/whoami                                   any valid token
    GET    /api/v1/workspaces                               any valid token (sees its own)
    POST   /api/v1/workspaces                               superuser
    GET    /api/v1/workspaces/{workspace}/members           admin of that workspace
    PUT    /api/v1/workspaces/{workspace}/members/{name}    admin of that workspace
    DELETE /api/v1/workspaces/{workspace}/members/{name}    admin of that workspace
    GET    /api/v1/principals/{name}                        itself, an admin, the superuser
    PUT    /api/v1/principals/{name}                        an admin of some workspace
    GET    /api/v1/principals/{name}/roles                  itself, an admin (its workspaces)
    GET    /api/v1/tokens                                   its own; an admin's workspace's
    POST   /api/v1/tokens                                   itself (up to its role); an admin
    DELETE /api/v1/tokens/{name}                            its own; an admin's workspace's

The member routes check the role in the workspace named by the path, not the
`X-Plinth-Workspace` header (`require_in_path`). Routes gated on `Right.AUTHENTICATED` decide
the finer rule in the handler, against the token's principal; the superuser may do everything.
Every change is made by the identity store with `by=` the principal's audit name, so the audit
log names who did it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from plinth.core.access import RIGHTS, Right, Role, check_workspace_name
from plinth.core.errors import ConflictError, Forbidden, NotFound
from plinth.core.identity import Principal, PrincipalKind, TokenInfo
from plinth.server.context import (
    RequestContext,
    client_of,
    credential,
    require,
    right_extra,
    server_state,
)
from plinth.store.identity import check_principal_name, check_token_name
from plinth.store.wire import encode

NAME = Field(min_length=1, max_length=128)


class TokenToResolve(BaseModel):
    """A token a model server was shown by one of its callers."""

    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=512)


class NewWorkspace(BaseModel):
    """Body of `POST /workspaces`."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=32)
    description: str = Field(default="", max_length=1000, pattern="^[^\\x00]*$")


class Membership(BaseModel):
    """Body of `PUT /workspaces/{workspace}/members/{name}`: the role, and the kind of a new principal."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    kind: PrincipalKind | None = None


class NewPrincipal(BaseModel):
    """Body of `PUT /principals/{name}`."""

    model_config = ConfigDict(extra="forbid")
    kind: PrincipalKind


class NewToken(BaseModel):
    """Body of `POST /tokens`: a token named `name` for `principal`, capped to `role` in `workspace`."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    principal: str = NAME
    workspace: str | None = Field(default=None, max_length=32)
    role: Role | None = None
    expires_ms: int | None = Field(default=None, ge=0, le=2**53)
    purpose: str = Field(default="api", pattern="^(api|step)$")


def require_in_path(right: Right) -> Callable[[Request], RequestContext]:
    """Like `require`, but the workspace is the route's `{workspace}` path parameter, not the header.

    Raises:
        Unauthorized, TooManyAttempts: as `require`.
        InvalidInput: the path names no valid workspace.
        Forbidden: the principal's role in that workspace does not grant `right`.
    """

    def dependency(request: Request) -> RequestContext:
        state = server_state(request)
        principal = state.authorizer.authenticate(credential(request), client_of(request))
        workspace = check_workspace_name(request.path_params["workspace"])
        state.authorizer.authorize(principal, workspace, right)
        return RequestContext(principal=principal, workspace=workspace, state=state)

    dependency.__name__ = f"require_{right.value}_in_path"
    return dependency


AUTHENTICATED = Depends(require(Right.AUTHENTICATED))
PREDICT = Depends(require(Right.PREDICT))
SUPERUSER = Depends(require(Right.SUPERUSER))
WORKSPACE_ADMIN = Depends(require_in_path(Right.ADMIN))


def admin_router() -> APIRouter:
    """The admin routes, under `/api/v1`."""
    router = APIRouter(prefix="/api/v1", tags=["admin"])
    _workspace_routes(router)
    _member_routes(router)
    _principal_routes(router)
    _token_routes(router)
    return router


def _workspace_routes(router: APIRouter) -> None:
    @router.get("/whoami", openapi_extra=right_extra(Right.AUTHENTICATED))
    def whoami(ctx: RequestContext = AUTHENTICATED) -> dict[str, Any]:
        """Who the token belongs to, its roles per workspace and its home workspace."""
        return describe(ctx.principal)

    @router.post("/tokens/resolve", openapi_extra=right_extra(Right.PREDICT))
    def resolve_token(body: TokenToResolve, ctx: RequestContext = PREDICT) -> dict[str, Any]:
        """Who another token belongs to, as whoami would answer its holder: what a model server
        started with `--auth` asks about its callers, with its own token. A token the server
        does not know answers `{"principal": null}` and is not counted against the asker (the
        model server backs off its own callers), so callers cannot lock a model server out."""
        found = ctx.state.authorizer.lookup(body.token)
        return {"principal": None if found is None else describe(found)}

    @router.get("/workspaces", openapi_extra=right_extra(Right.AUTHENTICATED))
    def list_workspaces(ctx: RequestContext = AUTHENTICATED) -> list[Any]:
        """The workspaces the caller holds a role in (every one, for the superuser)."""
        found = ctx.state.identity.list_workspaces()
        caller = ctx.principal
        return [encode(w) for w in found if caller.superuser or w.name in caller.roles]

    @router.post("/workspaces", status_code=201, openapi_extra=right_extra(Right.SUPERUSER))
    def create_workspace(body: NewWorkspace, ctx: RequestContext = SUPERUSER) -> Any:
        """Create a workspace (its store is made at once); ConflictError if it exists."""
        name = check_workspace_name(body.name)
        made = ctx.state.identity.create_workspace(name, body.description, by=ctx.principal.actor)
        ctx.state.stores.get(name)
        return encode(made)


def _member_routes(router: APIRouter) -> None:
    path = "/workspaces/{workspace}/members"

    @router.get(path, openapi_extra=right_extra(Right.ADMIN))
    def list_members(workspace: str, ctx: RequestContext = WORKSPACE_ADMIN) -> list[Any]:
        """The principals holding a role in the workspace."""
        _existing_workspace(ctx, workspace)
        return [encode(m) for m in ctx.state.identity.members(workspace)]

    @router.put(path + "/{name}", openapi_extra=right_extra(Right.ADMIN))
    def set_member(workspace: str, name: str, body: Membership, ctx: RequestContext = WORKSPACE_ADMIN) -> Any:
        """Give `name` a role in the workspace, creating the principal (a user by default) if new."""
        check_principal_name(name)
        identity = ctx.state.identity
        _existing_workspace(ctx, workspace)
        kind = identity.principal_kind(name)
        if kind is None:
            kind = body.kind or PrincipalKind.USER
            identity.ensure_principal(name, kind)
        identity.set_member(workspace, name, kind, body.role, by=ctx.principal.actor)
        return {"workspace": workspace, "principal": name, "kind": kind.value, "role": body.role.value}

    @router.delete(path + "/{name}", status_code=204, openapi_extra=right_extra(Right.ADMIN))
    def remove_member(workspace: str, name: str, ctx: RequestContext = WORKSPACE_ADMIN) -> None:
        """Take `name`'s role in the workspace away (its tokens then grant nothing there)."""
        check_principal_name(name)
        _existing_workspace(ctx, workspace)
        ctx.state.identity.remove_member(workspace, name, by=ctx.principal.actor)


def _principal_routes(router: APIRouter) -> None:
    @router.get("/principals/{name}", openapi_extra=right_extra(Right.AUTHENTICATED))
    def get_principal(name: str, ctx: RequestContext = AUTHENTICATED) -> dict[str, str]:
        """A principal's kind. Checked inside: the principal itself, an admin, the superuser."""
        caller = ctx.principal
        check_principal_name(name)
        if name != caller.name and not _is_some_admin(caller):
            raise Forbidden(
                f"{caller.name} may not look up {name!r}: only an admin of a workspace may look up others "
                "(and create members or tokens for them); ask one."
            )
        kind = ctx.state.identity.principal_kind(name)
        if kind is None:
            raise NotFound(
                f"No user or service account {name!r}; an admin adds one with `plinth members add`."
            )
        return {"name": name, "kind": kind.value}

    @router.put("/principals/{name}", openapi_extra=right_extra(Right.AUTHENTICATED))
    def ensure_principal(
        name: str, body: NewPrincipal, ctx: RequestContext = AUTHENTICATED
    ) -> dict[str, str]:
        """Create a user or service account if there is none of that name. Checked inside: an admin."""
        caller = ctx.principal
        if not _is_some_admin(caller):
            raise Forbidden(
                f"{caller.name} may not create users or service accounts; ask an admin of the workspace."
            )
        ctx.state.identity.ensure_principal(name, body.kind)
        kind = ctx.state.identity.principal_kind(name) or body.kind
        return {"name": name, "kind": kind.value}

    @router.get("/principals/{name}/roles", openapi_extra=right_extra(Right.AUTHENTICATED))
    def roles_of(name: str, ctx: RequestContext = AUTHENTICATED) -> dict[str, str]:
        """A principal's role per workspace: all of them for itself and the superuser, else only
        those of the workspaces the caller is an admin of."""
        caller = ctx.principal
        check_principal_name(name)
        roles = ctx.state.identity.roles_of(name)
        shown = {
            ws: role
            for ws, role in roles.items()
            if caller.superuser or name == caller.name or caller.may(ws, Right.ADMIN)
        }
        return {ws: role.value for ws, role in shown.items()}


def _token_routes(router: APIRouter) -> None:
    @router.get("/tokens", openapi_extra=right_extra(Right.AUTHENTICATED))
    def list_tokens(
        principal: str | None = None, workspace: str | None = None, ctx: RequestContext = AUTHENTICATED
    ) -> list[Any]:
        """Tokens (never their secrets): the caller's own, and those of the workspaces it administers."""
        _check_filters(principal, workspace)
        found = ctx.state.identity.list_tokens(principal=principal, workspace=workspace)
        return [encode(t) for t in found if may_manage(ctx.principal, t)]

    @router.post("/tokens", status_code=201, openapi_extra=right_extra(Right.AUTHENTICATED))
    def create_token(body: NewToken, ctx: RequestContext = AUTHENTICATED) -> dict[str, Any]:
        """Issue a token; its secret is in this answer only. Checked inside (`check_may_issue`)."""
        identity = ctx.state.identity
        check_principal_name(body.principal)
        if body.workspace is not None:
            check_workspace_name(body.workspace)
        check_may_issue(ctx.principal, body.principal, body.workspace, body.role)
        if body.workspace is not None:
            _existing_workspace(ctx, body.workspace)
        kind = identity.principal_kind(body.principal)
        if kind is None:
            raise NotFound(
                f"No user or service account {body.principal!r}; an admin adds one with `plinth members add`."
            )
        info, secret = identity.create_token(
            name=body.name,
            principal=body.principal,
            kind=kind,
            workspace=body.workspace,
            role=body.role,
            expires_ms=body.expires_ms,
            by=ctx.principal.actor,
            purpose=body.purpose,
        )
        return {"token": encode(info), "secret": secret}

    @router.delete("/tokens/{name}", openapi_extra=right_extra(Right.AUTHENTICATED))
    def revoke_token(name: str, principal: str | None = None, ctx: RequestContext = AUTHENTICATED) -> Any:
        """Revoke a token by name (and principal, where names repeat). Checked inside (`may_manage`)."""
        identity = ctx.state.identity
        check_token_name(name)
        _check_filters(principal, None)
        target = _token_to_revoke(ctx.principal, identity.list_tokens(principal=principal), name, principal)
        revoked = identity.revoke_token(name, principal=target.principal, by=ctx.principal.actor)
        ctx.state.authorizer.forget()  # at once on this worker; the others within their cache window
        return encode(revoked)


def describe(principal: Principal) -> dict[str, Any]:
    """`GET /whoami`'s answer for `principal`."""
    return {
        "name": principal.name,
        "kind": principal.kind.value,
        "token_name": principal.token_name,
        "superuser": principal.superuser,
        "roles": {ws: role.value for ws, role in principal.roles.items()},
        "home_workspace": principal.home_workspace,
    }


def may_manage(caller: Principal, token: TokenInfo) -> bool:
    """Whether `caller` may see and revoke `token`: its own, an admin's workspace's, or the superuser."""
    if caller.superuser or token.principal == caller.name:
        return True
    return token.workspace is not None and caller.may(token.workspace, Right.ADMIN)


def check_may_issue(caller: Principal, principal: str, workspace: str | None, role: Role | None) -> None:
    """Allow the superuser anything; an admin of `workspace` any token there; anyone else a token for
    itself in one workspace with a role no higher than its own there.

    Raises:
        Forbidden: none of those holds; the message says what would be allowed.
    """
    if caller.superuser:
        return
    if workspace is not None and caller.may(workspace, Right.ADMIN):
        return
    if principal != caller.name:
        where = f"of {workspace!r}" if workspace else "of the token's workspace"
        raise Forbidden(
            f"{caller.name} may not create tokens for {principal!r}: only an admin {where} may. "
            f"Ask one, or create a token for yourself with --user {caller.name}."
        )
    own = caller.roles.get(workspace) if workspace else None
    if workspace is None or role is None or own is None or not RIGHTS[role] <= RIGHTS[own]:
        held = f"{own.value} in {workspace!r}" if own and workspace else "no role there"
        raise Forbidden(
            f"A token {caller.name} creates for itself needs a workspace and a role no higher than its "
            f"own ({held}); pass --workspace and --role, e.g. --role viewer."
        )


def _token_to_revoke(
    caller: Principal, tokens: list[TokenInfo], name: str, principal: str | None
) -> TokenInfo:
    named = [t for t in tokens if t.name == name and t.revoked_ms is None]
    if not named:
        whose = f" of {principal!r}" if principal else ""
        raise NotFound(
            f"No active token {name!r}{whose}; `plinth tokens list` shows the tokens you may manage."
        )
    allowed = [t for t in named if may_manage(caller, t)]
    if not allowed:
        raise Forbidden(
            f"{caller.name} may not revoke token {name!r}: only its owner or an admin of its workspace may."
        )
    owners = sorted({t.principal for t in allowed})
    if len(owners) > 1:
        raise ConflictError(
            f"Several principals have a token named {name!r} ({', '.join(owners)}); add --user to say whose."
        )
    return allowed[0]


def _is_some_admin(caller: Principal) -> bool:
    return caller.superuser or any(Right.ADMIN in RIGHTS[role] for role in caller.roles.values())


def _check_filters(principal: str | None, workspace: str | None) -> None:
    """Refuse filter values that cannot name anything (before they reach the database)."""
    if principal is not None:
        check_principal_name(principal)
    if workspace is not None:
        check_workspace_name(workspace)


def _existing_workspace(ctx: RequestContext, workspace: str) -> None:
    if not ctx.state.identity.workspace_exists(workspace):
        raise NotFound(f"No workspace {workspace!r}; create it with `plinth workspaces create {workspace}`.")
