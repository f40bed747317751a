"""The identity store: workspaces, members, and API tokens of which only a hash is kept."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from plinth.core.access import Role
from plinth.core.errors import ConflictError, InvalidInput, NotFound
from plinth.core.identity import Member, PrincipalKind
from plinth.core.ids import now_ms
from plinth.store import schema as t
from plinth.store.identity import hash_secret
from plinth.store.sql import SqlStore
from plinth.store.sql.identity import SqlIdentity

KEY = "k" * 32
USER, SERVICE = PrincipalKind.USER, PrincipalKind.SERVICE


@pytest.fixture
def identity(store_url: str) -> Iterator[SqlIdentity]:
    store = SqlIdentity(store_url, audit_key=KEY)
    yield store
    store.close()


def token(identity: SqlIdentity, name: str = "ci", principal: str = "ci-bot", **options: object) -> str:
    fields: dict[str, object] = dict(kind=SERVICE, workspace=None, role=None, expires_ms=None, by="admin")
    fields.update(options)
    _info, secret = identity.create_token(name=name, principal=principal, **fields)  # type: ignore[arg-type]
    return secret


def test_a_token_is_shown_once_and_found_by_its_hash(identity: SqlIdentity) -> None:
    info, secret = identity.create_token(
        name="ci",
        principal="ci-bot",
        kind=SERVICE,
        workspace="default",
        role=Role.EDITOR,
        expires_ms=None,
        by="admin",
    )
    assert secret.startswith("plt_") and len(secret) == 4 + 43
    assert identity.token_by_hash(hash_secret(secret)) == info
    assert identity.token_by_hash(hash_secret(secret + "x")) is None
    assert identity.list_tokens() == [info]
    assert (info.principal, info.kind, info.role, info.workspace, info.purpose) == (
        "ci-bot",
        SERVICE,
        Role.EDITOR,
        "default",
        "api",
    )
    assert identity.principal_kind("ci-bot") is SERVICE and identity.principal_kind("nobody") is None


def test_only_the_hash_of_a_secret_is_stored(identity: SqlIdentity) -> None:
    secret = token(identity)
    with identity.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(t.api_tokens))]
    stored = repr(rows)
    assert secret not in stored and secret[4:] not in stored
    assert hashlib.sha256(secret.encode()).hexdigest() in stored


def test_tokens_are_listed_revoked_and_renamed_freely_once_revoked(identity: SqlIdentity) -> None:
    token(identity, "laptop", "alice", kind=USER)
    token(identity, "ci", "alice", kind=USER)
    token(identity, "ci", "ci-bot", kind=SERVICE)
    with pytest.raises(ConflictError, match="alice has an active token named 'ci'"):
        token(identity, "ci", "alice", kind=USER)
    with pytest.raises(ConflictError, match=r"Several principals .* \(alice, ci-bot\)"):
        identity.revoke_token("ci", by="admin")

    revoked = identity.revoke_token("ci", principal="alice", by="admin")
    assert revoked.revoked_ms is not None and not revoked.active(now_ms())
    assert [x.name for x in identity.list_tokens(principal="alice")] == ["laptop", "ci"]
    assert identity.revoke_token("ci", by="admin").principal == "ci-bot"  # the only active one left
    with pytest.raises(NotFound, match="No active token named 'ci'"):
        identity.revoke_token("ci", by="admin")
    token(identity, "ci", "alice", kind=USER)  # the name is free again
    assert [x.revoked_ms is None for x in identity.list_tokens(principal="alice")] == [True, False, True]


def test_an_expired_token_is_inactive_and_frees_its_name(identity: SqlIdentity) -> None:
    soon = now_ms() + 60_000
    token(identity, expires_ms=soon)
    [info] = identity.list_tokens()
    assert info.expires_ms == soon and info.active(soon - 1) and not info.active(soon)
    with pytest.raises(InvalidInput, match="expire before it is made"):
        token(identity, "old", expires_ms=now_ms() - 1)


def test_last_use_is_recorded_in_batches_and_never_goes_back(identity: SqlIdentity) -> None:
    token(identity, "a")
    token(identity, "b")
    a, b = identity.list_tokens()
    identity.touch_tokens({a.id: 2_000, b.id: 1_000})
    identity.touch_tokens({a.id: 1_500})
    assert [x.last_used_ms for x in identity.list_tokens()] == [2_000, 1_000]


def test_bad_token_requests_are_refused_with_a_reason(identity: SqlIdentity) -> None:
    with pytest.raises(InvalidInput, match="has a role but no workspace"):
        token(identity, role=Role.VIEWER)
    with pytest.raises(NotFound, match="No workspace 'vision'; create it"):
        token(identity, workspace="vision")
    with pytest.raises(InvalidInput, match="cannot name a token"):
        token(identity, "no spaces")
    with pytest.raises(InvalidInput, match="cannot name a user or service account"):
        token(identity, principal="")
    with pytest.raises(InvalidInput, match="Unknown token purpose"):
        token(identity, purpose="root")
    token(identity, "ci", "alice", kind=USER)
    with pytest.raises(ConflictError, match="'alice' is a user, not a service account"):
        token(identity, "other", "alice", kind=SERVICE)


def test_workspaces_start_with_default_and_names_are_unique(identity: SqlIdentity) -> None:
    assert [w.name for w in identity.list_workspaces()] == ["default"]
    vision = identity.create_workspace("vision", "images", by="admin")
    assert (vision.name, vision.description) == ("vision", "images")
    assert [w.name for w in identity.list_workspaces()] == ["default", "vision"]
    assert identity.workspace_exists("vision") and not identity.workspace_exists("audio")
    with pytest.raises(ConflictError, match="Workspace 'vision' exists"):
        identity.create_workspace("vision", by="admin")
    with pytest.raises(InvalidInput, match="cannot name a workspace"):
        identity.create_workspace("Vision!", by="admin")


def test_members_get_replace_and_lose_roles(identity: SqlIdentity) -> None:
    identity.create_workspace("vision", by="admin")
    identity.set_member("vision", "alice", USER, Role.VIEWER, by="admin")
    identity.set_member("vision", "alice", USER, Role.MAINTAINER, by="admin")
    identity.set_member("vision", "ci-bot", SERVICE, Role.EDITOR, by="admin")
    identity.set_member("default", "alice", USER, Role.ADMIN, by="admin")
    assert identity.members("vision") == [
        Member("vision", "alice", USER, Role.MAINTAINER),
        Member("vision", "ci-bot", SERVICE, Role.EDITOR),
    ]
    assert identity.roles_of("alice") == {"vision": Role.MAINTAINER, "default": Role.ADMIN}

    identity.remove_member("vision", "alice", by="admin")
    assert identity.roles_of("alice") == {"default": Role.ADMIN}
    with pytest.raises(NotFound, match="'alice' is not a member of workspace 'vision'"):
        identity.remove_member("vision", "alice", by="admin")
    with pytest.raises(NotFound, match="No workspace 'audio'"):
        identity.set_member("audio", "alice", USER, Role.VIEWER, by="admin")


def test_identity_changes_are_audited_by_who_made_them_without_secrets(store_url: str) -> None:
    identity = SqlIdentity(store_url, audit_key=KEY)
    store = SqlStore(store_url, audit_key=KEY)
    try:
        identity.create_workspace("vision", by="admin")
        identity.set_member("vision", "ci-bot", SERVICE, Role.EDITOR, by="alice (token laptop)")
        info, secret = identity.create_token(
            name="ci",
            principal="ci-bot",
            kind=SERVICE,
            workspace="vision",
            role=Role.EDITOR,
            expires_ms=None,
            by="alice (token laptop)",
        )
        identity.revoke_token("ci", by="admin")
        identity.remove_member("vision", "ci-bot", by="admin")
        identity.touch_tokens({info.id: now_ms()})  # bookkeeping, not an audited change

        events = [(e.actor, e.action, e.entity_id) for e in store.audit_events()]
        assert events == [
            ("admin", "workspace.create", "vision"),
            ("alice (token laptop)", "member.set", "vision"),
            ("alice (token laptop)", "token.create", info.id),
            ("admin", "token.revoke", info.id),
            ("admin", "member.remove", "vision"),
        ]
        logged = repr(store.audit_events())
        assert secret not in logged and hash_secret(secret) not in logged
        assert store.verify_audit().ok
    finally:
        store.close()
        identity.close()
