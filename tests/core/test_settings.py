"""Settings: the environment, then a `.env` file in the working directory, then the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from plinth.core.errors import ConfigError
from plinth.core.settings import Settings, read_env_file


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory for the test."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_dotenv_file_in_the_working_directory_sets_what_the_environment_does_not(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / ".env").write_text("PLINTH_STORE=sqlite:////data/plinth.db\nPLINTH_USER=from-file\n")
    monkeypatch.setenv("PLINTH_USER", "from-env")

    settings = Settings.from_env()

    assert settings.store_url == "sqlite:////data/plinth.db"
    assert settings.user == "from-env"
    assert settings.heartbeat_s == 10.0


def test_without_a_dotenv_file_the_defaults_apply(project: Path) -> None:
    assert Settings.from_env({}).store_url is None


def test_env_file_none_reads_the_environment_alone(project: Path) -> None:
    (project / ".env").write_text("PLINTH_HOME=/elsewhere\n")
    assert Settings.from_env({}, env_file=None).home == ".plinth"
    assert Settings.from_env({}).home == "/elsewhere"


def test_values_from_the_file_are_checked_like_variables(project: Path) -> None:
    (project / ".env").write_text("PLINTH_HEARTBEAT_S=soon\n")
    with pytest.raises(ConfigError, match="PLINTH_HEARTBEAT_S='soon'"):
        Settings.from_env({})


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("KEY=plain", "plain"),
        ("KEY = spaced ", "spaced"),
        ("export KEY=exported", "exported"),
        ('KEY="double # kept"', "double # kept"),
        ("KEY='single'", "single"),
        ("KEY=value # a comment", "value"),
        ("KEY=a=b", "a=b"),
        ("KEY=", ""),
    ],
)
def test_dotenv_lines(tmp_path: Path, line: str, value: str) -> None:
    path = tmp_path / ".env"
    path.write_text(f"# settings for this project\n\n{line}\n")
    assert read_env_file(path) == {"KEY": value}


def test_a_line_that_is_not_key_value_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("PLINTH_HOME=/data\nnot a setting\n")
    with pytest.raises(ConfigError, match=r"\.env, line 2: 'not a setting' is not KEY=VALUE"):
        read_env_file(path)


def test_a_missing_file_reads_as_empty(tmp_path: Path) -> None:
    assert read_env_file(tmp_path / "absent.env") == {}


@pytest.mark.parametrize(
    ("value", "on"), [(None, False), ("", False), ("1", True), ("on", True), ("off", False)]
)
def test_opentelemetry_is_off_unless_asked_for(value: str | None, on: bool) -> None:
    environ = {} if value is None else {"PLINTH_OPENTELEMETRY": value}
    assert Settings.from_env(environ, env_file=None).opentelemetry is on


def test_an_opentelemetry_value_that_is_not_on_or_off_is_refused() -> None:
    with pytest.raises(ConfigError, match="PLINTH_OPENTELEMETRY='maybe' is not on or off"):
        Settings.from_env({"PLINTH_OPENTELEMETRY": "maybe"}, env_file=None)
