"""Locks read from a recorded environment, and the lock of this interpreter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plinth.deploy.lock_types import OS_KEYS, Lock, Source, normalize
from plinth.tracking.environment import capture_environment


def current_lock() -> Lock:
    """The lock of this interpreter, as a run started now would record it."""
    return lock_of_environment(capture_environment())


def lock_of_environment(env: Mapping[str, Any], libraries: Mapping[str, str] | None = None) -> Lock:
    """A lock from a run's recorded environment or a model version's `environment["lock"]`.

    A run recorded before OS and package origins were captured gives None for the OS facts
    and no sources.
    """
    python, implementation = _python(env.get("python"), env.get("implementation"))
    os_facts, sources, packages = (_mapping(env.get(key)) for key in ("os", "sources", "packages"))
    cuda = env.get("cuda")
    return Lock(
        python=python,
        implementation=implementation,
        os={key: _text(os_facts.get(key)) for key in OS_KEYS},
        cuda={str(k): _text(v) for k, v in cuda.items()} if isinstance(cuda, Mapping) else None,
        packages={normalize(str(n)): str(v) for n, v in sorted(packages.items())},
        sources={normalize(str(n)): Source.from_dict(_mapping(s)) for n, s in sorted(sources.items())},
        libraries=dict(libraries or {}),
        complete=bool(packages),
    )


def _python(python: object, implementation: object) -> tuple[str, str]:
    """(version, implementation) from a run's `python` dict or a lock's two strings."""
    if isinstance(python, Mapping):
        return str(python.get("version") or "unknown"), str(python.get("implementation") or "unknown")
    return str(python or "unknown"), str(implementation or "unknown")


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return None if value is None else str(value)
