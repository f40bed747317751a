"""Tests for plinth.tracking.environment."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.core.errors import InvalidInput
from plinth.tracking import environment
from plinth.tracking.environment import (
    capture_environment,
    clear_cache,
    describe_gpus,
    environment_digest,
    run_environment,
)


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """Start and end every test with an empty per-process cache."""
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def no_main_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the repository be found from cwd, as in an interactive session."""
    monkeypatch.delattr(sys.modules["__main__"], "__file__", raising=False)


def _git(repo: Path, *args: str) -> None:
    """Run git in repo with a fixed identity, failing the test on error."""
    subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=t@example.com", "-C", str(repo), *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository on branch main with one commit and an origin remote."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    (path / "train.py").write_text("print('hi')\n")
    _git(path, "add", "train.py")
    _git(path, "commit", "-q", "-m", "first")
    _git(path, "remote", "add", "origin", "https://user:s3cret@example.com/team/proj.git")
    return path


def _head(repo: Path) -> str:
    """The commit id HEAD points to."""
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def test_capture_has_every_field_and_is_json() -> None:
    env = capture_environment()
    assert set(env) == {
        "python",
        "platform",
        "host",
        "user",
        "cpu_count",
        "memory_bytes",
        "packages",
        "command",
        "git",
        "gpus",
        "os",
        "cuda",
        "sources",
    }
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert env["python"]["executable"] == sys.executable
    assert isinstance(env["memory_bytes"], int) and env["memory_bytes"] > 0
    assert isinstance(env["platform"], str) and isinstance(env["host"], str)
    assert json.loads(json.dumps(env, allow_nan=False)) == env


def test_packages_are_normalized_sorted_and_versioned() -> None:
    packages = capture_environment()["packages"]
    assert isinstance(packages, dict)
    assert list(packages) == sorted(packages)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) for name in packages)
    assert packages["numpy"] == importlib.metadata.version("numpy")
    assert packages["pytest"] == importlib.metadata.version("pytest")


def test_command_is_shell_quoted_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["train.py", "--name", "my run", "--lr=0.1"]
    monkeypatch.setattr(sys, "argv", argv)
    assert capture_environment()["command"] == shlex.join(argv)


def test_expensive_parts_are_computed_once_per_process() -> None:
    first = capture_environment()
    first["packages"]["numpy"] = "tampered"  # a caller mutating its copy
    first["python"]["version"] = "tampered"
    second = capture_environment()
    assert environment._packages.cache_info().misses == 1
    assert environment._packages.cache_info().hits == 1
    assert environment._gpus.cache_info().misses == 1
    assert environment._git_info.cache_info().misses == 1
    assert environment._static_facts.cache_info().misses == 1
    assert second["packages"]["numpy"] == importlib.metadata.version("numpy")
    assert second["python"]["version"] != "tampered"


def test_runs_share_one_capture_per_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_environment()
    assert run_environment() is first
    monkeypatch.setattr(sys, "argv", ["train.py", "--lr=0.2"])
    other = run_environment()
    assert other is not first and other["command"] == "train.py --lr=0.2"
    clear_cache()
    assert run_environment() is not other


def test_clear_cache_recomputes() -> None:
    capture_environment()
    clear_cache()
    capture_environment()
    assert environment._packages.cache_info().misses == 1
    assert environment._packages.cache_info().hits == 0


def test_git_state_of_repository_from_cwd(repo: Path, no_main_file: None) -> None:
    git = capture_environment(cwd=str(repo))["git"]
    assert git == {
        "commit": _head(repo),
        "branch": "main",
        "dirty": False,
        "remote": "https://example.com/team/proj.git",  # credentials never stored
    }


def test_modified_tracked_file_makes_repository_dirty(repo: Path, no_main_file: None) -> None:
    (repo / "train.py").write_text("print('changed')\n")
    assert capture_environment(cwd=str(repo))["git"]["dirty"] is True


def test_main_file_directory_wins_over_cwd(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules["__main__"], "__file__", str(repo / "train.py"), raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert capture_environment(cwd=str(elsewhere))["git"]["commit"] == _head(repo)


def test_detached_head_has_no_branch(repo: Path, no_main_file: None) -> None:
    _git(repo, "checkout", "-q", "--detach")
    git = capture_environment(cwd=str(repo))["git"]
    assert git["branch"] is None and git["commit"] == _head(repo)


def test_outside_a_repository_git_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_main_file: None
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    plain = tmp_path / "plain"
    plain.mkdir()
    assert capture_environment(cwd=str(plain))["git"] is None


@pytest.mark.parametrize(
    "failure",
    [FileNotFoundError("git"), subprocess.TimeoutExpired("git", 5.0), PermissionError("no")],
)
def test_git_failures_never_raise(
    failure: Exception, repo: Path, monkeypatch: pytest.MonkeyPatch, no_main_file: None
) -> None:
    def broken_run(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(environment.subprocess, "run", broken_run)
    assert capture_environment(cwd=str(repo))["git"] is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:token@github.com/a/b.git", "https://github.com/a/b.git"),
        ("https://token@github.com:8443/a/b.git", "https://github.com:8443/a/b.git"),
        ("https://github.com/a/b.git", "https://github.com/a/b.git"),
        ("git@github.com:a/b.git", "git@github.com:a/b.git"),
        ("ssh://git@github.com/a/b.git", "ssh://github.com/a/b.git"),
        ("", None),
        (None, None),
    ],
)
def test_remote_credentials_are_stripped(url: str | None, expected: str | None) -> None:
    assert environment._strip_credentials(url) == expected


def test_user_is_none_when_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_user() -> str:
        raise OSError("no login name")

    monkeypatch.setattr(environment.getpass, "getuser", no_user)
    assert capture_environment()["user"] is None


def _fake_nvml(count: int, *, init_error: bool = False) -> types.ModuleType:
    """A stand-in for the pynvml module reporting count H100s."""
    nvml = types.ModuleType("pynvml")

    def init() -> None:
        if init_error:
            raise RuntimeError("NVML Shared Library Not Found")

    nvml.nvmlInit = init
    nvml.nvmlShutdown = lambda: None
    nvml.nvmlDeviceGetCount = lambda: count
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetName = lambda h: b"NVIDIA H100"  # older bindings return bytes
    nvml.nvmlDeviceGetUUID = lambda h: f"GPU-{h}"
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=80 * 2**30)
    return nvml


def test_gpus_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(2))
    env = capture_environment()
    assert env["gpus"] == [
        {"index": 0, "name": "NVIDIA H100", "memory_bytes": 80 * 2**30, "uuid": "GPU-0"},
        {"index": 1, "name": "NVIDIA H100", "memory_bytes": 80 * 2**30, "uuid": "GPU-1"},
    ]
    assert describe_gpus(env) == "2x NVIDIA H100 (80.0 GiB)"


@pytest.mark.parametrize("nvml", [None, _fake_nvml(0), _fake_nvml(1, init_error=True)])
def test_no_gpus_is_an_empty_list(nvml: types.ModuleType | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", nvml)  # None makes the import fail
    env = capture_environment()
    assert env["gpus"] == []
    assert describe_gpus(env) == "none"


def test_describe_gpus_groups_models() -> None:
    gpus = [
        {"index": 0, "name": "A", "memory_bytes": 2**30, "uuid": "u0"},
        {"index": 1, "name": "B", "memory_bytes": 0, "uuid": "u1"},
        {"index": 2, "name": "A", "memory_bytes": 2**30, "uuid": "u2"},
    ]
    assert describe_gpus({"gpus": gpus}) == "2x A (1.0 GiB), 1x B"
    assert describe_gpus({}) == "none"


def test_digest_is_sha256_of_canonical_json() -> None:
    env = capture_environment()
    canonical = json.dumps(env, sort_keys=True, separators=(",", ":"))
    assert environment_digest(env) == hashlib.sha256(canonical.encode()).hexdigest()


def test_digest_ignores_key_order_but_not_values() -> None:
    env = {"b": 1, "a": {"y": [1, 2], "x": None}}
    reordered = {"a": {"x": None, "y": [1, 2]}, "b": 1}
    assert environment_digest(env) == environment_digest(reordered)
    assert environment_digest(env) != environment_digest({**env, "b": 2})


@pytest.mark.parametrize("bad", [{"x": object()}, {"x": float("nan")}])
def test_digest_rejects_non_json(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        environment_digest(bad)


def test_import_stays_light() -> None:
    code = (
        "import sys, plinth.tracking.environment, plinth.tracking.profiles; "
        "print(sorted(m for m in ('pandas', 'numpy', 'pyarrow') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(Path(environment.__file__).parents[2])},
    )
    assert done.stdout.strip() == "[]"
