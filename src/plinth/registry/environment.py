"""The environment a model needs: Python and its flavor's libraries, compared on load."""

from __future__ import annotations

import functools
import platform
import warnings
from typing import Any

from plinth.core.errors import PlinthWarning
from plinth.tracking.environment import run_environment

_warned: set[tuple[str, str]] = set()


def record(libraries: tuple[str, ...]) -> dict[str, Any]:
    """What a model version records of the environment it was saved in.

    Returns:
        `python` (the version) and `libraries` (installed versions of the flavor's
        `libraries` and NumPy), which loading compares, and `lock`: this process's
        python, implementation, os, cuda, packages and sources, as its runs record them.
    """
    import importlib.metadata  # deferred, as in installed_version

    found = {}
    for name in (*libraries, "numpy"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "libraries": found, "lock": _lock()}


def _lock() -> dict[str, Any]:
    """The lock part of this process's run environment (captured once per process)."""
    env = run_environment()
    found = env.get("python")
    python: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "python": python.get("version", platform.python_version()),
        "implementation": python.get("implementation", platform.python_implementation()),
        "os": env.get("os"),
        "cuda": env.get("cuda"),
        "packages": env.get("packages"),
        "sources": env.get("sources"),
    }


def check(environment: dict[str, Any], ref: str, key: str | None = None) -> list[str]:
    """Warn once per model (`key`, default `ref`) and library whose major.minor differs from what runs.

    Returns the libraries that differ (also those already warned about).
    """
    differing = []
    for name, saved in (environment.get("libraries") or {}).items():
        running = installed_version(name)
        if _minor(running) == _minor(saved):
            continue
        differing.append(name)
        if (key or ref, name) not in _warned:
            _warned.add((key or ref, name))
            warnings.warn(
                f"Model {ref} was saved with {name} {saved} but {name} {running} is running; "
                f"predictions may differ. Install {name}=={saved} to match.",
                PlinthWarning,
                stacklevel=3,
            )
    return differing


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


@functools.lru_cache(maxsize=256)
def installed_version(name: str) -> str:
    """The installed version of a distribution (read once per process), or 'not installed'."""
    # importlib.metadata costs tens of milliseconds to import: `import plinth` leaves it to the
    # first model saved or loaded
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
