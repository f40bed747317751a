"""Writing a set of manifests to a folder all at once: a reader sees all of them or none.

Files are written into a sibling `DIR.tmp-…` folder, which is then renamed to DIR. An existing
DIR is refused unless it is empty or `force` is given (then the old folder is swapped out and
removed after the new one is in place).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no types

from plinth.core.errors import ConflictError, InvalidInput


def to_yaml(obj: Mapping[str, Any], header: str = "") -> str:
    """One object as YAML (keys in the order built), after `header` lines written as comments."""
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + yaml.safe_dump(dict(obj), sort_keys=False, default_flow_style=False)


def write_folder(out: str | os.PathLike[str], files: Mapping[str, str], *, force: bool = False) -> list[Path]:
    """Write `files` (name → text) as the only content of folder `out`, atomically.

    Returns:
        The paths written, in the order of `files`.

    Raises:
        ConflictError: `out` holds files and `force` is not set.
        InvalidInput: `out` is a file, or its parent folder does not exist.
    """
    target = Path(out)
    _check_target(target, force)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp-", dir=target.parent))
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
        os.chmod(staging, 0o755)
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [target / name for name in files]


def _check_target(target: Path, force: bool) -> None:
    if not target.parent.is_dir():
        raise InvalidInput(
            f"Cannot write to {str(target)!r}: its folder {str(target.parent)!r} does not exist."
        )
    if target.exists() and not target.is_dir():
        raise InvalidInput(f"Cannot write manifests to {str(target)!r}: it is a file; give a folder with -o.")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ConflictError(
            f"{str(target)!r} is not empty; give another folder with -o, or --force to replace its content."
        )


def _swap_in(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`, moving an existing `target` aside first and removing it after."""
    if not target.exists():
        staging.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{target.name}.old-", dir=target.parent))
    old.rmdir()
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)
