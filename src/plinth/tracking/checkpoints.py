"""Checkpoints: a run's saved training state, stored in the background, found and loaded by id.

A checkpoint is a set of the run's artifacts under `checkpoints/<step>-<uid>/`: its payload
(`state.pt`, `object.pkl` or `files/...`, see `checkpoint_payloads`) and last a manifest,
`checkpoint.json` (kind, step, metrics, created, run id, and each payload file's path, digest
and size). All of them are recorded by one `add_artifacts` call, one transaction, after every
blob is stored: a checkpoint is complete or absent, and a process killed while writing one
leaves only blobs no record refers to, which `plinth gc` collects.

A checkpoint's id is the sha256 of its manifest, so `load_checkpoint(id)` reads the manifest by
content (verified), and finds the run and the payload from it without a lookup.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from plinth.core.entities import Run
from plinth.core.errors import IntegrityError, InvalidInput, NotFound
from plinth.core.validation import MAX_INT64, check_key, check_metric_value
from plinth.store.base import ArtifactRecord
from plinth.tracking import checkpoint_payloads as payloads
from plinth.tracking.checkpoint_keep import KeepRules
from plinth.tracking.checkpoint_loading import load_payload
from plinth.tracking.checkpoint_payloads import PayloadFile
from plinth.tracking.checkpoint_writer import PendingCheckpoint, checkpoint_writer, current_writer
from plinth.tracking.context import Backend, backend

ROOT = "checkpoints"
MANIFEST = "checkpoint.json"
FORMAT = "plinth.checkpoint/1"
_ID = re.compile(r"[0-9a-f]{64}")
_MANIFEST_PATH = re.compile(rf"{ROOT}/[^/]+/{re.escape(MANIFEST)}")
_CACHE_LIMIT = 4096
_manifests: dict[str, dict[str, Any]] = {}  # by digest: content never changes, so never stale
log = logging.getLogger("plinth.tracking")


class HasId(Protocol):
    """A run handle: an `ActiveRun`, or anything with the run's `id`."""

    @property
    def id(self) -> str: ...


RunLike = str | Run | HasId


@dataclass(frozen=True)
class Checkpoint:
    """A stored checkpoint of a run.

    Attributes:
        id: the sha256 of its manifest (`plinth.load_checkpoint(id)`).
        run_id: the run that logged it.
        step: the training step it was taken at.
        metrics: the metrics logged with it.
        created_ms: when `log_checkpoint` was called (epoch milliseconds).
        kind: "torch" (a state dict), "pickle" (an object) or "folder".
        size: bytes of its payload.
        path: the artifact folder holding it (`checkpoints/0000000100-1a2b3c4d`).
        files: its payload files.
    """

    id: str
    run_id: str
    step: int
    metrics: Mapping[str, float] = field(hash=False)
    created_ms: int
    kind: str
    size: int
    path: str
    files: tuple[PayloadFile, ...] = field(repr=False)

    @property
    def created(self) -> datetime:
        """When `log_checkpoint` was called, in UTC."""
        return datetime.fromtimestamp(self.created_ms / 1000, tz=UTC)

    def load(self) -> Any:
        """The checkpoint's content: a state dict (on CPU), the object, or a local folder's Path.

        Every byte is verified against its sha256 before it is used.

        Raises:
            IntegrityError: a stored file does not match its digest (the message names the
                checkpoint and what to do).
            NotFound: a file of it is missing from the artifact store.
        """
        return load_stored(backend(), self)


# logging -------------------------------------------------------------------------------------
def log_checkpoint(
    be: Backend,
    run_id: str,
    obj: Any,
    *,
    step: int,
    metrics: Mapping[str, float] | None = None,
    keep_last: int | None = None,
    keep_best: str | tuple[str, str] | None = None,
) -> PendingCheckpoint[Checkpoint]:
    """Copy `obj`'s state now and store it as a checkpoint of run `run_id` in the background.

    See `ActiveRun.log_checkpoint`.
    """
    step = _check_step(step)
    clean = _check_metrics(metrics)
    rules = KeepRules.parse(keep_last, keep_best, clean)
    kind = payloads.kind_of(obj)
    workdir = _workdir(be)

    def prepare() -> Callable[[], Checkpoint]:
        created = time.time_ns() // 1_000_000
        snapshot = payloads.take_snapshot(obj, kind, workdir)
        return lambda: _store(be, run_id, snapshot, step, clean, created, rules, workdir)

    return checkpoint_writer().submit(run_id, f"step {step}", prepare)


def _check_step(step: object) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_INT64:
        raise InvalidInput(
            f"A checkpoint's step must be an integer from 0 to 2**63 - 1 (the training step), "
            f"got {step!r:.80}."
        )
    return step


def _check_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise InvalidInput(f"metrics must be a mapping of name to number, got {type(metrics).__name__}.")
    return {check_key(k, "metric"): check_metric_value(k, v) for k, v in metrics.items()}


def _workdir(be: Backend) -> str:
    """Where copies and serialised files wait: the blob store's own tmp folder when it is local
    (a file moves into the store without a copy, and `plinth gc` sweeps what a crash left)."""
    blobs = be.blobs
    if blobs.local:
        return os.path.join(blobs.root, "tmp")
    return os.path.join(be.settings.home, "tmp", "checkpoints")


def _store(
    be: Backend,
    run_id: str,
    snapshot: payloads.Snapshot,
    step: int,
    metrics: dict[str, float],
    created: int,
    rules: KeepRules,
    workdir: str,
) -> Checkpoint:
    """Store the payload's blobs, then the manifest, then every record in one call; prune."""
    try:
        files = payloads.store_payload(be.blobs, snapshot, workdir)
    finally:
        snapshot.discard()
    folder = f"{ROOT}/{step:010d}-{secrets.token_hex(4)}"
    manifest = {
        "format": FORMAT,
        "run_id": run_id,
        "kind": snapshot.kind,
        "step": step,
        "metrics": metrics,
        "created_ms": created,
        "path": folder,
        "files": [{"path": f.path, "digest": f.digest, "size": f.size} for f in files],
    }
    data = json.dumps(manifest, sort_keys=True).encode()
    digest, size = be.blobs.put_bytes(data)
    records = [ArtifactRecord(f"{folder}/{f.path}", f.digest, f.size) for f in files]
    be.store.add_artifacts(run_id, [*records, ArtifactRecord(f"{folder}/{MANIFEST}", digest, size)])
    _remember(digest, manifest)
    stored = _checkpoint(digest, manifest)
    if not rules.keeps_all:
        try:
            prune(be, run_id, rules)
        except Exception as exc:  # stored all the same; the next checkpoint's rules prune again
            log.warning(
                "Checkpoint %s of run %s is stored, but pruning the others failed: %s", digest, run_id, exc
            )
    return stored


def prune(be: Backend, run_id: str, rules: KeepRules) -> int:
    """Delete the records of the run's checkpoints that `rules` do not keep; returns how many
    checkpoints went (all in one call, one transaction, so none is left half listed)."""
    gone = rules.pruned(_stored(be, run_id))
    paths = [f"{c.path}/{f.path}" for c in gone for f in c.files] + [f"{c.path}/{MANIFEST}" for c in gone]
    if paths:
        be.store.delete_artifacts(run_id, paths)
    return len(gone)


# finding -------------------------------------------------------------------------------------
def list_checkpoints(run: RunLike) -> list[Checkpoint]:
    """Every complete checkpoint of `run` (a run id, an `ActiveRun` or a `Run`), by step.

    Checkpoints this process is still writing for the run are waited for first.

    Raises:
        NotFound: no such run.
        IntegrityError: a checkpoint's manifest does not match its digest.
    """
    run_id = _run_id(run)
    _wait(run_id)
    return _stored(backend(), run_id)


def latest_checkpoint(run: RunLike) -> Checkpoint | None:
    """The newest complete checkpoint of `run` (highest step; then the latest made), or None.

    `run` is a run id (a flow step's run id too), an `ActiveRun` or a `Run`. Checkpoints this
    process is still writing for the run are waited for first; one a process died writing
    is never returned.

    Raises:
        NotFound: no such run.
    """
    found = list_checkpoints(run)
    return found[-1] if found else None


def load_checkpoint(checkpoint: str | Checkpoint) -> Any:
    """Load a checkpoint by id (or a `Checkpoint`): a state dict, the object, or a folder's Path.

    Raises:
        InvalidInput: `checkpoint` is not a checkpoint id (64 hex digits).
        NotFound: no such checkpoint, or it was pruned by a keep rule.
        IntegrityError: a stored file does not match its digest.
    """
    be = backend()
    found = checkpoint if isinstance(checkpoint, Checkpoint) else get_checkpoint(checkpoint, be)
    return load_stored(be, found)


def get_checkpoint(checkpoint_id: str, be: Backend | None = None) -> Checkpoint:
    """The checkpoint with this id, while its run still records it.

    Raises:
        InvalidInput: not a checkpoint id.
        NotFound: no such checkpoint, or it was pruned.
    """
    if not isinstance(checkpoint_id, str) or not _ID.fullmatch(checkpoint_id):
        raise InvalidInput(
            f"A checkpoint id is the 64 hex digits of its manifest's sha256, got {checkpoint_id!r:.80}; "
            "see plinth.list_checkpoints(run) or `plinth runs show RUN`."
        )
    be = be or backend()
    try:
        manifest = _manifest(be, checkpoint_id)
    except NotFound:
        raise NotFound(
            f"No checkpoint {checkpoint_id} in this store; see plinth.list_checkpoints(run)."
        ) from None
    found = _checkpoint(checkpoint_id, manifest)
    recorded = be.store.list_artifacts(found.run_id, f"{found.path}/{MANIFEST}")
    if not any(a.digest == checkpoint_id for a in recorded):
        raise NotFound(
            f"Checkpoint {checkpoint_id} (step {found.step} of run {found.run_id}) is no longer recorded: "
            "a keep rule pruned it, or its writer died before it was complete. See "
            f"plinth.list_checkpoints({found.run_id!r}) for the run's checkpoints."
        )
    return found


def wait_for_checkpoints(run_id: str) -> None:
    """Return once this process has stored (or failed) every checkpoint it began for the run."""
    _wait(run_id)


def _wait(run_id: str) -> None:
    writer = current_writer()
    if writer is not None:
        writer.wait_for(run_id)


def _run_id(run: RunLike) -> str:
    if isinstance(run, str):
        return run
    run_id = getattr(run, "id", None)
    if not isinstance(run_id, str):
        raise InvalidInput(f"Expected a run id, an ActiveRun or a Run, got {type(run).__name__}.")
    return run_id


def _stored(be: Backend, run_id: str) -> list[Checkpoint]:
    """The run's recorded checkpoints, by step (then creation)."""
    found = [
        _checkpoint(a.digest, _manifest(be, a.digest, run_id))
        for a in be.store.list_artifacts(run_id, ROOT)
        if _MANIFEST_PATH.fullmatch(a.path)
    ]
    return sorted(found, key=lambda c: (c.step, c.created_ms, c.id))


def _manifest(be: Backend, digest: str, run_id: str | None = None) -> dict[str, Any]:
    cached = _manifests.get(digest)
    if cached is not None:
        return cached
    where = f"of run {run_id}" if run_id else "in this store"
    try:
        data = be.blobs.read_bytes(digest, name=f"The manifest of checkpoint {digest} {where}")
    except IntegrityError as exc:
        raise IntegrityError(
            f"{exc} Its checkpoint cannot be read; delete the run's `checkpoints/...` folder holding "
            "it, or restore the artifact store from a backup."
        ) from exc
    manifest = _parsed(digest, data)
    _remember(digest, manifest)
    return manifest


def _parsed(digest: str, data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
        return dict(manifest)
    except (ValueError, AttributeError) as exc:
        raise IntegrityError(
            f"Blob {digest} is not a plinth checkpoint manifest ({exc}); it was recorded as one by "
            "hand or by another program. Delete that record."
        ) from exc


def _remember(digest: str, manifest: dict[str, Any]) -> None:
    if len(_manifests) >= _CACHE_LIMIT:
        _manifests.clear()
    _manifests[digest] = manifest


def _checkpoint(digest: str, manifest: Mapping[str, Any]) -> Checkpoint:
    files = tuple(PayloadFile(f["path"], f["digest"], int(f["size"])) for f in manifest["files"])
    return Checkpoint(
        id=digest,
        run_id=manifest["run_id"],
        step=int(manifest["step"]),
        metrics={k: float(v) for k, v in manifest["metrics"].items()},
        created_ms=int(manifest["created_ms"]),
        kind=manifest["kind"],
        size=sum(f.size for f in files),
        path=manifest["path"],
        files=files,
    )


# loading -------------------------------------------------------------------------------------
def load_stored(be: Backend, ckpt: Checkpoint) -> Any:
    """Fetch, verify and load a checkpoint's payload (see `Checkpoint.load`)."""
    try:
        return load_payload(be, ckpt.id, ckpt.kind, ckpt.files)
    except IntegrityError as exc:
        raise IntegrityError(
            f"Checkpoint {ckpt.id} (step {ckpt.step} of run {ckpt.run_id}) is corrupted: {exc} Load "
            "another of the run's checkpoints (plinth.list_checkpoints(run)) or restore the artifact "
            "store from a backup."
        ) from exc
