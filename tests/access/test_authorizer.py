"""Authentication (cached, backed off) and authorization per workspace, on a real identity store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.access import ADMIN, Authorizer, Backoff, LocalResolver, capped_role, least_role
from plinth.core.access import Right, Role
from plinth.core.errors import Forbidden, TooManyAttempts, Unauthorized
from plinth.core.identity import Principal, PrincipalKind
from plinth.store.sql.identity import SqlIdentity

USER, SERVICE = PrincipalKind.USER, PrincipalKind.SERVICE
CLIENT = "10.0.0.7"


class Clock:
    """A clock the test moves: seconds for the authorizer, epoch ms for token expiry."""

    def __init__(self) -> None:
        self.now = time.time()  # token expiry is compared with the time tokens are made at

    def __call__(self) -> float:
        return self.now

    def ms(self) -> int:
        return int(self.now * 1000)


class Counting(LocalResolver):
    """The store's resolver, counting the lookups that reach the store."""

    calls = 0

    def resolve(self, secret: str) -> Principal | None:
        self.calls += 1
        return super().resolve(secret)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def identity(tmp_path: Path) -> Iterator[SqlIdentity]:
    store = SqlIdentity(f"sqlite:///{tmp_path / 'plinth.db'}", audit_key="k" * 32)
    store.create_workspace("vision", by="admin")
    yield store
    store.close()


@pytest.fixture
def resolver(identity: SqlIdentity, clock: Clock) -> Counting:
    return Counting(identity, clock_ms=clock.ms)


@pytest.fixture
def authorizer(resolver: Counting, clock: Clock) -> Authorizer:
    return Authorizer(resolver, admin_token="the-admin-secret-0123456789", clock=clock)


def issue(
    identity: SqlIdentity,
    principal: str = "alice",
    *,
    name: str = "laptop",
    workspace: str | None = None,
    role: Role | None = None,
    expires_ms: int | None = None,
) -> str:
    _info, secret = identity.create_token(
        name=name,
        principal=principal,
        kind=USER,
        workspace=workspace,
        role=role,
        expires_ms=expires_ms,
        by="admin",
    )
    return secret


def test_a_known_token_is_looked_up_once_per_cache_window(
    identity: SqlIdentity, resolver: Counting, authorizer: Authorizer, clock: Clock
) -> None:
    identity.set_member("vision", "alice", USER, Role.EDITOR, by="admin")
    secret = issue(identity)
    for _ in range(100):
        principal = authorizer.authenticate(secret, CLIENT)
    assert principal.name == "alice" and principal.token_name == "laptop"
    assert principal.roles == {"vision": Role.EDITOR} and principal.actor == "alice (token laptop)"
    assert resolver.calls == 1
    clock.now += 5.01
    authorizer.authenticate(secret, CLIENT)
    assert resolver.calls == 2


@pytest.mark.parametrize("store_backend", ["sqlite", "postgresql"])
def test_a_revoked_token_stops_working_after_the_cache_window(
    store_backend: str, request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'plinth.db'}"
        if store_backend == "sqlite"
        else request.getfixturevalue("pg_schema_factory")()
    )
    identity = SqlIdentity(url, audit_key="k" * 32)
    try:
        workers = [Authorizer(LocalResolver(identity, clock_ms=clock.ms), clock=clock) for _ in range(2)]
        secret = issue(identity)
        for worker in workers:
            worker.authenticate(secret, CLIENT)
        identity.revoke_token("laptop", by="admin")
        clock.now += 4.9
        for worker in workers:
            assert worker.authenticate(secret, CLIENT).name == "alice"  # still cached
        clock.now += 0.2
        for worker in workers:
            with pytest.raises(
                Unauthorized, match="was revoked; create a new one with `plinth tokens create`"
            ):
                worker.authenticate(secret, CLIENT)
    finally:
        identity.close()


def test_an_expired_token_is_refused(identity: SqlIdentity, authorizer: Authorizer, clock: Clock) -> None:
    secret = issue(identity, expires_ms=clock.ms() + 60_000)
    assert authorizer.authenticate(secret, CLIENT).name == "alice"
    clock.now += 61
    with pytest.raises(Unauthorized, match=r"has expired; .* or log in with `plinth login`"):
        authorizer.authenticate(secret, CLIENT)


def test_missing_and_unknown_tokens_are_unauthorized(authorizer: Authorizer) -> None:
    with pytest.raises(Unauthorized, match=r"set PLINTH_TOKEN .* or run `plinth login`"):
        authorizer.authenticate(None, CLIENT)
    with pytest.raises(Unauthorized, match="not known to this server"):
        authorizer.authenticate("plt_not-a-real-token", CLIENT)


def test_the_admin_token_is_the_superuser(authorizer: Authorizer) -> None:
    admin = authorizer.authenticate("the-admin-secret-0123456789", CLIENT)
    assert admin.name == ADMIN and admin.superuser
    authorizer.authorize(admin, "anywhere", Right.SUPERUSER)
    with pytest.raises(Unauthorized):
        authorizer.authenticate("the-admin-secret-012345678", CLIENT)


def test_a_superuser_token_holds_every_right(identity: SqlIdentity, authorizer: Authorizer) -> None:
    _info, secret = identity.create_token(
        name="init-admin",
        principal="root",
        kind=SERVICE,
        workspace=None,
        role=None,
        expires_ms=None,
        by="plinth server --init-admin",
        purpose="superuser",
    )
    root = authorizer.authenticate(secret, CLIENT)
    assert root.superuser and root.actor == "root (token init-admin)"
    authorizer.authorize(root, "vision", Right.SUPERUSER)


def test_repeated_failures_back_off_the_client_until_a_success(
    identity: SqlIdentity, resolver: Counting, authorizer: Authorizer, clock: Clock
) -> None:
    good = issue(identity)
    for _ in range(5):  # the same unknown token: answered from the cache, still counted
        with pytest.raises(Unauthorized):
            authorizer.authenticate("plt_guess", CLIENT)
    assert resolver.calls == 1
    with pytest.raises(TooManyAttempts) as refused:
        authorizer.authenticate(good, CLIENT)
    assert refused.value.retry_after_s == pytest.approx(1.0)
    assert authorizer.authenticate(good, "10.0.0.8").name == "alice"  # other clients go on

    clock.now += 1.01
    with pytest.raises(Unauthorized):
        authorizer.authenticate("plt_guess", CLIENT)  # a sixth failure: two seconds
    clock.now += 1.5
    with pytest.raises(TooManyAttempts, match="wait 1 s"):
        authorizer.authenticate(good, CLIENT)
    clock.now += 0.6
    assert authorizer.authenticate(good, CLIENT).name == "alice"  # a success forgets the failures
    with pytest.raises(Unauthorized):
        authorizer.authenticate("plt_guess", CLIENT)
    assert authorizer.authenticate(good, CLIENT).name == "alice"


def test_backoff_doubles_up_to_its_limit_and_forgets_old_failures(clock: Clock) -> None:
    backoff = Backoff(clock=clock)
    waits = []
    for _ in range(12):
        backoff.failed(CLIENT)
        waits.append(_wait(backoff))
    assert waits == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60]
    clock.now += 61
    backoff.check(CLIENT)
    backoff.failed(CLIENT)  # the earlier failures are older than the window
    backoff.check(CLIENT)


def test_a_token_role_caps_its_principal_in_its_own_workspace_only(
    identity: SqlIdentity, authorizer: Authorizer
) -> None:
    identity.set_member("vision", "alice", USER, Role.MAINTAINER, by="admin")
    identity.set_member("default", "alice", USER, Role.ADMIN, by="admin")
    capped = authorizer.authenticate(issue(identity, workspace="vision", role=Role.VIEWER), CLIENT)
    assert capped.roles == {"vision": Role.VIEWER} and capped.home_workspace == "vision"
    raised = authorizer.authenticate(issue(identity, name="ci", workspace="vision", role=Role.ADMIN), CLIENT)
    assert raised.roles == {"vision": Role.MAINTAINER}  # a token never grants more than its principal holds
    whole = authorizer.authenticate(issue(identity, name="all"), CLIENT)
    assert whole.roles == {"vision": Role.MAINTAINER, "default": Role.ADMIN}

    authorizer.authorize(capped, "vision", Right.READ)
    with pytest.raises(Forbidden):
        authorizer.authorize(capped, "vision", Right.WRITE)
    with pytest.raises(Forbidden, match="alice has no role in workspace 'default'"):
        authorizer.authorize(capped, "default", Right.READ)


@pytest.mark.parametrize(
    ("member", "cap", "acts_as"),
    [
        (Role.ADMIN, Role.EDITOR, Role.EDITOR),
        (Role.VIEWER, Role.EDITOR, Role.VIEWER),
        (Role.ADMIN, Role.AUDITOR, Role.AUDITOR),
        (Role.MAINTAINER, Role.AUDITOR, Role.VIEWER),
        (Role.EDITOR, Role.PREDICTOR, Role.PREDICTOR),
        (Role.VIEWER, Role.PREDICTOR, None),
        (None, Role.VIEWER, None),
    ],
)
def test_capping_takes_the_largest_role_within_both(
    member: Role | None, cap: Role, acts_as: Role | None
) -> None:
    assert capped_role(member, cap) is acts_as


def test_forbidden_names_the_role_the_workspace_and_what_to_ask_for(
    identity: SqlIdentity, authorizer: Authorizer
) -> None:
    identity.set_member("vision", "alice", USER, Role.VIEWER, by="admin")
    alice = authorizer.authenticate(issue(identity), CLIENT)
    with pytest.raises(Forbidden) as refused:
        authorizer.authorize(alice, "vision", Right.WRITE)
    assert str(refused.value) == (
        "alice has role viewer in workspace 'vision', which does not allow write; ask an admin of "
        "'vision' for a role that does (e.g. `plinth members add vision alice --role editor`)."
    )
    with pytest.raises(Forbidden, match="--role auditor"):
        authorizer.authorize(alice, "vision", Right.RAW)
    with pytest.raises(Forbidden, match="bootstrap admin"):
        authorizer.authorize(alice, "vision", Right.SUPERUSER)
    authorizer.authorize(alice, "elsewhere", Right.AUTHENTICATED)


@pytest.mark.parametrize(
    ("right", "role"),
    [(Right.READ, Role.VIEWER), (Right.PREDICT, Role.PREDICTOR), (Right.MAINTAIN, Role.MAINTAINER)],
)
def test_the_role_to_ask_for_is_the_least_that_grants(right: Right, role: Role) -> None:
    assert least_role(right) is role


def test_last_use_is_written_in_batches(identity: SqlIdentity, resolver: Counting, clock: Clock) -> None:
    secret = issue(identity)
    resolver.resolve(secret)  # the first use is written at once
    [token] = identity.list_tokens()
    assert token.last_used_ms == clock.ms()
    first = clock.ms()
    clock.now += 2
    resolver.resolve(secret)
    assert identity.list_tokens()[0].last_used_ms == first  # noted, not yet written
    clock.now += 3
    resolver.resolve(secret)
    assert identity.list_tokens()[0].last_used_ms == clock.ms()
    clock.now += 1
    resolver.resolve(secret)
    resolver.flush()
    assert identity.list_tokens()[0].last_used_ms == clock.ms()


def _wait(backoff: Backoff) -> int:
    try:
        backoff.check(CLIENT)
    except TooManyAttempts as exc:
        return round(exc.retry_after_s)
    return 0
