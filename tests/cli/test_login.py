"""Credentials `plinth login` keeps: one 0600 file per user, keyed by server, replaced atomically."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from plinth.cli.main import main
from plinth.core.errors import ConfigError, InvalidInput
from plinth.store.credentials import (
    credentials_path,
    load_token,
    normalize_server_url,
    remove_token,
    save_token,
    saved_entry,
)


def test_a_saved_token_reads_back_for_the_same_server(tmp_path: Path) -> None:
    folder = tmp_path / "config" / "plinth"
    save_token(folder, "https://Plinth.Example.com:443/", "plt_one", name="laptop")
    assert load_token(folder, "https://plinth.example.com") == "plt_one"
    assert load_token(folder, "https://plinth.example.com/api/v1") == "plt_one"
    assert load_token(folder, "https://plinth.example.com:8443") is None
    assert saved_entry(folder, "https://plinth.example.com")["name"] == "laptop"  # type: ignore[index]


def test_the_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    save_token(folder, "http://127.0.0.1:8080", "plt_one")
    save_token(folder, "http://127.0.0.1:9090", "plt_two")
    save_token(folder, "http://127.0.0.1:8080", "plt_three")
    path = credentials_path(folder)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == ["credentials.json"]  # no temporary file left
    servers = json.loads(path.read_text())["servers"]
    assert {url: entry["token"] for url, entry in servers.items()} == {
        "http://127.0.0.1:8080": "plt_three",
        "http://127.0.0.1:9090": "plt_two",
    }


def test_removing_forgets_one_server_only(tmp_path: Path) -> None:
    save_token(tmp_path, "http://a:1", "plt_a")
    save_token(tmp_path, "http://b:1", "plt_b")
    assert remove_token(tmp_path, "http://a:1") is True
    assert remove_token(tmp_path, "http://a:1") is False
    assert load_token(tmp_path, "http://a:1") is None and load_token(tmp_path, "http://b:1") == "plt_b"


def test_nothing_saved_reads_as_none(tmp_path: Path) -> None:
    assert load_token(tmp_path / "missing", "http://a:1") is None
    assert load_token(None, "http://a:1") is None


def test_a_damaged_file_says_how_to_recover(tmp_path: Path) -> None:
    credentials_path(tmp_path).write_text("{not json")
    with pytest.raises(ConfigError, match="plinth login"):
        load_token(tmp_path, "http://a:1")


@pytest.mark.parametrize("url", ["ftp://host", "plinth.example.com", "sqlite:///x.db", "https://"])
def test_only_server_urls_are_keys(url: str) -> None:
    with pytest.raises(InvalidInput, match="team server URL"):
        normalize_server_url(url)


def test_ipv6_and_paths_normalize() -> None:
    assert normalize_server_url("HTTP://[::1]:80/team/") == "http://[::1]/team"
    assert normalize_server_url("https://h:8443/team/api/v1/") == "https://h:8443/team"


def test_login_without_a_server_says_how_to_name_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login"]) == 2
    assert "PLINTH_STORE" in capsys.readouterr().err


def test_login_refuses_a_database_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "postgresql://db/plinth", "--token", "plt_x"]) == 2
    assert "not a team server URL" in capsys.readouterr().err


def test_logout_with_nothing_kept(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PLINTH_CONFIG_DIR", str(tmp_path / "config"))
    assert main(["logout", "http://127.0.0.1:1"]) == 0
    assert "No token kept" in capsys.readouterr().out
