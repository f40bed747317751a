"""A lock written out for installers: a pip requirements file or a PEP 751 `pylock.toml`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from plinth.core.errors import InvalidInput
from plinth.deploy.lock_closure import closure, marker_environment
from plinth.deploy.lock_index import IndexFile, index_files, pip_indexes
from plinth.deploy.lock_types import Lock, Source, normalize

FORMATS = ("requirements", "pylock")
"""The formats `export_text` writes."""


def export_text(
    lock: Lock,
    fmt: str,
    *,
    model_only: bool = False,
    label: str = "this lock",
    indexes: Sequence[str] | None = None,
) -> str:
    """The lock as a requirements file or `pylock.toml`, whole or for its model only.

    Args:
        lock: the lock to write.
        fmt: "requirements" or "pylock".
        model_only: only the flavor libraries and their dependencies (`model_packages`).
        label: how messages name the lock ("churn/3").
        indexes: for pylock, the indexes whose files are listed; None: those pip uses here.

    Raises:
        InvalidInput: an unknown format, a lock without libraries for `model_only`, or an
            incomplete lock exported whole.
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"Unknown lock format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if model_only:
        names: list[str] | None = list(model_packages(lock, label))
    elif not lock.complete:
        raise InvalidInput(
            f"{label} was registered before plinth recorded full environment locks: only Python "
            f"{lock.python} and its flavor libraries are known. Export those with --model-only, "
            "or register the model again to record its lock."
        )
    else:
        names = None
    if fmt == "pylock":
        return pylock_text(lock, names, indexes=indexes)
    return requirements_text(lock, names)


def model_packages(lock: Lock, label: str = "this lock") -> dict[str, str]:
    """A model version's flavor libraries and their dependencies, at the lock's versions.

    An incomplete lock gives its libraries alone (their dependencies were not recorded).

    Raises:
        InvalidInput: the lock has no flavor libraries (a run's lock).
    """
    if not lock.libraries:
        raise InvalidInput(
            f"{label} has no flavor libraries (only a model version's lock has them); "
            "export every package instead."
        )
    if not lock.complete:
        return dict(sorted(lock.libraries.items()))
    return closure(lock, lock.libraries)


def requirements_text(lock: Lock, names: Iterable[str] | None = None) -> str:
    """A pip requirements file pinning `names` (every package when None) at the lock's versions.

    Index packages read `name==version`; those installed from a VCS, an archive or a local
    folder are PEP 508 direct references (`name @ git+URL@COMMIT`, `name @ file:///path`), a
    local folder with a comment that it must exist where the file is installed.
    """
    lines = [f"# {_describe(lock)}", f"# Install with: python{lock.python_minor} -m pip install -r THIS_FILE"]
    if not lock.complete:
        lines.append("# Only the flavor libraries are pinned: the model was registered before full locks.")
    for name, version in _selected(lock, names).items():
        source = lock.sources.get(name)
        if source is None:
            lines.append(f"{name}=={version}")
            continue
        if source.kind in ("editable", "directory"):
            lines.append(
                f"# {name} {version} was installed from the local folder {source.local_path or source.url}"
                f"{' (editable)' if source.kind == 'editable' else ''}: that folder must exist on the "
                "installing machine"
            )
        lines.append(f"{name} @ {_direct_reference(source)}")
    return "\n".join(lines) + "\n"


def pylock_text(
    lock: Lock, names: Iterable[str] | None = None, *, indexes: Sequence[str] | None = None
) -> str:
    """A PEP 751 `pylock.toml` of `names` (every package when None) at the lock's versions.

    Index packages list their wheels and sdist, with hashes, from the first of `indexes` (None:
    the indexes pip uses here) that has them; other packages name their directory, VCS commit
    or archive.

    Raises:
        InvalidInput: an index package that no index lists, or an archive without a hash.
        ConfigError: an index could not be read.
    """
    selected = _selected(lock, names)
    searched = list(indexes) if indexes is not None else None
    lines = [
        'lock-version = "1.0"',
        f"environments = [{_string(_marker(lock))}]",
        f'requires-python = "=={lock.python_minor}.*"',
        'created-by = "plinth"',
    ]
    missing = []
    for name, version in selected.items():
        lines += ["", "[[packages]]", f"name = {_string(name)}"]
        source = lock.sources.get(name)
        if source is not None:
            lines += _direct_entry(name, version, source)
            continue
        if searched is None:
            searched = pip_indexes()
        found = index_files(name, version, searched)
        if found is None:
            missing.append(f"{name}=={version}")
            continue
        lines += [f"version = {_string(version)}", *_index_entry(*found)]
    if missing:
        raise InvalidInput(
            f"No hashed files of {', '.join(missing)} on the package indexes {', '.join(searched or [])}; "
            "pass the index that has them with --index-url, or export --format requirements."
        )
    return "\n".join(lines) + "\n"


def _selected(lock: Lock, names: Iterable[str] | None) -> dict[str, str]:
    if names is None:
        return dict(sorted(lock.packages.items()))
    wanted = sorted({normalize(name) for name in names})
    unknown = [name for name in wanted if name not in lock.packages]
    if unknown:
        raise InvalidInput(f"The lock has no version of {', '.join(unknown)}.")
    return {name: lock.packages[name] for name in wanted}


def _describe(lock: Lock) -> str:
    parts = [f"Python {lock.python} ({lock.implementation})"]
    if lock.os.get("pretty_name"):
        parts.append(str(lock.os["pretty_name"]))
    if lock.os.get("system"):
        parts.append(" ".join(str(lock.os[key]) for key in ("system", "machine") if lock.os.get(key)))
    cuda = lock.cuda or {}
    if cuda.get("cuda"):
        parts.append(f"CUDA {cuda['cuda']} (driver {cuda.get('driver') or 'unknown'})")
    return "Environment lock: " + ", ".join(parts)


def _direct_reference(source: Source) -> str:
    if source.kind == "archive" and source.archive_hash and not source.subdirectory:
        return f"{source.reference}#{source.archive_hash}"  # pip checks the archive against it
    return source.reference


def _direct_entry(name: str, version: str, source: Source) -> list[str]:
    """A package's `directory`, `vcs` or `archive` table (a source tree carries no version)."""
    subdirectory = {"subdirectory": source.subdirectory} if source.subdirectory else {}
    if source.kind in ("editable", "directory"):
        path = source.local_path or source.url
        fields: dict[str, str | bool] = {"path": path, "editable": source.kind == "editable", **subdirectory}
        return [f"directory = {_inline(fields)}"]
    if source.kind == "vcs":
        vcs = {"type": source.vcs or "git", "url": source.url, "commit-id": source.commit or ""}
        if source.requested_revision:
            vcs["requested-revision"] = source.requested_revision
        return [f"vcs = {_inline({**vcs, **subdirectory})}"]
    if not source.archive_hash:
        raise InvalidInput(
            f"{name} {version} was installed from the archive {source.url} without a recorded hash, "
            "which pylock.toml requires; export --format requirements instead."
        )
    algorithm, _, digest = source.archive_hash.partition("=")
    archive = f"{{ url = {_string(source.url)}, hashes = {_inline({algorithm: digest})}"
    archive += f", subdirectory = {_string(source.subdirectory)} }}" if source.subdirectory else " }"
    return [f"version = {_string(version)}", f"archive = {archive}"]


def _index_entry(index: str, files: list[IndexFile]) -> list[str]:
    lines = [f"index = {_string(index)}"]
    sdists = [f for f in files if not f.is_wheel]
    if sdists:
        lines.append(f"sdist = {_file(sdists[0])}")
    wheels = [f for f in files if f.is_wheel]
    if wheels:
        lines += ["wheels = [", *(f"  {_file(wheel)}," for wheel in wheels), "]"]
    return lines


def _file(found: IndexFile) -> str:
    name, url = _string(found.filename), _string(found.url)
    return f"{{ name = {name}, url = {url}, hashes = {_inline(found.hashes)} }}"


def _marker(lock: Lock) -> str:
    env = marker_environment(lock)
    parts = [f"python_version == '{env['python_version']}'"]
    if lock.os.get("system"):
        parts.append(f"sys_platform == '{env['sys_platform']}'")
    if lock.os.get("machine"):
        parts.append(f"platform_machine == '{env['platform_machine']}'")
    return " and ".join(parts)


def _inline(fields: dict[str, str] | dict[str, str | bool]) -> str:
    """A TOML inline table of strings and booleans."""
    items = (f"{_key(k)} = {_string(v) if isinstance(v, str) else str(v).lower()}" for k, v in fields.items())
    return "{ " + ", ".join(items) + " }"


def _key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() and key.isascii() else _string(key)


def _string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c >= " " and c != "\x7f" else f"\\u{ord(c):04x}" for c in escaped) + '"'
