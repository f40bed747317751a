"""The wheels an image installs, resolved and downloaded on the building machine.

An image gets its packages from a wheelhouse: a folder of wheels and a `requirements.txt` that
installs from it with no index (`pip install --no-index --find-links`), so the image build needs
no network and installs the same files every time. The requirements are the roots (a model's
flavor libraries, plinth with its serving extra) pinned to the versions the lock recorded; pip
resolves their dependencies with every other locked version as a constraint, so the image holds
what the model needs at the versions it was trained with, and nothing else of the training
environment.

Packages installed from a local path or in editable mode (plinth itself, in a checkout) are
built into wheels here; VCS and archive installs are fetched from where they came from. A
wheelhouse is cached by what went into it, so a rebuild with nothing changed resolves nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from plinth.core.errors import InvalidInput, PlinthError
from plinth.deploy.lock import Lock, Source, closure

REQUIREMENTS = "requirements.txt"
_UNRESOLVED = re.compile(
    r"(?:No matching distribution found for|Could not find a version that satisfies the requirement)"
    r" ([^\s(]+)"
)
_CONFLICT = re.compile(r"Cannot install (.+?) because these package versions have conflicting")
_SKIPPED_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", "build", "dist", ".tox", ".nox"}


class ResolutionError(PlinthError):
    """The packages an image needs could not be resolved or downloaded."""


@dataclass(frozen=True)
class Wheelhouse:
    """A folder of wheels from the index with the requirements that install them offline, and
    the wheels built here from local sources (kept apart: a change to those rebuilds only them)."""

    folder: str
    requirements: tuple[str, ...]  # `name==version` of every wheel, local ones included, sorted
    local: dict[str, str]  # name -> wheel built here
    reused: bool  # True when the index wheels came from the cache

    @property
    def size_bytes(self) -> int:
        """Bytes of the wheels."""
        return sum(
            os.path.getsize(os.path.join(self.folder, f))
            for f in os.listdir(self.folder)
            if f.endswith(".whl")
        )


def cache_root() -> str:
    """Where wheelhouses and locally built wheels are kept between builds."""
    explicit = os.environ.get("PLINTH_BUILD_CACHE")
    if explicit:
        return os.path.abspath(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "plinth", "build")


def build_wheelhouse(lock: Lock, roots: Iterable[str], *, python_minor: str | None = None) -> Wheelhouse:
    """Resolve `roots` (distribution names, extras allowed: "plinth[serve]") against `lock` and
    download or build every wheel they need into a cached wheelhouse.

    Args:
        lock: the environment whose versions the image reproduces.
        roots: what the image must be able to import; each pinned to the lock's version when the
            lock has it (or, for a local source, built from it).
        python_minor: the Python the image runs ("3.11"); default the lock's.

    Raises:
        ResolutionError: a package cannot be found or built; the message names it.
        InvalidInput: a root names a package installed from a local path that is gone.
    """
    minor = python_minor or lock.python_minor
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    root_names = sorted(set(roots))
    local = _local_wheels(lock, root_names)
    lines = _root_lines(lock, root_names, local)
    named = {_split_extras(root)[0] for root in root_names}
    constraints = _constraint_lines(lock, root_names) + [
        f"{name}=={_wheel_version(path)}" for name, path in sorted(local.items()) if name not in named
    ]
    key = _key(lines, constraints, minor, local)
    folder = os.path.join(cache_root(), "wheelhouses", key)
    local_pins = tuple(f"{name}=={_wheel_version(path)}" for name, path in sorted(local.items()))
    if os.path.isfile(os.path.join(folder, REQUIREMENTS)):
        return Wheelhouse(
            folder, tuple(sorted({*_read_requirements(folder), *local_pins})), local, reused=True
        )
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=os.path.dirname(folder))
    try:
        _pip_fill(staging, lines, constraints, minor, list(local.values()), cross=minor != here)
        for wheel in local.values():  # pip copies the local wheels in too: they are kept apart
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(staging, os.path.basename(wheel)))
        pinned = _pins_of(staging)
        with open(os.path.join(staging, REQUIREMENTS), "w", encoding="utf-8") as out:
            out.write("".join(f"{line}\n" for line in pinned))
        try:
            os.rename(staging, folder)
        except OSError:  # another build filled the same wheelhouse first
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Wheelhouse(folder, tuple(sorted({*_read_requirements(folder), *local_pins})), local, reused=False)


def _root_lines(lock: Lock, roots: list[str], local: dict[str, str]) -> list[str]:
    lines = []
    for root in roots:
        name, extras = _split_extras(root)
        version = lock.packages.get(name)
        if name in local:
            lines.append(f"{name}{extras}=={_wheel_version(local[name])}")
        elif version is not None:
            lines.append(f"{name}{extras}=={version}")
        else:
            lines.append(f"{name}{extras}")
    return lines


def _constraint_lines(lock: Lock, roots: list[str]) -> list[str]:
    """Every locked version as a constraint, but for packages from local, VCS or archive sources
    (they are not on an index) and the roots (pinned in the requirements already)."""
    named = {_split_extras(root)[0] for root in roots}
    return [
        f"{name}=={version}"
        for name, version in sorted(lock.packages.items())
        if name not in lock.sources and name not in named and name not in {"pip", "setuptools", "wheel"}
    ]


def _local_wheels(lock: Lock, roots: list[str]) -> dict[str, str]:
    """Wheels built here for the roots, and the dependencies of theirs this interpreter knows of,
    that were installed from a local path, VCS or archive: name -> path."""
    names = {_split_extras(root)[0] for root in roots}
    try:
        names.update(closure(lock, roots))
    except PlinthError:  # a dependency this interpreter cannot describe: pip resolves it
        pass
    return {name: _wheel_of(name, lock.sources[name]) for name in sorted(names) if name in lock.sources}


def _wheel_of(name: str, source: Source) -> str:
    """A wheel of a package installed from `source`, built once per state of its files."""
    if source.kind in ("editable", "directory"):
        path = source.local_path
        if path is None or not os.path.isdir(path):
            raise InvalidInput(
                f"{name} was installed from {source.url}, which is not a folder here; the image cannot "
                f"include it. Install {name} from an index, or build from the machine that has its source."
            )
        target = path
        key = _tree_key(path)
    elif source.kind == "vcs" and source.vcs and source.commit:
        target = f"{source.vcs}+{source.url}@{source.commit}"
        key = hashlib.sha256(target.encode()).hexdigest()
    elif source.kind == "archive":
        target = source.url
        key = hashlib.sha256(target.encode()).hexdigest()
    else:
        raise InvalidInput(
            f"{name} was installed from {source.url} ({source.kind}), which plinth cannot rebuild; "
            f"install {name} from an index or from a local folder and build again."
        )
    folder = os.path.join(cache_root(), "wheels", f"{name}-{key[:24]}")
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with _exclusive(os.path.join(os.path.dirname(folder), f".{name}.lock")):  # one build at a time
        found = _wheels_in(folder)
        if found:
            return os.path.join(folder, found[0])
        staging = tempfile.mkdtemp(prefix=".wheel-", dir=os.path.dirname(folder))
        try:
            with tempfile.TemporaryDirectory(prefix="plinth-source-") as copy:
                if source.kind in ("editable", "directory"):  # built from a copy: the checkout stays as it is
                    target = _copy_tree(target, os.path.join(copy, name))
                _pip(["wheel", "--no-deps", "--quiet", "-w", staging, target], f"building a wheel of {name}")
            wheels = _wheels_in(staging)
            if len(wheels) != 1:
                raise ResolutionError(f"Building {name} from {source.url} gave {len(wheels)} wheels.")
            os.rename(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return os.path.join(folder, wheels[0])


def _wheels_in(folder: str) -> list[str]:
    return sorted(f for f in os.listdir(folder) if f.endswith(".whl")) if os.path.isdir(folder) else []


@contextlib.contextmanager
def _exclusive(path: str) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created when missing) while the block runs."""
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _copy_tree(path: str, dest: str) -> str:
    """Copy a source folder's files (git's tracked and untracked ones where it is a repository)."""
    for rel in _source_files(path):
        src = os.path.join(path, rel)
        if not os.path.isfile(src):
            continue
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target)
    return dest


def _tree_key(path: str) -> str:
    """A digest of a source folder's state: every file's path, size and modification time
    (git's tracked and untracked files where it is a repository, else a walk)."""
    digest = hashlib.sha256(os.path.abspath(path).encode())
    for rel in _source_files(path):
        try:
            stat = os.stat(os.path.join(path, rel))
        except OSError:
            continue
        digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _source_files(path: str) -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "-C", path, "ls-files", "-co", "--exclude-standard", "-z"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode("utf-8", "replace")
        return sorted(f for f in listed.split("\0") if f)
    except (OSError, subprocess.SubprocessError):
        pass
    files = []
    for top, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        files += [os.path.relpath(os.path.join(top, n), path) for n in names]
    return sorted(files)


def _pip_fill(
    folder: str, lines: list[str], constraints: list[str], minor: str, local: list[str], *, cross: bool
) -> None:
    """Resolve `lines` under `constraints` (the `local` wheels available) and put every wheel
    they need into `folder`."""
    with tempfile.TemporaryDirectory(prefix="plinth-resolve-") as tmp:
        links = os.path.join(tmp, "local")
        os.mkdir(links)
        for wheel in local:
            shutil.copy2(wheel, links)
        req, con = os.path.join(tmp, "requirements.in"), os.path.join(tmp, "constraints.txt")
        with open(req, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        with open(con, "w", encoding="utf-8") as out:
            out.write("\n".join(constraints) + "\n")
        common = ["--quiet", "--find-links", links, "-r", req, "-c", con]
        if cross:  # another Python than this one: binary wheels for it, nothing built here
            args = ["download", "-d", folder, "--only-binary=:all:", "--python-version", minor, *common]
        else:  # sdists are built into wheels here, so the image installs wheels only
            args = ["wheel", "-w", folder, *common]
        _pip(args, "resolving the image's packages")
    sdists = [f for f in os.listdir(folder) if not f.endswith(".whl")]
    for leftover in sdists:
        os.remove(os.path.join(folder, leftover))


def _pip(args: list[str], doing: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode == 0:
        return
    output = done.stdout + done.stderr
    missing = sorted(set(_UNRESOLVED.findall(output)))
    conflict = _CONFLICT.findall(output)
    if missing:
        raise ResolutionError(
            f"{doing.capitalize()} failed: no installable release of {', '.join(missing)} "
            "was found for the image. Check the name and version exist on your package index (pip's "
            "configuration applies), or register the model from an environment with installable packages."
        )
    if conflict:
        raise ResolutionError(
            f"{doing.capitalize()} failed: {conflict[0]} have conflicting dependencies at the versions the "
            "lock recorded. pip said:\n" + _tail(output)
        )
    raise ResolutionError(f"{doing.capitalize()} failed (pip exited {done.returncode}):\n{_tail(output)}")


def _tail(text: str, lines: int = 15) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def _pins_of(folder: str) -> list[str]:
    """`name==version` for every wheel in `folder` (wheel file names carry both)."""
    pins = set()
    for name in os.listdir(folder):
        if name.endswith(".whl"):
            dist, version = name.split("-")[:2]
            pins.add(f"{_normalize(dist)}=={version}")
    return sorted(pins)


def _requires_of(wheel: str) -> str:
    """A wheel's name, version and Requires-Dist lines, read from its METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(meta).decode("utf-8", "replace")
    header = text.split("\n\n", 1)[0]
    kept = [line for line in header.splitlines() if line.startswith(("Name:", "Version:", "Requires-Dist:"))]
    return "\n".join(kept)


def _read_requirements(folder: str) -> tuple[str, ...]:
    with open(os.path.join(folder, REQUIREMENTS), encoding="utf-8") as handle:
        return tuple(line.strip() for line in handle if line.strip())


def _wheel_version(path: str) -> str:
    return os.path.basename(path).split("-")[1]


def _split_extras(root: str) -> tuple[str, str]:
    name, bracket, rest = root.partition("[")
    return _normalize(name), f"[{rest}" if bracket else ""


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _key(lines: list[str], constraints: list[str], minor: str, local: dict[str, str]) -> str:
    """What the index wheels depend on: the requirements, constraints, target, and the local
    wheels' names, versions and dependencies (not their files: a code change keeps the key)."""
    material = {
        "requirements": lines,
        "constraints": constraints,
        "python": minor,
        "platform": sys.platform,
        "machine": os.uname().machine if hasattr(os, "uname") else "",
        "local": sorted(_requires_of(path) for path in local.values()),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
