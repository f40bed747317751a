"""`plinth workspaces`, `members`, `tokens` and `whoami` run directly on a SQL store, as a local admin.

No server and no token: the commands change the default workspace's database themselves and the
audit log names PLINTH_USER. (Through a team server: tests/server/test_admin.py.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from plinth.cli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str


CLI = Callable[..., Result]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], store_url: str, monkeypatch: pytest.MonkeyPatch) -> CLI:
    """`plinth ARGS...` in-process on the parametrized store (SQLite, then PostgreSQL)."""
    monkeypatch.setenv("PLINTH_STORE", store_url)

    def call(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


def ok(result: Result) -> str:
    assert result.code == 0, (result.code, result.out, result.err)
    return result.out


def failed(result: Result, code: int, *needles: str) -> None:
    assert result.code == code, (result.code, result.out, result.err)
    assert result.err.startswith("error: "), result.err
    assert "Traceback" not in result.err + result.out
    for needle in needles:
        assert needle in result.err, (needle, result.err)


def test_a_local_admin_makes_a_workspace_members_and_a_service_token(run_cli: CLI) -> None:
    assert "Created workspace 'vision'" in ok(
        run_cli("workspaces", "create", "vision", "--description", "cv")
    )
    assert "vision" in [w["name"] for w in json.loads(ok(run_cli("workspaces", "list", "--json")))]

    ok(run_cli("members", "add", "vision", "alice", "--role", "viewer"))
    created = json.loads(
        ok(run_cli("tokens", "create", "--name", "ci", "--workspace", "vision", "--role", "editor", "--json"))
    )
    assert set(created) == {"name", "token"} and created["name"] == "ci"
    assert created["token"].startswith("plt_")

    members = {m["principal"]: m for m in json.loads(ok(run_cli("members", "list", "vision", "--json")))}
    assert members["alice"] == {"principal": "alice", "kind": "user", "role": "viewer"}
    assert members["ci"] == {"principal": "ci", "kind": "service", "role": "editor"}

    listed = ok(run_cli("tokens", "list", "--json"))
    assert created["token"] not in listed
    (token,) = json.loads(listed)
    shown = (token["name"], token["principal"], token["kind"], token["workspace"], token["role"])
    assert shown == ("ci", "ci", "service", "vision", "editor")
    assert not {"secret", "hash", "token"} & set(token)

    ok(run_cli("members", "remove", "vision", "alice"))
    assert "alice" not in ok(run_cli("members", "list", "vision"))


def test_the_secret_is_shown_once_with_a_warning_and_never_listed(run_cli: CLI) -> None:
    out = ok(run_cli("tokens", "create", "--name", "nightly", "--role", "viewer", "--expires", "90d"))
    secret = next(line for line in out.splitlines() if line.startswith("plt_"))
    assert "will not be shown again" in out
    assert "service account nightly (viewer in default, expires" in out
    table = ok(run_cli("tokens", "list"))
    assert "nightly" in table and secret not in table


def test_a_token_for_a_user_and_its_revocation(run_cli: CLI) -> None:
    ok(run_cli("tokens", "create", "--name", "laptop", "--role", "editor", "--user", "alice"))
    ok(run_cli("tokens", "create", "--name", "laptop", "--role", "viewer", "--user", "bob"))
    by_user = json.loads(ok(run_cli("tokens", "list", "--user", "alice", "--json")))
    assert [(t["principal"], t["kind"], t["role"]) for t in by_user] == [("alice", "user", "editor")]

    failed(run_cli("tokens", "revoke", "laptop"), 2, "alice", "bob", "--user")
    assert "Revoked token 'laptop' of bob" in ok(run_cli("tokens", "revoke", "laptop", "--user", "bob"))
    (bob,) = json.loads(ok(run_cli("tokens", "list", "--user", "bob", "--json")))
    assert bob["revoked_ms"] is not None
    failed(run_cli("tokens", "revoke", "laptop", "--user", "bob"), 3, "laptop")


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("tokens", "create", "--name", "x", "--role", "boss"), 2, "Unknown role 'boss'"),
        (
            ("tokens", "create", "--name", "x", "--role", "viewer", "--expires", "soon"),
            2,
            "'soon' is not a time",
        ),
        (("tokens", "create", "--name", "x", "--role", "viewer", "--expires", "0s"), 2, "longer than zero"),
        (
            ("tokens", "create", "--name", "x", "--role", "viewer", "--workspace", "Nope!"),
            2,
            "cannot name a workspace",
        ),
        (
            ("tokens", "create", "--name", "x", "--role", "viewer", "--workspace", "ghost"),
            3,
            "No workspace 'ghost'",
        ),
        (("members", "add", "ghost", "alice", "--role", "viewer"), 3, "No workspace 'ghost'"),
        (("members", "remove", "default", "nobody"), 3, "nobody"),
        (("tokens", "revoke", "nothing"), 3, "nothing"),
    ],
)
def test_bad_input_is_one_clean_line(run_cli: CLI, args: tuple[str, ...], code: int, needle: str) -> None:
    failed(run_cli(*args), code, needle)


def test_names_clash_cleanly(run_cli: CLI) -> None:
    ok(run_cli("workspaces", "create", "vision"))
    failed(run_cli("workspaces", "create", "vision"), 2, "exists")
    ok(run_cli("tokens", "create", "--name", "ci", "--role", "editor"))
    failed(run_cli("tokens", "create", "--name", "ci", "--role", "editor"), 2, "ci")
    ok(run_cli("members", "add", "default", "alice", "--role", "viewer"))
    failed(run_cli("tokens", "create", "--name", "alice", "--role", "viewer"), 2, "--user alice")


def test_whoami_and_the_audit_log_name_the_local_user(run_cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_USER", "carol")
    me = json.loads(ok(run_cli("whoami", "--json")))
    assert (me["name"], me["superuser"], me["token_name"]) == ("carol", True, None)
    assert "carol, user" in ok(run_cli("whoami"))

    ok(run_cli("workspaces", "create", "vision"))
    ok(run_cli("tokens", "create", "--name", "ci", "--workspace", "vision", "--role", "editor"))
    events = ok(run_cli("audit", "list", "--user", "carol"))
    for action in ("workspace.create", "token.create"):
        assert action in events
    assert "plt_" not in events
    assert "token.create" not in ok(run_cli("audit", "list", "--user", "tester"))
