"""Which stores Ray workers on other hosts can use (the decision alone; no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from plinth.compute.ray.cluster import NodeInfo, forwarded_env, storage_problems
from plinth.core.settings import Settings


def node(address: str) -> NodeInfo:
    return NodeInfo("n" * 56, address, "host", True, False, 4.0, 0.0, 2**33, 2**30, {})


def sees_all(folder: str, remote: list[NodeInfo]) -> list[str]:
    return []


def sees_none(folder: str, remote: list[NodeInfo]) -> list[str]:
    return [n.address for n in remote]


REMOTE = [node("10.0.0.7")]


def test_postgres_and_s3_are_shared() -> None:
    settings = Settings(store_url="postgresql://u@db.internal/plinth", artifacts_url="s3://bucket/p")
    assert storage_problems(settings, REMOTE, sees_none) == []


def test_sqlite_and_an_unshared_folder_name_the_settings_to_use(tmp_path: Path) -> None:
    problems = storage_problems(Settings(home=str(tmp_path)), REMOTE, sees_none)
    assert len(problems) == 2
    assert "SQLite" in problems[0] and "PLINTH_STORE=postgresql://" in problems[0]
    assert "10.0.0.7 cannot see" in problems[1] and "PLINTH_ARTIFACTS=s3://" in problems[1]


def test_a_folder_every_node_sees_is_shared() -> None:
    settings = Settings(store_url="postgresql://u@db/p", artifacts_url="/mnt/shared/artifacts")
    assert storage_problems(settings, REMOTE, sees_all) == []


@pytest.mark.parametrize(
    ("store", "endpoint", "needle"),
    [
        ("postgresql://u:secret@127.0.0.1/p", "", "PLINTH_STORE to the database server"),
        ("postgresql://u@db/p", "http://localhost:9000", "PLINTH_S3_ENDPOINT_URL"),
    ],
)
def test_loopback_addresses_are_not_shared(store: str, endpoint: str, needle: str) -> None:
    options = {"endpoint_url": endpoint} if endpoint else {}
    settings = Settings(store_url=store, artifacts_url="s3://b/p", storage_options=options)
    [problem] = storage_problems(settings, REMOTE, sees_all)
    assert needle in problem and "secret" not in problem
    assert storage_problems(settings, [node("127.0.0.2")], sees_all) == []  # that node is on this host


def test_workers_get_settings_and_credentials() -> None:
    environ = {"PLINTH_STORE": "x", "AWS_SECRET_ACCESS_KEY": "k", "HOME": "/root", "PATH": "/bin"}
    assert forwarded_env(environ) == {"PLINTH_STORE": "x", "AWS_SECRET_ACCESS_KEY": "k"}


def test_workers_never_get_a_persons_or_the_servers_token() -> None:
    environ = {"PLINTH_STORE": "https://team", "PLINTH_TOKEN": "plt_mine", "PLINTH_ADMIN_TOKEN": "plt_root"}
    assert forwarded_env(environ) == {"PLINTH_STORE": "https://team"}


def test_workers_get_the_drivers_dotenv_settings_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PLINTH_STORE=from-file\nPLINTH_ARTIFACTS=s3://file/p\nOTHER=1\n")
    monkeypatch.setenv("PLINTH_ARTIFACTS", "s3://env/p")
    forwarded = forwarded_env()
    assert forwarded["PLINTH_STORE"] == "from-file" and forwarded["PLINTH_ARTIFACTS"] == "s3://env/p"
    assert "OTHER" not in forwarded
