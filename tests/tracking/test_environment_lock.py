"""What a capture records for locks: the OS, CUDA and where packages came from."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.tracking.environment import capture_environment, clear_cache


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


def installed(site: Path, name: str, version: str, direct_url: dict[str, object] | None) -> None:
    folder = site / f"{name}-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if direct_url is not None:
        (folder / "direct_url.json").write_text(json.dumps(direct_url))


def test_capture_records_the_os() -> None:
    env = capture_environment()
    assert set(env["os"]) == {"system", "release", "machine", "id", "version_id", "pretty_name"}
    assert env["os"]["system"] == "Linux" and env["os"]["machine"]
    assert json.loads(json.dumps(env)) == env


def test_plinth_installed_editable_is_a_file_url_source() -> None:
    source = capture_environment()["sources"]["plinth"]
    assert source["kind"] == "editable"
    assert source["url"].startswith("file://") and Path(source["url"][7:], "pyproject.toml").is_file()


def test_index_installs_have_no_source() -> None:
    env = capture_environment()
    assert "numpy" in env["packages"] and "numpy" not in env["sources"]


def test_vcs_archive_and_directory_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vcs = {
        "url": "https://user:token@example.com/team/tool.git",
        "vcs_info": {"vcs": "git", "commit_id": "a" * 40, "requested_revision": "main"},
        "subdirectory": "python",
    }
    archive = {"url": "https://example.com/w-2.0.whl", "archive_info": {"hashes": {"sha256": "ab"}}}
    installed(tmp_path, "Git_Tool", "1.0", vcs)
    installed(tmp_path, "wheel-thing", "2.0", archive)
    installed(tmp_path, "local-dir", "0.1", {"url": "file:///src/local", "dir_info": {}})
    installed(tmp_path, "from-index", "3.0", None)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    env = capture_environment()
    assert env["packages"]["git-tool"] == "1.0" and env["packages"]["from-index"] == "3.0"
    assert env["sources"]["git-tool"] == {
        "kind": "vcs",
        "url": "https://example.com/team/tool.git",  # credentials never stored
        "vcs": "git",
        "commit": "a" * 40,
        "requested_revision": "main",
        "subdirectory": "python",
        "archive_hash": None,
    }
    assert env["sources"]["wheel-thing"]["kind"] == "archive"
    assert env["sources"]["wheel-thing"]["archive_hash"] == "sha256=ab"
    assert env["sources"]["local-dir"]["kind"] == "directory"
    assert "from-index" not in env["sources"]


def test_no_nvml_and_no_torch_means_no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert capture_environment()["cuda"] is None


def test_cuda_and_driver_from_nvml_and_an_imported_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = types.ModuleType("pynvml")
    nvml.nvmlInit = lambda: None  # type: ignore[attr-defined]
    nvml.nvmlShutdown = lambda: None  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetCount = lambda: 0  # type: ignore[attr-defined]
    nvml.nvmlSystemGetDriverVersion = lambda: b"550.54.15"  # type: ignore[attr-defined]
    nvml.nvmlSystemGetCudaDriverVersion = lambda: 12040  # type: ignore[attr-defined]
    torch = types.ModuleType("torch")
    torch.version = types.SimpleNamespace(cuda="12.1")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert capture_environment()["cuda"] == {"driver": "550.54.15", "cuda": "12.4", "torch_cuda": "12.1"}


def test_torch_is_never_imported_for_its_cuda_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    capture_environment()
    assert "torch" not in sys.modules
