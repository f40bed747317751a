"""Workspaces, members, principals and tokens kept by a team server, over its admin API.

`RemoteIdentity` is the `IdentityStore` a client gets when `PLINTH_STORE=http(s)://…`: each
method is one request to `/api/v1/...` (see `plinth.server.admin_routes`), made with the
client's own token. The server decides what that token may do and records every change in the
audit log under the token's principal, so the `by=` arguments here are not sent: a client cannot
choose who the log names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from plinth.core.access import Role
from plinth.core.errors import ConfigError, NotFound
from plinth.core.identity import Member, Principal, PrincipalKind, TokenInfo, Workspace
from plinth.store.http import ServerClient
from plinth.store.identity import IdentityStore
from plinth.store.wire import decode


class RemoteIdentity(IdentityStore):
    """The identity store of the team server `client` talks to.

    Example:
        >>> identity = RemoteIdentity(ServerClient("https://plinth.example.com", token=token))
        >>> identity.whoami().name
        'alice'
    """

    def __init__(self, client: ServerClient) -> None:
        self.client = client

    def whoami(self) -> Principal:
        """The principal the client's token belongs to, with its role per workspace."""
        data = self._get("/whoami")
        return Principal(
            name=data["name"],
            kind=PrincipalKind(data["kind"]),
            token_name=data.get("token_name"),
            superuser=bool(data.get("superuser")),
            roles={ws: Role(role) for ws, role in data.get("roles", {}).items()},
            home_workspace=data.get("home_workspace"),
        )

    # workspaces ---------------------------------------------------------------------------------
    def create_workspace(self, name: str, description: str = "", *, by: str) -> Workspace:
        body = {"name": name, "description": description}
        made: Workspace = decode(self._send("POST", "/workspaces", body), Workspace)
        return made

    def list_workspaces(self) -> list[Workspace]:
        found: list[Workspace] = decode(self._get("/workspaces"), list[Workspace])
        return found

    def workspace_exists(self, name: str) -> bool:
        return any(w.name == name for w in self.list_workspaces())

    # principals and members ---------------------------------------------------------------------
    def ensure_principal(self, name: str, kind: PrincipalKind) -> None:
        self._send("PUT", f"/principals/{_segment(name)}", {"kind": kind.value}, idempotent=True)

    def principal_kind(self, name: str) -> PrincipalKind | None:
        try:
            data = self._get(f"/principals/{_segment(name)}")
        except NotFound:
            return None
        return PrincipalKind(data["kind"])

    def set_member(self, workspace: str, principal: str, kind: PrincipalKind, role: Role, *, by: str) -> None:
        body = {"role": role.value, "kind": kind.value}
        self._send(
            "PUT", f"/workspaces/{_segment(workspace)}/members/{_segment(principal)}", body, idempotent=True
        )

    def remove_member(self, workspace: str, principal: str, *, by: str) -> None:
        self._send("DELETE", f"/workspaces/{_segment(workspace)}/members/{_segment(principal)}")

    def members(self, workspace: str) -> list[Member]:
        found: list[Member] = decode(self._get(f"/workspaces/{_segment(workspace)}/members"), list[Member])
        return found

    def roles_of(self, principal: str) -> dict[str, Role]:
        data = self._get(f"/principals/{_segment(principal)}/roles")
        return {ws: Role(role) for ws, role in data.items()}

    # tokens -------------------------------------------------------------------------------------
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
        body = {
            "name": name,
            "principal": principal,
            "workspace": workspace,
            "role": role.value if role is not None else None,
            "expires_ms": expires_ms,
            "purpose": purpose,
        }
        data = self._send("POST", "/tokens", body)
        info: TokenInfo = decode(data["token"], TokenInfo)
        return info, str(data["secret"])

    def list_tokens(self, *, principal: str | None = None, workspace: str | None = None) -> list[TokenInfo]:
        params = {k: v for k, v in (("principal", principal), ("workspace", workspace)) if v is not None}
        found: list[TokenInfo] = decode(self._get("/tokens", params), list[TokenInfo])
        return found

    def revoke_token(self, name: str, *, principal: str | None = None, by: str) -> TokenInfo:
        params = {"principal": principal} if principal is not None else None
        response = self.client.request("DELETE", f"/tokens/{_segment(name)}", params=params, idempotent=False)
        info: TokenInfo = decode(response.json(), TokenInfo)
        return info

    def token_by_hash(self, digest: str) -> TokenInfo | None:
        raise ConfigError("Only the team server looks tokens up by hash; a client sends its token instead.")

    def touch_tokens(self, used: Mapping[str, int]) -> None:
        raise ConfigError("Only the team server records when its tokens were last used.")

    # requests -----------------------------------------------------------------------------------
    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self.client.request("GET", path, params=dict(params) if params else None).json()

    def _send(self, verb: str, path: str, body: Any | None = None, *, idempotent: bool = False) -> Any:
        response = self.client.request(verb, path, json=body, idempotent=idempotent)
        return response.json() if response.content else None


def _segment(text: str) -> str:
    """`text` as one URL path segment (a principal such as `a/b` cannot reach another route)."""
    return quote(text, safe="")
