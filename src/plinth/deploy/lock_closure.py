"""The packages a set of root packages needs, at the versions a lock recorded."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement

from plinth.core.errors import InvalidInput
from plinth.deploy.lock_types import Lock, normalize

_SYS_PLATFORMS = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}


def closure(lock: Lock, roots: Iterable[str]) -> dict[str, str]:
    """`roots` and everything they depend on, each at the version `lock` recorded.

    Dependencies are the `Requires-Dist` of the distributions installed in this interpreter,
    with environment markers evaluated for the lock's Python and OS, and extras followed
    where a root (`name[extra]`) or a dependency names them.

    Args:
        lock: the lock whose versions are taken.
        roots: distribution names, optionally with extras (`"scikit-learn"`, `"plinth[serve]"`).

    Returns:
        Normalized name -> version, sorted by name.

    Raises:
        InvalidInput: a root or a dependency is missing from the lock, or its metadata is not
            installed here.
    """
    environment = marker_environment(lock)
    extras_seen: dict[str, set[str]] = {}
    todo = [(_parse(root), "the roots") for root in roots]
    while todo:
        requirement, needed_by = todo.pop()
        name = normalize(requirement.name)
        if name not in lock.packages:
            raise InvalidInput(
                f"{name} is needed by {needed_by} but the lock has no version of it; "
                "the lock was taken where it was not installed."
            )
        extras = {normalize(extra) for extra in requirement.extras}
        seen = extras_seen.get(name)
        if seen is not None and extras <= seen:
            continue
        extras_seen[name] = (seen or set()) | extras
        for dependency in _requires(name, lock.packages[name]):
            if _applies(dependency, environment, extras_seen[name]):
                todo.append((dependency, name))
    return {name: lock.packages[name] for name in sorted(extras_seen)}


def marker_environment(lock: Lock) -> dict[str, str]:
    """The PEP 508 marker variables of the lock's interpreter (this one's where not recorded)."""
    env: dict[str, str] = {key: str(value) for key, value in default_environment().items()}
    system = lock.os.get("system")
    if lock.python != "unknown":
        env["python_version"] = lock.python_minor
        env["python_full_version"] = lock.python
    if lock.implementation != "unknown":
        env["platform_python_implementation"] = lock.implementation
        env["implementation_name"] = lock.implementation.lower()
    if system:
        env["platform_system"] = system
        env["sys_platform"] = _SYS_PLATFORMS.get(system, system.lower())
        env["os_name"] = "nt" if system == "Windows" else "posix"
    if lock.os.get("machine"):
        env["platform_machine"] = str(lock.os["machine"])
    if lock.os.get("release"):
        env["platform_release"] = str(lock.os["release"])
    return env


def _applies(requirement: Requirement, environment: dict[str, str], extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**environment, "extra": extra}) for extra in extras or {""})


def _parse(text: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        raise InvalidInput(f"{text!r} is not a package name (NAME or NAME[EXTRA]): {exc}") from exc


@functools.lru_cache(maxsize=1024)
def _requires(name: str, version: str) -> tuple[Requirement, ...]:
    """The requirements installed metadata declares for `name` (read once per process)."""
    import importlib.metadata  # tens of milliseconds: only when a closure is wanted

    try:
        declared = importlib.metadata.distribution(name).requires or []
    except importlib.metadata.PackageNotFoundError:
        raise InvalidInput(
            f"{name} {version} is in the lock but not installed in this interpreter, so its "
            f"dependencies cannot be read; install {name}=={version} here first."
        ) from None
    found = []
    for line in declared:
        try:
            found.append(Requirement(line))
        except InvalidRequirement:
            continue  # a malformed line in someone's metadata: pip skips it too
    return tuple(found)
