"""Reading a checkpoint's payload back: fetched from the blob store, verified, then loaded.

A state dict is fetched to a temporary file and loaded on CPU with `weights_only=True` where it
can be; an object is read into memory and unpickled; a folder is materialised under the cache
(`PLINTH_HOME/cache/checkpoints/<id>/`), every file checked again on every load, and fetched
anew when one is not intact. Nothing is unpickled before its bytes matched their digest.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plinth.store.blobs import file_digest
from plinth.tracking.checkpoint_payloads import FOLDER, PayloadFile
from plinth.tracking.context import Backend


def load_payload(be: Backend, checkpoint_id: str, kind: str, files: Sequence[PayloadFile]) -> Any:
    """The content of checkpoint `checkpoint_id`: a state dict, the object, or a folder's Path.

    Raises:
        IntegrityError: a file's bytes do not match its digest.
        NotFound: a file is missing from the blob store.
    """
    cache = os.path.join(be.settings.home, "cache", "checkpoints")
    if kind == "pickle":
        [file] = files
        return _unpickle(be.blobs.read_bytes(file.digest, name=_name(checkpoint_id, file)))
    if kind == "torch":
        [file] = files
        return _load_torch(be, checkpoint_id, file, cache)
    return _materialise(be, checkpoint_id, files, cache)


def _name(checkpoint_id: str, file: PayloadFile) -> str:
    return f"file {file.path!r} of checkpoint {checkpoint_id[:12]}…"


def _unpickle(data: bytes) -> Any:
    import cloudpickle

    return cloudpickle.loads(data)


def _load_torch(be: Backend, checkpoint_id: str, file: PayloadFile, cache: str) -> Any:
    import torch

    os.makedirs(cache, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".pt", dir=cache)
    os.close(fd)
    try:
        be.blobs.get_file(file.digest, tmp, name=_name(checkpoint_id, file))
        try:
            return torch.load(tmp, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # objects weights_only refuses: the store is the trust root
            return torch.load(tmp, map_location="cpu", weights_only=False)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _materialise(be: Backend, checkpoint_id: str, files: Sequence[PayloadFile], cache: str) -> Path:
    """The folder under the cache, each file verified; fetched again if any is not intact."""
    target = Path(cache) / checkpoint_id
    named = _folder_files(files)
    if target.is_dir() and all(_intact(target.joinpath(*n.split("/")), f.digest) for n, f in named):
        return target
    os.makedirs(cache, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".stage-", dir=cache))
    try:
        for name, file in named:
            dest = str(stage.joinpath(*name.split("/")))
            be.blobs.get_file(file.digest, dest, name=_name(checkpoint_id, file))
        shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(stage, target)
        except OSError:  # another process placed it meanwhile
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target


def _folder_files(files: Sequence[PayloadFile]) -> list[tuple[str, PayloadFile]]:
    """(path inside the folder, file) for a folder checkpoint's files."""
    prefix = FOLDER + "/"
    return [(f.path[len(prefix) :], f) for f in files if f.path.startswith(prefix)]


def _intact(path: Path, digest: str) -> bool:
    try:
        return file_digest(str(path))[0] == digest
    except OSError:
        return False
