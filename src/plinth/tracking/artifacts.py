"""Logging files and folders as content-addressed artifacts, and getting them back.

Every name is checked before anything is stored, so a folder holding one name that could not
be written back (a line break, a 300-byte part) logs nothing. Downloads check the recorded
names again and write only inside the destination, links resolved: the store may have been
edited by someone other than the user reading it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from plinth.core.entities import Artifact
from plinth.core.errors import IntegrityError, InvalidInput, NotFound
from plinth.core.validation import check_artifact_path
from plinth.store.base import ArtifactRecord
from plinth.store.blobs import check_readable_file
from plinth.tracking.context import Backend
from plinth.tracking.progress import progress


def log_artifact(be: Backend, run_id: str, path: str, artifact_path: str | None) -> list[Artifact]:
    """Store a file or every file of a folder; record them under the run in one transaction.

    Links are followed, as when the files are read. Raises InvalidInput, before anything is
    stored, for a name that cannot be an artifact path, a file that cannot be read, or a
    link that leads back into the folder holding it.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InvalidInput(f"Cannot log artifact {path!r}: no such file or folder.")
    base = check_artifact_path(artifact_path or os.path.basename(os.path.abspath(path)))
    files = _files(path, base)
    if not files:
        raise InvalidInput(f"Folder {path!r} holds no files to log.")
    records = []
    with progress("Storing artifacts", total=len(files), unit="files") as advance:
        for local, logical in files:
            digest, size = be.blobs.put_file(local)
            records.append(ArtifactRecord(logical, digest, size))
            advance(1)
    return be.store.add_artifacts(run_id, records, replace=base)


def _files(path: str, base: str) -> list[tuple[str, str]]:
    """(local file, artifact path) for every file to log, all checked, sorted by artifact path."""
    if not os.path.isdir(path):
        check_readable_file(path)
        return [(path, base)]
    return folder_files(path, base)


def folder_files(path: str, base: str | None = None) -> list[tuple[str, str]]:
    """(local file, name) for every file under folder `path`, links followed, sorted by name.

    A file's name is its path below `path` in `/` form, under `base` when given, as
    `check_artifact_path` returns it. Raises InvalidInput, before anything is stored, for a
    name that cannot be stored, an unreadable file or folder, two files given one name, or a
    link back into a folder holding it.
    """
    found: dict[str, str] = {}
    within = {path: {os.path.realpath(path)}}  # the real folders each walked folder lies in
    for root, dirs, names in os.walk(path, onerror=_unreadable_folder, followlinks=True):
        if root != path:
            _logical(path, base, root)  # a name too deep or too long refuses before the walk goes on
        for name in dirs:
            within[os.path.join(root, name)] = within[root] | {_follow(root, name, within[root])}
        for name in names:
            local = os.path.join(root, name)
            logical = _logical(path, base, local)
            if logical in found:
                raise InvalidInput(
                    f"Nothing was logged: {found[logical]!r} and {local!r} would both be stored as "
                    f"{logical!r}. Rename one of them."
                )
            check_readable_file(local)
            found[logical] = local
    return sorted(((local, logical) for logical, local in found.items()), key=lambda item: item[1])


def _logical(folder: str, base: str | None, local: str) -> str:
    rel = os.path.relpath(local, folder).replace(os.sep, "/")
    try:
        return check_artifact_path(rel if base is None else f"{base}/{rel}")
    except InvalidInput as exc:
        raise InvalidInput(f"Nothing was logged from {folder!r}: {local!r} cannot be stored. {exc}") from exc


def _unreadable_folder(exc: OSError) -> None:
    raise InvalidInput(
        f"Cannot read folder {exc.filename!r}: {exc.strerror or exc}. Nothing was logged."
    ) from exc


def _follow(root: str, name: str, within: set[str]) -> str:
    """The real folder `root/name` is; refuses a link back to a folder the walk is inside."""
    link = os.path.join(root, name)
    target = os.path.realpath(link)
    if target in within:
        raise InvalidInput(
            f"Nothing was logged: {link!r} links to {target!r}, a folder that holds it, so the "
            "walk would never end. Remove the link or log the folder it points to on its own."
        )
    return target


def download_artifacts(be: Backend, run_id: str, path: str, dest: str) -> list[str]:
    """Copy a run's artifact (a file or a folder prefix) to `dest`, verifying every hash.

    A single file lands at `dest`, or inside it when `dest` is a folder; a folder prefix
    lands as `dest/<last part of path>/…`. All or nothing: the files are fetched and verified
    into a staging folder first, so a missing or corrupted blob leaves `dest` untouched.
    Every file lands inside `dest`, links resolved; new files get the mode `cp` gives them.

    Returns the local paths written.

    Raises:
        NotFound: the run has no artifact at `path`.
        IntegrityError: the store records a path that is not plain (edited to escape `dest`),
            or a blob whose bytes do not match its digest.
        InvalidInput: a file would land outside `dest` through a link, or cannot be written.
    """
    prefix = check_artifact_path(path)
    items = be.store.list_artifacts(run_id, prefix)
    if not items:
        raise NotFound(
            f"Run {run_id} has no artifact at {path!r}; see `plinth runs show {run_id}` for its artifacts."
        )
    for item in items:
        _check_recorded(item)
    targets = _targets(items, prefix, os.fspath(dest))
    stage = tempfile.mkdtemp(prefix=".plinth-download-", dir=_existing_folder(targets[0]))
    try:
        with progress("Fetching artifacts", total=len(items), unit="files") as advance:
            for i, item in enumerate(items):
                name = f"artifact {item.path!r} of run {run_id}"
                be.blobs.get_file(item.digest, os.path.join(stage, str(i)), name=name)
                advance(1)
        for i, target in enumerate(targets):
            _place(os.path.join(stage, str(i)), target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return targets


def _check_recorded(item: Artifact) -> None:
    try:
        plain = check_artifact_path(item.path) == item.path
    except InvalidInput:
        plain = False
    if not plain:
        raise IntegrityError(
            f"Run {item.run_id} records an artifact named {item.path[:200]!r}, which is not a plain "
            "relative path and could be written outside the destination. Nothing was written; "
            "the store was edited by hand or corrupted: delete that record or restore a backup."
        )


def _targets(items: list[Artifact], prefix: str, dest: str) -> list[str]:
    """Where each item lands; refuses any that would land outside `dest` through a link."""
    if len(items) == 1 and items[0].path == prefix:
        into = os.path.isdir(dest) or dest.endswith(("/", os.sep))
        if not into:
            return [dest]  # the file the user named, written in place of whatever is there
        targets = [os.path.join(dest, os.path.basename(prefix))]
    else:
        if os.path.exists(dest) and not os.path.isdir(dest):
            raise InvalidInput(f"Cannot copy folder {prefix!r} into {dest!r}: it is a file.")
        _refuse_file_and_folder(items)
        root = os.path.join(dest, os.path.basename(prefix))
        targets = [os.path.join(root, *item.path[len(prefix) :].strip("/").split("/")) for item in items]
    _check_inside(dest, targets)
    return targets


def _refuse_file_and_folder(items: list[Artifact]) -> None:
    paths = {item.path for item in items}
    for item in items:
        parts = item.path.split("/")
        clash = next((p for p in ("/".join(parts[:n]) for n in range(1, len(parts))) if p in paths), None)
        if clash is not None:
            raise InvalidInput(
                f"{clash!r} is recorded both as a file and as a folder holding {item.path!r}; "
                "fetch each of them on its own."
            )


def _check_inside(dest: str, targets: list[str]) -> None:
    """Every target's folder, links resolved, lies inside `dest` (links resolved too)."""
    base = os.path.realpath(dest)
    for target in targets:
        # The file itself is replaced, never written through, so only its folder is resolved.
        folder = os.path.realpath(os.path.dirname(target))
        if os.path.commonpath([base, folder]) != base:
            raise InvalidInput(
                f"Cannot write {target!r}: a link leads it to {folder!r}, outside {dest!r}. Nothing was "
                "written; choose a destination whose folders do not link elsewhere."
            )


def _place(staged: str, target: str) -> None:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        os.replace(staged, target)
    except OSError as exc:
        raise InvalidInput(f"Cannot write {target!r}: {exc.strerror or exc}.") from exc


def _existing_folder(path: str) -> str:
    """The nearest folder above `path` that exists (staging there keeps moves on one disk)."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    return folder
