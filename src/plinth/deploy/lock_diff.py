"""What differs between two locks, and between a lock and this interpreter."""

from __future__ import annotations

from collections.abc import Mapping

from plinth.deploy.lock_running import current_lock
from plinth.deploy.lock_types import Change, Difference, Lock, LockDiff, Source

_CHECKED_OS = ("system", "machine", "id", "version_id")
"""OS facts `check` compares; a kernel release or a name's wording changes nothing installed."""


def diff(a: Lock, b: Lock) -> LockDiff:
    """What changed from `a` to `b`: Python, OS, CUDA, and packages added, removed or changed.

    A package whose version is the same but whose origin changed (an index install become an
    editable checkout) is listed under `sources`.
    """
    common = a.packages.keys() & b.packages.keys()
    return LockDiff(
        python=_change(a.python, b.python),
        implementation=_change(a.implementation, b.implementation),
        os=_changes(a.os, b.os),
        cuda=_changes(a.cuda or {}, b.cuda or {}),
        added={name: b.packages[name] for name in sorted(b.packages.keys() - a.packages.keys())},
        removed={name: a.packages[name] for name in sorted(a.packages.keys() - b.packages.keys())},
        changed={
            name: (a.packages[name], b.packages[name])
            for name in sorted(common)
            if a.packages[name] != b.packages[name]
        },
        sources={
            name: (_origin(a.sources.get(name)), _origin(b.sources.get(name)))
            for name in sorted(common)
            if _origin(a.sources.get(name)) != _origin(b.sources.get(name))
        },
    )


def check(lock: Lock) -> list[Difference]:
    """How this interpreter differs from `lock`, flavor libraries first.

    Then the lock's other packages (missing here, or at another version), then Python, the
    OS and CUDA. A flavor library at another version and another Python minor version are
    `blocking`; the rest is reported for information.
    """
    here = current_lock()
    found: list[Difference] = []
    for name, version in lock.libraries.items():
        if here.packages.get(name) != version:
            found.append(Difference("library", name, version, here.packages.get(name), blocking=True))
    for name, version in lock.packages.items():
        if name not in lock.libraries and here.packages.get(name) != version:
            found.append(Difference("package", name, version, here.packages.get(name)))
    if lock.python not in ("unknown", here.python):
        blocking = lock.python_minor != here.python_minor
        found.append(Difference("python", "python", lock.python, here.python, blocking=blocking))
    for key in _CHECKED_OS:
        recorded = lock.os.get(key)
        if recorded is not None and recorded != here.os.get(key):
            found.append(Difference("os", key, recorded, here.os.get(key)))
    for key, recorded in (lock.cuda or {}).items():
        running = (here.cuda or {}).get(key)
        if recorded is not None and recorded != running:
            found.append(Difference("cuda", key, recorded, running))
    return found


def _change(a: str | None, b: str | None) -> Change | None:
    return None if a == b else (a, b)


def _changes(a: Mapping[str, str | None], b: Mapping[str, str | None]) -> dict[str, Change]:
    return {key: (a.get(key), b.get(key)) for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key)}


def _origin(source: Source | None) -> str | None:
    """A package's origin in words: None for an index, else `editable file:///src`, `git+URL@COMMIT`."""
    if source is None:
        return None
    return source.reference if source.kind == "vcs" else f"{source.kind} {source.reference}"
