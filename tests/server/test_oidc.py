"""Single sign-on against a real OpenID Connect provider process (`oidc-provider-mock`).

A test plays the browser with httpx: it follows the server's redirect to the provider, submits
the provider's sign-in form as a chosen subject, and brings the provider's answer back to the
server's callback, exactly as a browser would carry it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from plinth.core.errors import ConfigError, Unauthorized
from plinth.server.oidc_config import OidcConfig
from plinth.server.oidc_provider import OidcProvider
from waiting import wait_until

CLIENT_ID = "plinth-test"


@dataclass
class Provider:
    """The provider process: its issuer URL, and the users it signs in."""

    url: str

    def user(self, sub: str, **claims: Any) -> None:
        """Sign `sub` in with `claims` from now on (groups, preferred_username, email...)."""
        httpx.put(f"{self.url}/users/{sub}", json=claims, timeout=10).raise_for_status()


@pytest.fixture(scope="session")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """`python -m oidc_provider_mock` on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oidc_provider_mock", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"{url}/.well-known/openid-configuration", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, "the OIDC provider to answer its discovery document")
    yield Provider(url)
    proc.terminate()
    proc.wait(timeout=30)


def oidc_table(provider: Provider, **extra: Any) -> dict[str, Any]:
    return {
        "issuer": provider.url,
        "client_id": CLIENT_ID,
        "client_secret": "s3cret",
        "groups": [
            {"group": "ml-team", "workspace": "vision", "role": "editor"},
            {"group": "vision-leads", "workspace": "vision", "role": "maintainer"},
            {"group": "auditors", "workspace": "vision", "role": "auditor"},
        ],
        **extra,
    }


@pytest.fixture
def server(server_factory: Callable[..., Any], provider: Provider, tmp_path: Path) -> Any:
    """A team server over SQLite signing in through the provider, with workspace `vision`."""
    started = server_factory(f"sqlite:///{tmp_path / 'server' / 'plinth.db'}", oidc=oidc_table(provider))
    with started.client() as admin:
        admin.post("/api/v1/workspaces", json={"name": "vision"}).raise_for_status()
    return started


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


class Browser:
    """What a browser does in a sign-on: follow redirects, keep cookies, submit the form."""

    def __init__(self, server_url: str) -> None:
        self.http = httpx.Client(base_url=server_url, timeout=30)

    def start(self, **params: Any) -> str:
        """Open the login page; the provider's sign-in URL it redirects to."""
        answer = self.http.get("/api/v1/auth/login", params=params)
        assert answer.status_code == 303, answer.text
        return answer.headers["location"]

    def authorize(self, provider_url: str, sub: str) -> str:
        """Sign in at the provider as `sub`; the callback URL it sends the browser to."""
        assert self.http.get(provider_url).status_code == 200
        answer = self.http.post(provider_url, data={"sub": sub})
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]

    def sign_in(self, sub: str, **params: Any) -> httpx.Response:
        """The server's answer to the callback, after signing in as `sub`."""
        return self.http.get(self.authorize(self.start(**params), sub))


def code_from(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]


def whoami(server: Any, token: str) -> httpx.Response:
    with server.client(token) as client:
        return client.get("/api/v1/whoami")


def cli_login(server: Any, sub: str) -> dict[str, Any]:
    """What `plinth login` does over the loopback redirect: the session token's answer."""
    verifier = secrets.token_urlsafe(32)
    answer = Browser(server.url).sign_in(sub, cli_port=49999, code_challenge=challenge_of(verifier))
    assert answer.headers["location"].startswith("http://127.0.0.1:49999/callback?code=")
    with server.client("") as client:
        exchanged = client.post(
            "/api/v1/auth/token", json={"code": code_from(answer), "code_verifier": verifier}
        )
    assert exchanged.status_code == 200, exchanged.text
    return dict(exchanged.json())


def test_a_browser_signs_in_and_gets_its_group_role(server: Any, provider: Provider) -> None:
    provider.user("alice", preferred_username="alice", groups=["ml-team"])
    browser = Browser(server.url)
    answer = browser.sign_in("alice")
    assert answer.status_code == 303 and answer.headers["location"] == f"{server.url}/"
    cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith("plinth_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # http here
    me = browser.http.get("/api/v1/whoami").json()
    assert me["name"] == "alice" and me["roles"] == {"vision": "editor"} and me["kind"] == "user"


def test_the_cli_trades_a_one_time_code_for_a_session_token(server: Any, provider: Provider) -> None:
    provider.user("bob", preferred_username="bob", groups=["ml-team", "vision-leads"])
    session = cli_login(server, "bob")
    assert session["principal"] == "bob" and session["token"].startswith("plt_")
    me = whoami(server, session["token"]).json()
    assert me["name"] == "bob" and me["roles"] == {"vision": "maintainer"}  # the stronger role wins
    assert me["home_workspace"] == "vision"


def test_sign_on_over_postgresql(
    server_factory: Callable[..., Any], provider: Provider, pg_schema_factory: Callable[[], str]
) -> None:
    started = server_factory(pg_schema_factory(), oidc=oidc_table(provider))
    with started.client() as admin:
        admin.post("/api/v1/workspaces", json={"name": "vision"}).raise_for_status()
    provider.user("olga", groups=["vision-leads"])
    session = cli_login(started, "olga")
    assert whoami(started, session["token"]).json()["roles"] == {"vision": "maintainer"}


def test_a_login_code_works_once(server: Any, provider: Provider) -> None:
    provider.user("carol", groups=["ml-team"])
    verifier = secrets.token_urlsafe(32)
    code = code_from(
        Browser(server.url).sign_in("carol", cli_port=5000, code_challenge=challenge_of(verifier))
    )
    with server.client("") as client:
        first = client.post("/api/v1/auth/token", json={"code": code, "code_verifier": verifier})
        replay = client.post("/api/v1/auth/token", json={"code": code, "code_verifier": verifier})
    assert first.status_code == 200
    assert replay.status_code == 401 and "already used" in replay.json()["error"]["message"]


def test_a_code_needs_the_verifier_of_its_challenge(server: Any, provider: Provider) -> None:
    provider.user("dave", groups=["ml-team"])
    verifier = secrets.token_urlsafe(32)
    code = code_from(
        Browser(server.url).sign_in("dave", code_challenge=challenge_of(verifier), cli_port=5001)
    )
    with server.client("") as client:
        wrong = client.post(
            "/api/v1/auth/token", json={"code": code, "code_verifier": secrets.token_urlsafe(32)}
        )
        right = client.post("/api/v1/auth/token", json={"code": code, "code_verifier": verifier})
    assert wrong.status_code == 401 and "PKCE" in wrong.json()["error"]["message"]
    assert right.status_code == 200


def test_without_a_browser_the_page_shows_the_code(server: Any, provider: Provider) -> None:
    provider.user("erin", groups=["ml-team"])
    verifier = secrets.token_urlsafe(32)
    page = Browser(server.url).sign_in("erin", code_challenge=challenge_of(verifier))
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    code = page.text.split("<pre>")[1].split("</pre>")[0]
    with server.client("") as client:
        token = client.post("/api/v1/auth/token", json={"code": code, "code_verifier": verifier}).json()[
            "token"
        ]
    assert whoami(server, token).json()["name"] == "erin"


def test_a_changed_state_is_refused(server: Any, provider: Provider) -> None:
    provider.user("mallory", groups=["ml-team"])
    browser = Browser(server.url)
    callback = browser.authorize(browser.start(), "mallory")
    state = parse_qs(urlsplit(callback).query)["state"][0]
    forged = callback.replace(f"state={state}", f"state={state[:12]}{'x' * (len(state) - 12)}")
    answer = browser.http.get(forged)
    assert answer.status_code == 401 and "state" in answer.json()["error"]["message"]


def test_a_callback_from_another_browser_is_refused(server: Any, provider: Provider) -> None:
    provider.user("mallory", groups=["ml-team"])
    callback = Browser(server.url).authorize(Browser(server.url).start(), "mallory")
    victim = Browser(server.url)  # login CSRF: the victim's browser has no login in progress
    answer = victim.http.get(callback)
    assert answer.status_code == 401 and "No login in progress" in answer.json()["error"]["message"]


def test_the_provider_is_asked_with_pkce_state_and_nonce(server: Any) -> None:
    query = parse_qs(urlsplit(Browser(server.url).start()).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["state"][0] and query["nonce"][0] and query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [f"{server.url}/api/v1/auth/callback"]


def test_public_url_makes_the_redirect_uri(
    server_factory: Callable[..., Any], provider: Provider, tmp_path: Path
) -> None:
    proxied = server_factory(
        f"sqlite:///{tmp_path / 'p' / 'plinth.db'}",
        oidc=oidc_table(provider),
        public_url="https://plinth.example.com/team",
    )
    answer = httpx.get(f"{proxied.url}/api/v1/auth/login")
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["redirect_uri"] == ["https://plinth.example.com/team/api/v1/auth/callback"]
    cookie = answer.headers["set-cookie"]
    assert "Secure" in cookie and "Path=/team/api/v1/auth" in cookie


def test_an_unmapped_group_gives_no_role(server: Any, provider: Provider) -> None:
    provider.user("frank", groups=["marketing"])
    token = cli_login(server, "frank")["token"]
    assert whoami(server, token).json()["roles"] == {}
    with server.client(token, workspace="vision") as client:
        refused = client.get("/api/v1/workspaces/vision/members")
    assert refused.status_code == 403 and "vision" in refused.json()["error"]["message"]


def test_leaving_a_group_takes_its_role_away_at_the_next_login(server: Any, provider: Provider) -> None:
    provider.user("grace", groups=["ml-team"])
    assert whoami(server, cli_login(server, "grace")["token"]).json()["roles"] == {"vision": "editor"}
    provider.user("grace", groups=[])
    assert whoami(server, cli_login(server, "grace")["token"]).json()["roles"] == {}


def test_memberships_outside_mapped_workspaces_are_left_alone(server: Any, provider: Provider) -> None:
    provider.user("heidi", groups=[])
    cli_login(server, "heidi")
    with server.client() as admin:
        admin.post("/api/v1/workspaces", json={"name": "nlp"}).raise_for_status()
        admin.put("/api/v1/workspaces/nlp/members/heidi", json={"role": "viewer"}).raise_for_status()
    assert whoami(server, cli_login(server, "heidi")["token"]).json()["roles"] == {"nlp": "viewer"}


def test_a_service_account_name_cannot_sign_in(server: Any, provider: Provider) -> None:
    with server.client() as admin:
        admin.put("/api/v1/principals/ci-bot", json={"kind": "service"}).raise_for_status()
    provider.user("ci-bot", groups=["ml-team"])
    answer = Browser(server.url).sign_in("ci-bot")
    assert answer.status_code == 403 and "service account" in answer.json()["error"]["message"]


def test_a_cookie_session_needs_the_csrf_header_to_change_anything(server: Any, provider: Provider) -> None:
    provider.user("ivan", groups=["ml-team"])
    browser = Browser(server.url)
    browser.sign_in("ivan")
    refused = browser.http.post("/api/v1/auth/logout")
    assert refused.status_code == 403 and "X-Requested-With" in refused.json()["error"]["message"]
    done = browser.http.post("/api/v1/auth/logout", headers={"X-Requested-With": "fetch"})
    assert done.status_code == 200 and done.json() == {"revoked": True}


def test_logout_revokes_the_session_token(server: Any, provider: Provider) -> None:
    provider.user("judy", groups=["ml-team"])
    token = cli_login(server, "judy")["token"]
    with server.client(token) as client:
        assert client.post("/api/v1/auth/logout").json() == {"revoked": True}
    wait_until(lambda: whoami(server, token).status_code == 401, "the revoked session to be refused")


def test_the_provider_refusing_is_a_clear_401(server: Any) -> None:
    answer = httpx.get(f"{server.url}/api/v1/auth/callback", params={"error": "access_denied", "state": "x"})
    assert answer.status_code == 401 and "access_denied" in answer.json()["error"]["message"]


def test_bad_login_parameters_are_4xx(server: Any) -> None:
    for params in (
        {"cli_port": "80", "code_challenge": "x" * 43},
        {"cli_port": "5000"},
        {"code_challenge": "short"},
    ):
        answer = httpx.get(f"{server.url}/api/v1/auth/login", params=params)
        assert 400 <= answer.status_code < 500 and "error" in answer.json(), params


def test_garbage_codes_are_refused(server: Any) -> None:
    with server.client("") as client:
        answer = client.post("/api/v1/auth/token", json={"code": "garbage", "code_verifier": "v" * 43})
    assert answer.status_code == 401


# the relying party's checks of the ID token, one by one -----------------------------------------


def provider_client(provider: Provider, client_id: str = CLIENT_ID) -> OidcProvider:
    return OidcProvider(
        OidcConfig.parse({"issuer": provider.url, "client_id": client_id, "client_secret": "s"})
    )


def id_token_from(provider: Provider, rp: OidcProvider, sub: str, nonce: str) -> str:
    verifier = secrets.token_urlsafe(32)
    redirect = "http://127.0.0.1:1/callback"
    url = rp.authorization_url(redirect_uri=redirect, state="st", nonce=nonce, verifier=verifier)
    browser = httpx.Client(timeout=30)
    location = browser.post(url, data={"sub": sub}).headers["location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    return str(rp.exchange(code=code, redirect_uri=redirect, verifier=verifier)["id_token"])


def test_an_id_token_with_another_nonce_is_refused(provider: Provider) -> None:
    rp = provider_client(provider)
    token = id_token_from(provider, rp, "kim", nonce="the-nonce")
    assert rp.verify_id_token(token, nonce="the-nonce")["sub"] == "kim"
    with pytest.raises(Unauthorized, match="nonce"):
        rp.verify_id_token(token, nonce="another")


def test_an_id_token_for_another_client_is_refused(provider: Provider) -> None:
    token = id_token_from(provider, provider_client(provider), "kim", nonce="n")
    other = provider_client(provider, client_id="someone-else")
    with pytest.raises(Unauthorized, match="aud"):
        other.verify_id_token(token, nonce="n")


def test_an_id_token_signed_by_another_key_is_refused(provider: Provider) -> None:
    rp = provider_client(provider)
    genuine = id_token_from(provider, rp, "kim", nonce="n")
    header = jwt.decode(genuine, rp._key_set(refresh=False)).header  # the provider's kid
    claims = dict(jwt.decode(genuine, rp._key_set(refresh=False)).claims)
    forged = jwt.encode(header, {**claims, "sub": "root"}, RSAKey.generate_key(2048))
    with pytest.raises(Unauthorized):
        rp.verify_id_token(forged, nonce="n")


def test_an_unreachable_provider_is_a_503(server_factory: Callable[..., Any], tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{sock.getsockname()[1]}"
    table = {"issuer": gone, "client_id": "x", "client_secret": "s"}
    started = server_factory(f"sqlite:///{tmp_path / 'g' / 'plinth.db'}", oidc=table)
    answer = httpx.get(f"{started.url}/api/v1/auth/login")
    assert answer.status_code == 503 and "identity provider" in answer.json()["error"]["message"]


# the [oidc] table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"client_id": "x"}, "issuer is missing"),
        ({"issuer": "https://idp", "client_id": "x", "clientid": "y"}, "Unknown [oidc] setting(s) clientid"),
        (
            {
                "issuer": "https://idp",
                "client_id": "x",
                "groups": [{"group": "g", "workspace": "v", "role": "boss"}],
            },
            "Unknown role 'boss'",
        ),
        (
            {
                "issuer": "https://idp",
                "client_id": "x",
                "groups": [{"group": "g", "workspace": "Bad_Name", "role": "viewer"}],
            },
            "cannot name a workspace",
        ),
        ({"issuer": "https://idp", "client_id": "x", "client_secret_env": "NOPE_NOT_SET"}, "NOPE_NOT_SET"),
        ({"issuer": "https://idp", "client_id": "x", "session_hours": 0}, "session_hours"),
        ({"issuer": "https://idp", "client_id": "x", "scopes": "openid"}, "list of strings"),
    ],
)
def test_bad_oidc_tables_say_what_is_wrong(table: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        OidcConfig.parse(table, environ={})


def test_the_secret_can_come_from_the_environment() -> None:
    config = OidcConfig.parse(
        {"issuer": "https://idp/", "client_id": "x", "client_secret_env": "IDP_SECRET"},
        environ={"IDP_SECRET": "hush-hush"},
    )
    assert config.client_secret == "hush-hush" and config.issuer == "https://idp"
    assert "hush-hush" not in repr(config)
    assert config.scopes[0] == "openid"


def test_incomparable_roles_keep_file_order() -> None:
    config = OidcConfig.parse(
        {
            "issuer": "https://idp",
            "client_id": "x",
            "groups": [
                {"group": "auditors", "workspace": "vision", "role": "auditor"},
                {"group": "ml-team", "workspace": "vision", "role": "editor"},
                {"group": "admins", "workspace": "vision", "role": "admin"},
            ],
        },
        environ={},
    )
    assert config.roles_for(["ml-team", "auditors"]) == {"vision": "auditor"}
    assert config.roles_for(["ml-team", "admins"]) == {"vision": "admin"}
    assert config.roles_for(["nobody"]) == {}


# `plinth login` and `plinth logout` against the server -----------------------------------------

BROWSER_SCRIPT = """
import os, sys, httpx
with httpx.Client(timeout=30) as browser:
    to_provider = browser.get(sys.argv[1]).headers["location"]
    browser.get(to_provider)
    callback = browser.post(to_provider, data={"sub": os.environ["SSO_SUB"]}).headers["location"]
    to_cli = browser.get(callback).headers["location"]
    browser.get(to_cli).raise_for_status()
"""


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    return {**env, "PLINTH_HOME": str(tmp_path / "home"), "PLINTH_CONFIG_DIR": str(tmp_path / "cfg"), **extra}


def test_login_with_a_browser_keeps_a_private_token(server: Any, provider: Provider, tmp_path: Path) -> None:
    provider.user("kate", preferred_username="kate", groups=["ml-team"])
    browser = tmp_path / "browser.py"
    browser.write_text(BROWSER_SCRIPT)
    env = cli_env(tmp_path, BROWSER=f"{sys.executable} {browser} %s", SSO_SUB="kate")
    done = subprocess.run(
        [sys.executable, "-m", "plinth", "login", server.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"Logged in to {server.url} as kate (vision: editor)" in done.stdout
    kept = tmp_path / "cfg" / "credentials.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    token = json.loads(kept.read_text())["servers"][server.url]["token"]
    assert whoami(server, token).json()["name"] == "kate"


def test_login_without_a_browser_reads_the_code(server: Any, provider: Provider, tmp_path: Path) -> None:
    provider.user("liam", preferred_username="liam", groups=["auditors"])
    cli = subprocess.Popen(
        [sys.executable, "-m", "plinth", "login", server.url, "--no-browser"],
        env=cli_env(tmp_path, PYTHONUNBUFFERED="1"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert cli.stdout is not None
    url = ""
    while not url:
        line = cli.stdout.readline()
        assert line, cli.stderr.read() if cli.stderr else "the CLI ended"
        url = line.strip() if line.strip().startswith("http") else ""
    page = Browser(server.url).http
    to_provider = page.get(url).headers["location"]
    page.get(to_provider)
    callback = page.post(to_provider, data={"sub": "liam"}).headers["location"]
    code = page.get(callback).text.split("<pre>")[1].split("</pre>")[0]
    out, err = cli.communicate(code + "\n", timeout=120)
    assert cli.returncode == 0, err
    assert "as liam (vision: auditor)" in out
    kept = tmp_path / "cfg" / "credentials.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


def test_login_with_a_token_then_whoami_and_logout(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from plinth.cli.main import main

    monkeypatch.setenv("PLINTH_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("PLINTH_STORE", server.url)
    assert main(["login", "--token", server.admin_token]) == 0
    assert "as admin (superuser)" in capsys.readouterr().out
    assert stat.S_IMODE((tmp_path / "cfg" / "credentials.json").stat().st_mode) == 0o600
    assert main(["whoami", "--json"]) == 0  # PLINTH_TOKEN unset: the kept token is used
    assert json.loads(capsys.readouterr().out)["name"] == "admin"
    assert main(["logout"]) == 0
    assert "Logged out" in capsys.readouterr().out
    assert not json.loads((tmp_path / "cfg" / "credentials.json").read_text())["servers"]


def test_login_with_a_bad_token_keeps_nothing(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from plinth.cli.main import main

    monkeypatch.setenv("PLINTH_CONFIG_DIR", str(tmp_path / "cfg"))
    assert main(["login", server.url, "--token", "plt_" + "x" * 43]) != 0
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "cfg" / "credentials.json").exists()
