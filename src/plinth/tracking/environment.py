"""Capture the software and hardware environment a run executes in.

`capture_environment` describes it afresh each call from parts computed once per process
(installed packages, git state, GPUs, host facts). `run_environment`, which every run start
records, goes one step further and hands out one shared description per script, working
directory and command line, so a run start costs a dict lookup. Call `clear_cache` after
something those parts depend on has changed (a package was installed, a commit was made)
and a fresh capture is wanted.

Besides what identifies a run (command, git state, host), a capture holds what a lock of the
environment needs: the interpreter, the OS release, CUDA and driver versions, every installed
distribution with its version, and where each one not taken from an index came from (PEP 610
`direct_url.json`: an editable or local directory, a VCS checkout, an archive URL).
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import json
import os
import pathlib
import platform
import re
import shlex
import socket
import subprocess
import sys
import urllib.parse
from typing import Any, cast

import psutil

from plinth.core.errors import InvalidInput

_GIT_TIMEOUT_S = 5.0
_NAME_SEPARATORS = re.compile(r"[-_.]+")

GitInfo = tuple[str | None, str | None, bool, str | None]
GpuInfo = tuple[str, int, str, int]
SourceInfo = tuple[tuple[str, str | None], ...]
"""A package's PEP 610 origin as sorted (key, value) pairs: kind, url, vcs, commit, ..."""


def capture_environment(cwd: str | None = None) -> dict[str, object]:
    """Describe the interpreter, host, installed packages, git state and GPUs.

    Args:
        cwd: Directory used to find the git repository when `__main__` has no
            `__file__` (interactive sessions, notebooks). Defaults to the current
            working directory.

    Returns:
        A JSON-serializable dict with the keys python, platform, os (system, release,
        machine and the os-release id, version_id and pretty_name; None where unknown),
        host, user, cpu_count, memory_bytes, packages (normalized name -> version),
        sources (normalized name -> origin, only for packages not installed from an
        index), command, git (None outside a git repository or without git), gpus ([]
        when none are visible) and cuda (None without an NVIDIA driver or CUDA-built
        torch, else the driver, CUDA driver and torch CUDA versions).
    """
    static = _static_facts()
    git = _git_info(_repo_dir(cwd))
    return {
        "python": dict(cast("dict[str, str]", static["python"])),
        "platform": static["platform"],
        "os": dict(cast("dict[str, str | None]", static["os"])),
        "host": static["host"],
        "user": static["user"],
        "cpu_count": static["cpu_count"],
        "memory_bytes": static["memory_bytes"],
        "packages": dict(_packages()),
        "sources": {name: dict(source) for name, source in _installed()[1]},
        "command": shlex.join(sys.argv),
        "git": _git_dict(git),
        "gpus": [
            {"index": index, "name": name, "memory_bytes": memory, "uuid": uuid}
            for name, memory, uuid, index in _gpus()
        ],
        "cuda": _cuda_dict(),
    }


def run_environment() -> dict[str, object]:
    """The environment this process's runs record: `capture_environment()`, captured once per
    script, working directory and command line, and the same object every time after that.

    Treat it as read-only: the store keeps what it recorded of it by its identity.
    """
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    key = (main_file if isinstance(main_file, str) else None, os.getcwd(), tuple(sys.argv))
    env = _run_environments.get(key)
    if env is None:
        if len(_run_environments) >= _MAX_RUN_ENVIRONMENTS:
            _run_environments.clear()
        env = _run_environments[key] = capture_environment()
    return env


_MAX_RUN_ENVIRONMENTS = 32
_run_environments: dict[tuple[str | None, str, tuple[str, ...]], dict[str, object]] = {}


def environment_digest(env: dict[str, object]) -> str:
    """Hash an environment so identical environments can be stored once.

    Args:
        env: A dict as returned by `capture_environment`.

    Returns:
        The sha256 hex digest of the canonical JSON (sorted keys, no spaces).
    """
    try:
        text = json.dumps(env, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"environment is not JSON-serializable: {exc}") from exc
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def describe_gpus(env: dict[str, object]) -> str:
    """Summarize the GPUs of an environment in one line.

    Args:
        env: A dict as returned by `capture_environment`.

    Returns:
        "none" without GPUs, else e.g. "2x NVIDIA H100 80GB HBM3 (79.6 GiB)",
        with identical models grouped and different models joined by ", ".
    """
    gpus = env.get("gpus") or []
    if not isinstance(gpus, list) or not gpus:
        return "none"
    groups: dict[tuple[str, int], int] = {}
    for gpu in gpus:
        key = (str(gpu.get("name", "unknown")), int(gpu.get("memory_bytes") or 0))
        groups[key] = groups.get(key, 0) + 1
    parts = []
    for (name, memory), count in groups.items():
        size = f" ({memory / 2**30:.1f} GiB)" if memory else ""
        parts.append(f"{count}x {name}{size}")
    return ", ".join(parts)


def clear_cache() -> None:
    """Forget the cached packages, git state, GPUs and host facts of this process."""
    for cached in (_static_facts, _installed, _packages, _git_info, _nvml, _gpus):
        cached.cache_clear()
    _run_environments.clear()


@functools.lru_cache(maxsize=1)
def _static_facts() -> dict[str, object]:
    """Collect the facts about interpreter and host that do not change in a process."""
    try:
        user: str | None = getpass.getuser()
    except Exception:  # no login name, no passwd entry
        user = None
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": platform.platform(),
        "os": _os_facts(),
        "host": socket.gethostname(),
        "user": user,
        "cpu_count": os.cpu_count(),
        "memory_bytes": int(psutil.virtual_memory().total),
    }


@functools.lru_cache(maxsize=1)
def _packages() -> tuple[tuple[str, str], ...]:
    """List installed distributions as sorted (normalized name, version) pairs."""
    return _installed()[0]


@functools.lru_cache(maxsize=1)
def _installed() -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, SourceInfo], ...]]:
    """Installed distributions as sorted (name, version) pairs, and the origins of those that
    carry a PEP 610 `direct_url.json` (not installed from an index) as sorted (name, origin).

    Names and versions are read from the `NAME-VERSION.dist-info` folder names on sys.path
    (what installers write), which avoids parsing hundreds of METADATA files; folders whose
    name does not carry a version fall back to reading their metadata.
    """
    found: dict[str, str] = {}
    sources: dict[str, SourceInfo] = {}
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for folder in names:
            pair = _from_folder(entry, folder)
            if pair is None or pair[0] in found:
                continue  # first on sys.path wins, as for import
            found[pair[0]] = pair[1]
            source = _direct_url(os.path.join(entry or ".", folder))
            if source is not None:
                sources[pair[0]] = source
    return tuple(sorted(found.items())), tuple(sorted(sources.items()))


def _direct_url(folder: str) -> SourceInfo | None:
    """The origin a PEP 610 `direct_url.json` in a dist-info folder records; None without one."""
    if not folder.endswith(".dist-info"):
        return None
    try:
        with open(os.path.join(folder, "direct_url.json"), encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return None  # installed from an index (no file), or a file no installer wrote
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None
    return _source_of(data)


def _source_of(data: dict[str, Any]) -> SourceInfo | None:
    """Turn a parsed `direct_url.json` into an origin: kind, url, vcs, commit, requested
    revision, subdirectory and archive hash (None where not recorded)."""
    vcs, archive, directory = (_table(data, key) for key in ("vcs_info", "archive_info", "dir_info"))
    if vcs is not None:
        kind = "vcs"
    elif archive is not None:
        kind = "archive"
    elif directory is not None:
        kind = "editable" if directory.get("editable") else "directory"
    else:
        return None
    info = vcs or {}
    source = {
        "kind": kind,
        "url": _strip_credentials(data["url"]),
        "vcs": _optional_text(info.get("vcs")),
        "commit": _optional_text(info.get("commit_id")),
        "requested_revision": _optional_text(info.get("requested_revision")),
        "subdirectory": _optional_text(data.get("subdirectory")),
        "archive_hash": _archive_hash(archive or {}),
    }
    return tuple(sorted(source.items()))


def _archive_hash(archive: dict[str, Any]) -> str | None:
    """An archive's hash as `ALGORITHM=HEX`, sha256 preferred; None when none was recorded."""
    hashes = archive.get("hashes")
    if isinstance(hashes, dict) and hashes:
        algorithm = "sha256" if "sha256" in hashes else sorted(hashes)[0]
        return f"{algorithm}={hashes[algorithm]}"
    return _optional_text(archive.get("hash"))


def _table(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    return value if isinstance(value, dict) else None


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _os_facts() -> dict[str, str | None]:
    """The kernel (system, release, machine) and the distribution named by os-release."""
    release: dict[str, str] = {}
    read = getattr(platform, "freedesktop_os_release", None)
    if read is not None:
        try:
            release = read()
        except OSError:  # no /etc/os-release (macOS, Windows, minimal containers)
            release = {}
    uname = platform.uname()
    return {
        "system": uname.system or None,
        "release": uname.release or None,
        "machine": uname.machine or None,
        "id": release.get("ID"),
        "version_id": release.get("VERSION_ID"),
        "pretty_name": release.get("PRETTY_NAME"),
    }


def _from_folder(entry: str, folder: str) -> tuple[str, str] | None:
    if not folder.endswith((".dist-info", ".egg-info")):
        return None
    stem = folder.rsplit(".", 1)[0]
    name, sep, version = stem.partition("-")
    if sep and version and version[0].isdigit():
        return _NAME_SEPARATORS.sub("-", name).lower(), version.split("-py")[0]
    import importlib.metadata  # costs tens of milliseconds; rarely needed (unversioned folders)

    try:
        dist = importlib.metadata.PathDistribution(pathlib.Path(entry or ".", folder))
        meta_name = dist.metadata["Name"] if dist.metadata else None
    except (OSError, ValueError):
        return None
    return (_NAME_SEPARATORS.sub("-", meta_name).lower(), str(dist.version)) if meta_name else None


def _repo_dir(cwd: str | None) -> str:
    """Pick the directory whose git repository describes this process."""
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if isinstance(main_file, str) and os.path.isfile(main_file):
        return os.path.dirname(os.path.abspath(main_file))
    return os.path.abspath(cwd if cwd is not None else os.getcwd())


@functools.lru_cache(maxsize=32)
def _git_info(repo_dir: str) -> GitInfo | None:
    """Read commit, branch, dirtiness and origin url of the repository at repo_dir."""
    if _git(repo_dir, "rev-parse", "--show-toplevel") is None:
        return None  # not a repository, or git missing or broken
    commit = _git(repo_dir, "rev-parse", "--verify", "-q", "HEAD")
    branch = _git(repo_dir, "symbolic-ref", "--short", "-q", "HEAD")
    status = _git(repo_dir, "status", "--porcelain", "--untracked-files=no")
    remote = _git(repo_dir, "config", "--get", "remote.origin.url")
    return commit, branch, bool(status), _strip_credentials(remote)


def _git(repo_dir: str, *args: str) -> str | None:
    """Run one git command in repo_dir; None when it fails, times out or git is missing."""
    try:
        done = subprocess.run(
            ["git", "-C", repo_dir, *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip()


def _git_dict(info: GitInfo | None) -> dict[str, object] | None:
    """Turn cached git facts into the dict stored with the environment."""
    if info is None:
        return None
    commit, branch, dirty, remote = info
    return {"commit": commit or None, "branch": branch or None, "dirty": dirty, "remote": remote}


def _strip_credentials(url: str | None) -> str | None:
    """Drop a user name and password or token from a remote url so none is stored."""
    if not url:
        return None
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url  # scp-like "git@host:path" or a local path: nothing secret
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


@functools.lru_cache(maxsize=1)
def _gpus() -> tuple[GpuInfo, ...]:
    """List (name, memory bytes, uuid, index) of NVIDIA GPUs via NVML; () if unavailable."""
    return _nvml()[0]


@functools.lru_cache(maxsize=1)
def _nvml() -> tuple[tuple[GpuInfo, ...], str | None, str | None]:
    """GPUs, driver version and CUDA driver version ("12.4") from NVML; ((), None, None) without."""
    try:
        import pynvml
    except Exception:  # not installed, or a broken install
        return (), None, None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver, no GPU
        return (), None, None
    try:
        try:
            gpus = tuple(_nvml_device(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount()))
        except Exception:
            gpus = ()
        return gpus, *_nvml_versions(pynvml)
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _nvml_versions(pynvml: Any) -> tuple[str | None, str | None]:
    """The driver version and the CUDA version it supports; None for what NVML cannot tell."""
    try:
        driver: str | None = _text(pynvml.nvmlSystemGetDriverVersion())
    except Exception:  # an old binding or driver without the call
        driver = None
    try:
        number = int(pynvml.nvmlSystemGetCudaDriverVersion())
        cuda: str | None = f"{number // 1000}.{number % 1000 // 10}"
    except Exception:
        cuda = None
    return driver, cuda


def _cuda_dict() -> dict[str, str | None] | None:
    """Driver and CUDA versions, with torch's CUDA build when torch is already imported."""
    _, driver, cuda = _nvml()
    torch = sys.modules.get("torch")  # never imported here: it costs seconds
    torch_cuda = getattr(getattr(torch, "version", None), "cuda", None)
    torch_cuda = torch_cuda if isinstance(torch_cuda, str) else None
    if driver is None and cuda is None and torch_cuda is None:
        return None
    return {"driver": driver, "cuda": cuda, "torch_cuda": torch_cuda}


def _nvml_device(pynvml: Any, index: int) -> GpuInfo:
    """Read one GPU's name, total memory and uuid from NVML."""
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    name = pynvml.nvmlDeviceGetName(handle)
    uuid = pynvml.nvmlDeviceGetUUID(handle)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total
    return _text(name), int(memory), _text(uuid), index


def _text(value: object) -> str:
    """Decode the bytes older NVML bindings return; pass str through."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
