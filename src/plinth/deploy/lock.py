"""Environment locks of runs, model versions and this interpreter, and what to do with them.

A lock is what `plinth.tracking.environment` captured once per process: the Python version,
the OS, CUDA, every installed distribution at its exact version and the origin of those not
taken from an index. Runs record it with their environment; model versions record it under
`environment["lock"]` beside their flavor libraries. This module reads it back as a `Lock`
and re-exports what exports (`requirements_text`, `pylock_text`), follows (`closure`) and
compares (`diff`, `check`) locks.

Example:
    >>> label, lock = locate("churn@champion")  # doctest: +SKIP
    >>> print(requirements_text(lock, closure(lock, lock.libraries)))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plinth.core.entities import ModelVersion, Run
from plinth.core.errors import InvalidInput, NotFound
from plinth.deploy.lock_closure import closure as closure
from plinth.deploy.lock_diff import check as check
from plinth.deploy.lock_diff import diff as diff
from plinth.deploy.lock_export import export_text as export_text
from plinth.deploy.lock_export import model_packages as model_packages
from plinth.deploy.lock_export import pylock_text as pylock_text
from plinth.deploy.lock_export import requirements_text as requirements_text
from plinth.deploy.lock_running import current_lock as current_lock
from plinth.deploy.lock_running import lock_of_environment as lock_of_environment
from plinth.deploy.lock_types import OS_KEYS, normalize
from plinth.deploy.lock_types import Difference as Difference
from plinth.deploy.lock_types import Lock as Lock
from plinth.deploy.lock_types import LockDiff as LockDiff
from plinth.deploy.lock_types import Source as Source
from plinth.registry.models import resolve
from plinth.tracking.queries import get_run

__all__ = [
    "Difference",
    "Lock",
    "LockDiff",
    "Source",
    "check",
    "closure",
    "current_lock",
    "diff",
    "export_text",
    "locate",
    "lock_of_environment",
    "lock_of_run",
    "lock_of_version",
    "model_packages",
    "pylock_text",
    "requirements_text",
]


def lock_of_run(run: Run) -> Lock:
    """The lock of the environment `run` recorded.

    Raises:
        NotFound: the run recorded no environment (started with `capture_env=False`).
    """
    if not run.environment:
        raise NotFound(
            f"Run {run.id} recorded no environment (it was started with capture_env=False), "
            "so it has no lock."
        )
    return lock_of_environment(run.environment)


def lock_of_version(mv: ModelVersion) -> Lock:
    """The lock a model version recorded, with its flavor libraries.

    A version registered before locks were recorded gives an incomplete lock
    (`complete=False`): its Python version, and its libraries as its only packages.
    """
    env: Mapping[str, Any] = mv.environment or {}
    libraries = {normalize(str(k)): str(v) for k, v in (env.get("libraries") or {}).items()}
    recorded = env.get("lock")
    if isinstance(recorded, Mapping) and recorded.get("packages"):
        return lock_of_environment(recorded, libraries)
    return Lock(
        python=str(env.get("python") or "unknown"),
        implementation="unknown",
        os=dict.fromkeys(OS_KEYS),
        cuda=None,
        packages=dict(sorted(libraries.items())),
        libraries=libraries,
        complete=False,
    )


def locate(ref: str) -> tuple[str, Lock]:
    """The lock `ref` names, with a label for people: a model version first, else a run.

    Args:
        ref: NAME (latest version), NAME/VERSION, NAME@ALIAS, or a run id.

    Returns:
        ("NAME/VERSION", lock) or ("run RUN_ID", lock).

    Raises:
        NotFound: neither a model version nor a run is named `ref`, or the run has no lock.
    """
    try:
        mv = resolve(ref)
    except (InvalidInput, NotFound) as exc:
        model_error: Exception = exc
    else:
        return mv.ref, lock_of_version(mv)
    try:
        run = get_run(ref)
    except (InvalidInput, NotFound):
        raise NotFound(
            f"{ref!r} names neither a model version ({model_error}) nor a run. Give NAME, NAME/VERSION, "
            "NAME@ALIAS or a run id; `plinth models list` and `plinth runs list` show them."
        ) from None
    return f"run {run.id}", lock_of_run(run)
