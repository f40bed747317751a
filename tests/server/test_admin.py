"""The admin API of a real team server, and `plinth workspaces|members|tokens|whoami` through it.

The server checks every rule: the CLI sends PLINTH_TOKEN and shows what the server answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import plinth
from plinth.cli.main import main
from plinth.tracking import context
from waiting import wait_until


@dataclass
class Result:
    code: int
    out: str
    err: str


CLI = Callable[..., Result]


@pytest.fixture
def server(server_factory: Callable[..., Any], tmp_path: Path) -> Any:
    """A team server over a fresh SQLite store."""
    return server_factory(f"sqlite:///{tmp_path / 'server' / 'plinth.db'}")


@pytest.fixture
def plinth_as(
    server: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> CLI:
    """`plinth_as(token, *args)`: the CLI in-process against the server with PLINTH_TOKEN=token."""

    monkeypatch.setenv("PLINTH_CONFIG_DIR", str(tmp_path / "config"))

    def call(token: str, *args: str) -> Result:
        monkeypatch.setenv("PLINTH_STORE", server.url)
        monkeypatch.setenv("PLINTH_TOKEN", token)
        context.reset()
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


def ok(result: Result) -> str:
    assert result.code == 0, (result.code, result.out, result.err)
    return result.out


def new_token(plinth_as: CLI, admin: str, *args: str) -> str:
    """The secret of a token made by `plinth tokens create ARGS --json` as `admin`."""
    return str(json.loads(ok(plinth_as(admin, "tokens", "create", *args, "--json")))["token"])


def status_of(server: Any, token: str, path: str = "/api/v1/whoami") -> int:
    with server.client(token) as http:
        return int(http.get(path).status_code)


# Through the REST API --------------------------------------------------------------------------


def test_workspaces_members_and_a_token_over_rest(server: Any) -> None:
    with server.client() as admin:
        made = admin.post("/api/v1/workspaces", json={"name": "vision", "description": "cv"})
        assert made.status_code == 201 and made.json()["name"] == "vision"
        assert admin.post("/api/v1/workspaces", json={"name": "vision"}).status_code == 409
        put = admin.put("/api/v1/workspaces/vision/members/alice", json={"role": "admin"})
        assert put.json() == {"workspace": "vision", "principal": "alice", "kind": "user", "role": "admin"}
        issued = admin.post(
            "/api/v1/tokens",
            json={"name": "laptop", "principal": "alice", "workspace": "vision", "role": "admin"},
        ).json()
    secret = issued["secret"]
    assert issued["token"]["principal"] == "alice" and "secret" not in issued["token"]

    with server.client(secret) as alice:
        me = alice.get("/api/v1/whoami").json()
        assert me == {
            "name": "alice",
            "kind": "user",
            "token_name": "laptop",
            "superuser": False,
            "roles": {"vision": "admin"},
            "home_workspace": "vision",
        }
        assert [w["name"] for w in alice.get("/api/v1/workspaces").json()] == ["vision"]
        assert alice.put("/api/v1/workspaces/vision/members/bob", json={"role": "viewer"}).status_code == 200
        assert {m["principal"] for m in alice.get("/api/v1/workspaces/vision/members").json()} == {
            "alice",
            "bob",
        }
        assert alice.delete("/api/v1/workspaces/vision/members/bob").status_code == 204
        assert alice.delete("/api/v1/workspaces/vision/members/bob").status_code == 404
        # an admin of vision is nobody in default, whatever header it sends
        assert alice.get("/api/v1/workspaces/default/members").status_code == 403
        denied = alice.get("/api/v1/workspaces/default/members", headers={"x-plinth-workspace": "vision"})
        assert denied.status_code == 403
        assert alice.post("/api/v1/workspaces", json={"name": "other"}).status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/api/v1/workspaces", {"name": "Bad Name!"}, 422),
        ("post", "/api/v1/workspaces", {"name": "ok", "extra": 1}, 422),
        ("post", "/api/v1/workspaces", [1, 2], 422),
        ("put", "/api/v1/workspaces/default/members/alice", {"role": "boss"}, 422),
        ("put", "/api/v1/workspaces/ghost/members/alice", {"role": "viewer"}, 404),
        ("put", "/api/v1/workspaces/NO!/members/alice", {"role": "viewer"}, 422),
        ("get", "/api/v1/workspaces/ghost/members", None, 404),
        ("put", "/api/v1/principals/bad%20name", {"kind": "user"}, 422),
        ("put", "/api/v1/principals/bob", {"kind": "robot"}, 422),
        ("get", "/api/v1/principals/nobody", None, 404),
        ("post", "/api/v1/tokens", {"name": "x", "principal": "nobody", "workspace": "default"}, 404),
        ("post", "/api/v1/tokens", {"name": "x", "principal": "admin", "purpose": "superuser"}, 422),
        ("post", "/api/v1/tokens", {"name": "x", "principal": "p", "expires_ms": -5}, 422),
        (
            "post",
            "/api/v1/tokens",
            {"name": "x", "principal": "p", "workspace": "ghost", "role": "viewer"},
            404,
        ),
        ("delete", "/api/v1/tokens/nothing", None, 404),
    ],
)
def test_bad_admin_requests_are_4xx_with_a_message(
    server: Any, method: str, path: str, body: object, status: int
) -> None:
    with server.client() as admin:
        admin.put("/api/v1/principals/p", json={"kind": "service"})
        answer = admin.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["message"]


def test_names_that_cannot_exist_are_refused_before_the_database(team_server: Any) -> None:
    with team_server.client() as admin:
        for method, path, body in [
            ("get", "/api/v1/principals/a%00b", None),
            ("get", "/api/v1/principals/a%00b/roles", None),
            ("put", "/api/v1/workspaces/default/members/a%00b", {"role": "viewer"}),
            ("delete", "/api/v1/tokens/a%00b", None),
            ("get", "/api/v1/tokens?principal=a%00b", None),
            ("post", "/api/v1/workspaces", {"name": "ok", "description": "a\x00b"}),
            ("post", "/api/v1/tokens", {"name": "x", "principal": "a\x00b"}),
        ]:
            answer = admin.request(method, path, json=body)
            assert answer.status_code == 422, (method, path, answer.text)


def test_without_or_with_a_bad_token_every_admin_route_is_401(server: Any) -> None:
    for token in ("", "plt_" + "x" * 43):
        with server.client(token) as anonymous:
            assert anonymous.get("/api/v1/whoami").status_code == 401
            assert anonymous.get("/api/v1/tokens").status_code == 401


# Through the CLI --------------------------------------------------------------------------------


def test_the_cli_manages_workspaces_members_and_tokens_through_the_server(
    server: Any, plinth_as: CLI
) -> None:
    admin = server.admin_token
    ok(plinth_as(admin, "workspaces", "create", "vision"))
    ok(plinth_as(admin, "members", "add", "vision", "alice", "--role", "viewer"))
    ci = new_token(plinth_as, admin, "--name", "ci", "--workspace", "vision", "--role", "editor")

    me = json.loads(ok(plinth_as(ci, "whoami", "--json")))
    assert (me["name"], me["kind"], me["token_name"], me["roles"]) == (
        "ci",
        "service",
        "ci",
        {"vision": "editor"},
    )
    shown = ok(plinth_as(ci, "whoami"))
    assert "ci (token ci), service" in shown and "vision: editor" in shown

    members = {
        m["principal"]: m["role"]
        for m in json.loads(ok(plinth_as(admin, "members", "list", "vision", "--json")))
    }
    assert members == {"alice": "viewer", "ci": "editor"}
    assert [w["name"] for w in json.loads(ok(plinth_as(ci, "workspaces", "list", "--json")))] == ["vision"]
    assert "default" in ok(plinth_as(admin, "workspaces", "list"))

    for who in (admin, ci):
        listed = ok(plinth_as(who, "tokens", "list", "--json"))
        assert ci not in listed
        assert [(t["name"], t["principal"], t["role"]) for t in json.loads(listed)] == [
            ("ci", "ci", "editor")
        ]
        assert not {"secret", "hash", "token"} & set(json.loads(listed)[0])
    assert ci not in ok(plinth_as(admin, "tokens", "list"))

    ok(plinth_as(admin, "members", "remove", "vision", "alice"))
    assert "alice" not in ok(plinth_as(admin, "members", "list", "vision"))


def test_a_revoked_token_is_refused_within_5_s(server: Any, plinth_as: CLI) -> None:
    ok(plinth_as(server.admin_token, "workspaces", "create", "vision"))
    ci = new_token(plinth_as, server.admin_token, "--name", "ci", "--workspace", "vision", "--role", "editor")
    assert status_of(server, ci) == 200
    assert "Revoked token 'ci' of ci" in ok(plinth_as(server.admin_token, "tokens", "revoke", "ci"))
    wait_until(lambda: status_of(server, ci) == 401, "the revoked token to be refused", timeout_s=6)
    (listed,) = json.loads(ok(plinth_as(server.admin_token, "tokens", "list", "--json")))
    assert listed["revoked_ms"] is not None and listed["last_used_ms"] is not None


def test_an_expired_token_is_refused(server: Any, plinth_as: CLI) -> None:
    short = new_token(plinth_as, server.admin_token, "--name", "short", "--role", "viewer", "--expires", "1s")
    wait_until(lambda: status_of(server, short) == 401, "the token to expire", timeout_s=10)
    with server.client(short) as http:
        assert "expired" in http.get("/api/v1/whoami").json()["error"]["message"]


def test_who_may_create_and_revoke_tokens(server: Any, plinth_as: CLI) -> None:
    admin = server.admin_token
    ok(plinth_as(admin, "workspaces", "create", "vision"))
    ok(plinth_as(admin, "members", "add", "vision", "bob", "--role", "editor"))
    ok(plinth_as(admin, "members", "add", "vision", "lead", "--role", "admin"))
    alice = new_token(
        plinth_as, admin, "--name", "laptop", "--workspace", "vision", "--role", "viewer", "--user", "alice"
    )
    lead = new_token(
        plinth_as, admin, "--name", "laptop", "--workspace", "vision", "--role", "admin", "--user", "lead"
    )

    # a viewer: no tokens for others, nor service accounts, nor above its own role (403)
    for args in (
        ("--user", "bob", "--role", "viewer"),
        ("--role", "viewer"),
        ("--user", "alice", "--role", "editor"),
    ):
        refused = plinth_as(alice, "tokens", "create", "--name", "x", "--workspace", "vision", *args)
        assert refused.code == 1 and refused.err.startswith("error: ") and "Traceback" not in refused.err
    with server.client(alice) as http:
        body = {"name": "x", "principal": "bob", "workspace": "vision", "role": "viewer"}
        assert http.post("/api/v1/tokens", json=body).status_code == 403
        assert http.delete("/api/v1/tokens/laptop", params={"principal": "lead"}).status_code == 403
    # ... but one for itself, up to its role
    own = new_token(
        plinth_as, alice, "--name", "own", "--workspace", "vision", "--role", "viewer", "--user", "alice"
    )
    assert json.loads(ok(plinth_as(own, "whoami", "--json")))["roles"] == {"vision": "viewer"}
    assert {t["name"] for t in json.loads(ok(plinth_as(alice, "tokens", "list", "--json")))} == {
        "laptop",
        "own",
    }

    # an admin of the workspace: service accounts and others' tokens there, and revokes them
    bot = new_token(plinth_as, lead, "--name", "bot", "--workspace", "vision", "--role", "editor")
    ok(
        plinth_as(
            lead,
            "tokens",
            "create",
            "--name",
            "ci",
            "--workspace",
            "vision",
            "--role",
            "viewer",
            "--user",
            "bob",
        )
    )
    listed = {
        (t["name"], t["principal"]) for t in json.loads(ok(plinth_as(lead, "tokens", "list", "--json")))
    }
    assert {("bot", "bot"), ("ci", "bob"), ("laptop", "alice"), ("own", "alice")} <= listed
    ok(plinth_as(lead, "tokens", "revoke", "own", "--user", "alice"))
    ok(plinth_as(lead, "tokens", "revoke", "bot"))
    wait_until(lambda: status_of(server, bot) == 401, "the revoked token to be refused", timeout_s=6)


def test_the_audit_log_names_the_principal_not_plinth_user(
    server: Any, plinth_as: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    ci = new_token(plinth_as, server.admin_token, "--name", "ci", "--role", "editor")
    monkeypatch.setenv("PLINTH_STORE", server.url)
    monkeypatch.setenv("PLINTH_TOKEN", ci)
    monkeypatch.setenv("PLINTH_USER", "mallory")
    context.reset()
    with plinth.start_run(experiment="audited") as run:
        run.log_param("lr", 0.1)

    auditor = server.admin_token  # an editor may not read the audit log
    events = ok(plinth_as(auditor, "audit", "list", "--user", "ci", "--limit", "0"))
    assert "ci (token ci)" in events and run.id in events
    assert "mallory" not in events
    assert run.id not in ok(plinth_as(auditor, "audit", "list", "--user", "mallory"))
    admin_events = ok(plinth_as(auditor, "audit", "list", "--user", "admin"))
    assert "token.create" in admin_events and ci not in admin_events


def test_no_token_gives_one_clean_line(server: Any, plinth_as: CLI) -> None:
    result = plinth_as("", "tokens", "list")
    assert result.code != 0 and result.err.startswith("error: ") and "PLINTH_TOKEN" in result.err
    assert "Traceback" not in result.err
