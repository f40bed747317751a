"""What a checkpoint holds, by kind: the copy taken at the call, and the files it is stored as.

Three kinds:
- "torch": a PyTorch state dict, a module (its state dict), or any nested dict or list holding
  tensors (`{"model": sd, "optim": opt.state_dict(), "epoch": 3}`). The copy copies every
  tensor to CPU memory (a plain memcpy, into memory kept from the last checkpoint where it
  fits: `checkpoint_buffers`); serialising with `torch.save` happens later, on the writer's
  thread, so the training loop only waits for the copy.
- "pickle": any other object, pickled (cloudpickle) at the call.
- "folder": a directory (a Hugging Face `save_pretrained` output), copied to a staging folder.

torch is imported only when the object holds tensors (then it is already loaded), so
`import plinth` stays light. Reading them back is `checkpoint_loading`.
"""

from __future__ import annotations

import collections
import copy
import hashlib
import io
import os
import shutil
import sys
import tempfile
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from plinth.core.errors import InvalidInput
from plinth.tracking.checkpoint_buffers import buffer_pool

if TYPE_CHECKING:
    from plinth.store.blobs import BlobStore

TORCH_FILE = "state.pt"
PICKLE_FILE = "object.pkl"
FOLDER = "files"


@dataclass(frozen=True)
class PayloadFile:
    """One stored file of a checkpoint: its path inside the checkpoint, digest and size."""

    path: str
    digest: str
    size: int


@dataclass
class Snapshot:
    """The state of the object at the call: cloned tensors, pickled bytes, or a staged folder.

    `buffers` are the tensors of the copy that the next copy may reuse once this one is stored.
    """

    kind: str
    value: Any
    staging: str | None = None
    buffers: list[Any] = field(default_factory=list)

    def discard(self) -> None:
        """Drop the copy (and a staged folder's files); its tensors are kept for the next copy."""
        self.value = None
        if self.buffers:
            buffer_pool().keep(self.buffers)
            self.buffers = []
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


def kind_of(obj: Any) -> str:
    """The kind of checkpoint `obj` makes ("torch", "pickle" or "folder").

    Raises:
        InvalidInput: `obj` is a path (text or `os.PathLike`) that is not a folder.
    """
    if isinstance(obj, (str, os.PathLike)):
        if os.path.isdir(obj):
            return "folder"
        raise InvalidInput(
            f"log_checkpoint takes a folder path, an object or a state dict; {os.fspath(obj)!r} is not "
            "a folder. Put a file to checkpoint in a folder of its own, or wrap text in a dict."
        )
    torch = sys.modules.get("torch")  # an object can hold tensors only once torch is loaded
    if torch is not None and (isinstance(obj, torch.nn.Module) or _holds_tensor(obj, torch)):
        return "torch"
    return "pickle"


def take_snapshot(obj: Any, kind: str, staging_root: str) -> Snapshot:
    """Copy the state of `obj` now, so the caller may go on changing it.

    Raises:
        InvalidInput: the object cannot be pickled, or the folder cannot be read.
    """
    if kind == "torch":
        torch = sys.modules["torch"]
        state = obj.state_dict() if isinstance(obj, torch.nn.Module) else obj
        buffers: list[Any] = []
        return Snapshot("torch", _copy_tree(state, torch, {}, buffers), buffers=buffers)
    if kind == "folder":
        return Snapshot("folder", None, _stage_folder(os.fspath(obj), staging_root))
    return Snapshot("pickle", _pickled(obj))


def _holds_tensor(value: Any, torch: Any, depth: int = 0) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if depth > 32:
        return False
    if isinstance(value, Mapping):
        return any(_holds_tensor(v, torch, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_tensor(v, torch, depth + 1) for v in value)
    return False


def _copy_tree(value: Any, torch: Any, memo: dict[int, Any], buffers: list[Any]) -> Any:
    """`value` with every tensor copied to CPU memory (shared tensors stay shared) and every
    other leaf deep-copied; dicts keep their type and a state dict its `_metadata`. The copies
    that may be reused later are added to `buffers`."""
    if isinstance(value, torch.Tensor):
        if id(value) not in memo:
            memo[id(value)] = _copy_tensor(value.detach(), torch, buffers)
        return memo[id(value)]
    if isinstance(value, Mapping):
        items = [(k, _copy_tree(v, torch, memo, buffers)) for k, v in value.items()]
        if not isinstance(value, collections.OrderedDict):
            return dict(items)
        copied: collections.OrderedDict[Any, Any] = collections.OrderedDict(items)
        metadata = getattr(value, "_metadata", None)
        if metadata is not None:  # the versions `load_state_dict` reads
            copied._metadata = copy.deepcopy(metadata)  # type: ignore[attr-defined]
        return copied
    if isinstance(value, list):
        return [_copy_tree(v, torch, memo, buffers) for v in value]
    if isinstance(value, tuple):
        items = [_copy_tree(v, torch, memo, buffers) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return copy.deepcopy(value)


def _copy_tensor(tensor: Any, torch: Any, buffers: list[Any]) -> Any:
    """A CPU copy of `tensor`: a plain memcpy into memory kept from the last checkpoint where
    there is some of its shape and dtype (no page faults), else into new memory."""
    plain = type(tensor) is torch.Tensor and tensor.layout is torch.strided and not tensor.is_quantized
    if not plain or tensor.numel() == 0:  # sparse, quantized, subclasses: as torch copies them
        return tensor.to("cpu", copy=True)
    shape = tuple(tensor.shape)
    out = buffer_pool().take(shape, tensor.dtype)
    if out is None:
        out = torch.empty(shape, dtype=tensor.dtype, device="cpu")
    out.copy_(tensor)
    buffers.append(out)
    return out


def _pickled(obj: Any) -> bytes:
    import cloudpickle

    try:
        return bytes(cloudpickle.dumps(obj))
    except Exception as exc:
        raise InvalidInput(
            f"Cannot checkpoint a {type(obj).__name__}: it cannot be pickled ({type(exc).__name__}: "
            f"{exc}). Checkpoint a state dict, a picklable object or a folder instead."
        ) from exc


def _stage_folder(path: str, staging_root: str) -> str:
    """A copy of folder `path` under `staging_root` (names checked as artifact names first)."""
    from plinth.tracking.artifacts import folder_files

    files = folder_files(path)
    if not files:
        raise InvalidInput(f"Folder {path!r} holds no files to checkpoint.")
    os.makedirs(staging_root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="folder-", dir=staging_root)
    try:
        for local, name in files:
            target = os.path.join(staging, *name.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(local, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise InvalidInput(f"Cannot copy folder {path!r} to checkpoint it: {exc.strerror or exc}.") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


# writing (on the writer's thread) --------------------------------------------------------------
def store_payload(blobs: BlobStore, snapshot: Snapshot, workdir: str) -> list[PayloadFile]:
    """Serialise the snapshot and store its file(s) as blobs; returns them in path order.

    The snapshot is discarded as soon as it is serialised (its memory free for the next copy).
    """
    if snapshot.kind == "pickle":
        digest, size = blobs.put_bytes(snapshot.value)
        return [PayloadFile(PICKLE_FILE, digest, size)]
    if snapshot.kind == "torch":
        return [_store_torch(blobs, snapshot, workdir)]
    from plinth.tracking.artifacts import folder_files

    stored = []
    for local, name in folder_files(snapshot.staging or ""):
        digest, size = blobs.put_file(local)
        stored.append(PayloadFile(f"{FOLDER}/{name}", digest, size))
    return stored


def _store_torch(blobs: BlobStore, snapshot: Snapshot, workdir: str) -> PayloadFile:
    import torch

    os.makedirs(workdir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="state-", suffix=".pt", dir=workdir)
    try:
        with os.fdopen(fd, "wb") as fh:
            out = _HashingWriter(fh)
            torch.save(snapshot.value, typing.cast(IO[bytes], out))
        snapshot.discard()
        blobs.adopt_file(tmp, out.digest)  # moved in where it can be, so the bytes are written once
        return PayloadFile(TORCH_FILE, out.digest, out.size)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes what passes through it, saving a second read of the file."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._hash.update(view)
        self.size += view.nbytes
        self._fh.write(view)
        return view.nbytes

    @property
    def digest(self) -> str:
        """The sha256 of everything written."""
        return self._hash.hexdigest()
