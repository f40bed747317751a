"""`SqlIdentity`: workspaces, principals, tokens and members in the default workspace's database.

Mutations take turns (SQLite's write transaction; an advisory lock on PostgreSQL), so "one
active token of a name per principal" holds under concurrent requests. Each is an audit event
in the default workspace's chain, keyed with the store's audit key like every other append.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, bindparam, insert, or_, select, update

from plinth.core.access import DEFAULT_WORKSPACE, Role, check_workspace_name
from plinth.core.errors import ConflictError, InvalidInput, NotFound
from plinth.core.identity import Member, PrincipalKind, TokenInfo, Workspace
from plinth.core.ids import new_id, now_ms
from plinth.core.settings import Settings
from plinth.store import schema as t
from plinth.store.audit_key import audit_secret
from plinth.store.identity import (
    IdentityStore,
    check_principal_name,
    check_purpose,
    check_token_name,
    hash_secret,
    new_secret,
)
from plinth.store.sql.base import SqlBase

_LOCK = 74110003  # PostgreSQL advisory lock: identity mutations take turns


class SqlIdentity(SqlBase, IdentityStore):
    """The identity store on the default workspace's SQL database (migrated when opened).

    Args:
        source: the default workspace's store URL (or an engine on it).
        audit_key: the store's audit key (`audit_secret(settings)`): identity mutations are
            appended to its audit chain, which every appender must key alike; None only suits
            throwaway stores whose chain is unkeyed.

    `SqlIdentity.from_settings(settings)` opens the one `settings` name.
    """

    def __init__(self, source: str | Engine, *, audit_key: str | None) -> None:
        url = source if isinstance(source, str) else source.url.render_as_string(hide_password=False)
        super().__init__(url, actor="plinth", audit_key=audit_key)

    @classmethod
    def from_settings(cls, settings: Settings) -> SqlIdentity:
        """The identity store of the store `settings` name (its default workspace)."""
        return cls(settings.resolved_store_url, audit_key=audit_secret(settings))

    def __repr__(self) -> str:
        return f"SqlIdentity({self.engine.url.render_as_string(hide_password=True)!r})"

    # workspaces ----------------------------------------------------------------------------
    def create_workspace(self, name: str, description: str = "", *, by: str) -> Workspace:
        check_workspace_name(name)
        if not isinstance(description, str) or len(description) > 2000:
            raise InvalidInput("A workspace description is text of at most 2,000 characters.")
        created = Workspace(name=name, created_ms=now_ms(), description=description)

        def add(conn: Connection) -> Workspace:
            self._take_turn(conn)
            if self._workspace_row(conn, name) is not None:
                raise ConflictError(
                    f"Workspace {name!r} exists; list workspaces with `plinth workspaces list`."
                )
            conn.execute(
                insert(t.workspaces).values(
                    name=name, description=description, created_ms=created.created_ms, created_by=by
                )
            )
            self._record(conn, by, "workspace.create", "workspace", name, after={"description": description})
            return created

        return self._write("create a workspace", add)

    def list_workspaces(self) -> list[Workspace]:
        w = t.workspaces

        def fetch(conn: Connection) -> list[Workspace]:
            rows = conn.execute(select(w.c.name, w.c.created_ms, w.c.description).order_by(w.c.name))
            return [Workspace(name=r.name, created_ms=r.created_ms, description=r.description) for r in rows]

        return self._read("list workspaces", fetch)

    def workspace_exists(self, name: str) -> bool:
        if name == DEFAULT_WORKSPACE:
            return True
        return self._read("look up a workspace", lambda conn: self._workspace_row(conn, name) is not None)

    # principals ----------------------------------------------------------------------------
    def ensure_principal(self, name: str, kind: PrincipalKind) -> None:
        self._write("record a principal", lambda conn: self._ensure_principal(conn, name, kind))

    def principal_kind(self, name: str) -> PrincipalKind | None:
        p = t.principals
        found = self._read(
            "look up a principal",
            lambda conn: conn.execute(select(p.c.kind).where(p.c.name == name)).scalar(),
        )
        return None if found is None else PrincipalKind(found)

    # members -------------------------------------------------------------------------------
    def set_member(self, workspace: str, principal: str, kind: PrincipalKind, role: Role, *, by: str) -> None:
        role = Role(role)
        m = t.members

        def put(conn: Connection) -> None:
            self._take_turn(conn)
            self._require_workspace(conn, workspace)
            self._ensure_principal(conn, principal, kind)
            where = and_(m.c.workspace == workspace, m.c.principal == principal)
            before = conn.execute(select(m.c.role).where(where)).scalar()
            if before is None:
                values = dict(
                    workspace=workspace,
                    principal=principal,
                    kind=kind.value,
                    role=role.value,
                    added_ms=now_ms(),
                )
                conn.execute(insert(m).values(**values))
            else:
                conn.execute(update(m).where(where).values(role=role.value))
            self._record(
                conn,
                by,
                "member.set",
                "workspace",
                workspace,
                before=None if before is None else {"principal": principal, "role": before},
                after={"principal": principal, "role": role.value},
            )

        self._write("set a member's role", put)

    def remove_member(self, workspace: str, principal: str, *, by: str) -> None:
        m = t.members

        def remove(conn: Connection) -> None:
            self._take_turn(conn)
            where = and_(m.c.workspace == workspace, m.c.principal == principal)
            before = conn.execute(select(m.c.role).where(where)).scalar()
            if before is None:
                raise NotFound(
                    f"{principal!r} is not a member of workspace {workspace!r}; list them with "
                    f"`plinth members list {workspace}`."
                )
            conn.execute(m.delete().where(where))
            self._record(
                conn,
                by,
                "member.remove",
                "workspace",
                workspace,
                before={"principal": principal, "role": before},
            )

        self._write("remove a member", remove)

    def members(self, workspace: str) -> list[Member]:
        m = t.members
        query = select(m.c.principal, m.c.kind, m.c.role).where(m.c.workspace == workspace)

        def fetch(conn: Connection) -> list[Member]:
            rows = conn.execute(query.order_by(m.c.principal))
            return [Member(workspace, r.principal, PrincipalKind(r.kind), Role(r.role)) for r in rows]

        return self._read("list members", fetch)

    def roles_of(self, principal: str) -> dict[str, Role]:
        m = t.members
        query = select(m.c.workspace, m.c.role).where(m.c.principal == principal)
        rows = self._read("read a principal's roles", lambda conn: conn.execute(query).all())
        return {r.workspace: Role(r.role) for r in rows}

    # tokens --------------------------------------------------------------------------------
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
        check_token_name(name)
        check_purpose(purpose)
        if workspace is not None:
            check_workspace_name(workspace)
        role = None if role is None else Role(role)
        if role is not None and workspace is None:
            raise InvalidInput(
                f"Token {name!r} has a role but no workspace; a token's role applies in its workspace: "
                "name one with --workspace."
            )
        created = now_ms()
        if expires_ms is not None and expires_ms <= created:
            raise InvalidInput(
                f"Token {name!r} would expire before it is made; give an expiry in the future."
            )
        secret = new_secret()
        info = TokenInfo(
            id=new_id(),
            name=name,
            principal=principal,
            kind=kind,
            workspace=workspace,
            role=role,
            created_ms=created,
            expires_ms=expires_ms,
            last_used_ms=None,
            revoked_ms=None,
            created_by=by,
            purpose=purpose,
        )

        def add(conn: Connection) -> TokenInfo:
            self._take_turn(conn)
            if workspace is not None:
                self._require_workspace(conn, workspace)
            self._ensure_principal(conn, principal, kind)
            if any(tok.active(created) for tok in self._tokens(conn, name=name, principal=principal)):
                raise ConflictError(
                    f"{principal} has an active token named {name!r}; revoke it with "
                    f"`plinth tokens revoke {name}` or choose another name."
                )
            conn.execute(insert(t.api_tokens).values(**_token_row(info), token_hash=hash_secret(secret)))
            self._record(conn, by, "token.create", "token", info.id, after=_token_fields(info))
            return info

        return self._write("create a token", add), secret

    def list_tokens(self, *, principal: str | None = None, workspace: str | None = None) -> list[TokenInfo]:
        return self._read(
            "list tokens", lambda conn: self._tokens(conn, principal=principal, workspace=workspace)
        )

    def revoke_token(self, name: str, *, principal: str | None = None, by: str) -> TokenInfo:
        a = t.api_tokens

        def revoke(conn: Connection) -> TokenInfo:
            self._take_turn(conn)
            now = now_ms()
            found = [tok for tok in self._tokens(conn, name=name, principal=principal) if tok.active(now)]
            if not found:
                whose = "" if principal is None else f" of {principal}"
                raise NotFound(
                    f"No active token named {name!r}{whose}; list tokens with `plinth tokens list`."
                )
            if len(found) > 1:
                owners = ", ".join(sorted(tok.principal for tok in found))
                raise ConflictError(
                    f"Several principals have an active token named {name!r} ({owners}); "
                    "say whose to revoke with --user."
                )
            [token] = found
            conn.execute(update(a).where(a.c.id == token.id).values(revoked_ms=now))
            self._record(conn, by, "token.revoke", "token", token.id, before=_token_fields(token))
            return replace(token, revoked_ms=now)

        return self._write("revoke a token", revoke)

    def token_by_hash(self, digest: str) -> TokenInfo | None:
        a = t.api_tokens
        query = select(*_TOKEN_COLUMNS).where(a.c.token_hash == digest)
        row = self._read("look up a token", lambda conn: conn.execute(query).first())
        return None if row is None else _token_info(row)

    def touch_tokens(self, used: Mapping[str, int]) -> None:
        if not used:
            return
        a = t.api_tokens
        statement = (
            update(a)
            .where(
                a.c.id == bindparam("token_id"),
                or_(a.c.last_used_ms.is_(None), a.c.last_used_ms < bindparam("used")),
            )
            .values(last_used_ms=bindparam("used"))
        )
        rows = [{"token_id": token_id, "used": ms} for token_id, ms in sorted(used.items())]
        self._write("record token use", lambda conn: conn.execute(statement, rows))

    # helpers -------------------------------------------------------------------------------
    def _take_turn(self, conn: Connection) -> None:
        if not self._sqlite:  # SQLite's write transaction already serializes writers
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK})")

    def _workspace_row(self, conn: Connection, name: str) -> Row[Any] | None:
        return conn.execute(select(t.workspaces.c.name).where(t.workspaces.c.name == name)).first()

    def _require_workspace(self, conn: Connection, name: str) -> None:
        if name != DEFAULT_WORKSPACE and self._workspace_row(conn, name) is None:
            raise NotFound(f"No workspace {name!r}; create it with `plinth workspaces create {name}`.")

    def _ensure_principal(self, conn: Connection, name: str, kind: PrincipalKind) -> None:
        check_principal_name(name)
        kind = PrincipalKind(kind)
        p = t.principals
        found = conn.execute(select(p.c.kind).where(p.c.name == name)).scalar()
        if found is None:
            conn.execute(insert(p).values(name=name, kind=kind.value, created_ms=now_ms()))
        elif found != kind.value:
            raise ConflictError(
                f"{name!r} is a {_KIND_TEXT[PrincipalKind(found)]}, not a {_KIND_TEXT[kind]}; "
                "choose another name."
            )

    def _tokens(
        self,
        conn: Connection,
        *,
        name: str | None = None,
        principal: str | None = None,
        workspace: str | None = None,
    ) -> list[TokenInfo]:
        a = t.api_tokens
        query = select(*_TOKEN_COLUMNS)
        for column, value in ((a.c.name, name), (a.c.principal, principal), (a.c.workspace, workspace)):
            if value is not None:
                query = query.where(column == value)
        return [_token_info(r) for r in conn.execute(query.order_by(a.c.created_ms, a.c.id))]

    def _record(
        self,
        conn: Connection,
        by: str,
        action: str,
        kind: str,
        entity_id: str,
        *,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> None:
        self.acting_as(by)._audit(conn, action, kind, entity_id, before=_json(before), after=_json(after))


_KIND_TEXT = {PrincipalKind.USER: "user", PrincipalKind.SERVICE: "service account"}

_TOKEN_COLUMNS = tuple(
    t.api_tokens.c[name]
    for name in (
        "id",
        "name",
        "principal",
        "kind",
        "workspace",
        "role",
        "created_ms",
        "expires_ms",
        "last_used_ms",
        "revoked_ms",
        "created_by",
        "purpose",
    )
)


def _token_info(row: Row[Any]) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        principal=row.principal,
        kind=PrincipalKind(row.kind),
        workspace=row.workspace,
        role=None if row.role is None else Role(row.role),
        created_ms=row.created_ms,
        expires_ms=row.expires_ms,
        last_used_ms=row.last_used_ms,
        revoked_ms=row.revoked_ms,
        created_by=row.created_by,
        purpose=row.purpose,
    )


def _token_row(info: TokenInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "principal": info.principal,
        "kind": info.kind.value,
        "workspace": info.workspace,
        "role": None if info.role is None else info.role.value,
        "created_ms": info.created_ms,
        "expires_ms": info.expires_ms,
        "last_used_ms": None,
        "revoked_ms": None,
        "created_by": info.created_by,
        "purpose": info.purpose,
    }


def _token_fields(info: TokenInfo) -> dict[str, Any]:
    """What the audit log records of a token: who, where, what for; never its secret or hash."""
    return {
        "name": info.name,
        "principal": info.principal,
        "workspace": info.workspace,
        "role": None if info.role is None else info.role.value,
        "expires_ms": info.expires_ms,
        "purpose": info.purpose,
    }


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(dict(value), sort_keys=True, separators=(",", ":"))
