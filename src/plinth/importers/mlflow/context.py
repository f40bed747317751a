"""What every step of an import shares: the source, plinth's stores, and the running summary."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plinth.importers.mlflow.artifacts import Locator, Uploader
from plinth.importers.mlflow.records import Source
from plinth.importers.mlflow.summary import ImportSummary

if TYPE_CHECKING:
    from plinth.registry.signing import Signer
    from plinth.store.base import Store
    from plinth.store.blobs import BlobStore

IMPORTED_EXPERIMENT = "mlflow.importedExperimentId"
IMPORTED_RUN = "mlflow.importedRunId"
IMPORTED_MODEL = "mlflow.importedModelId"
IMPORTED_VERSION = "mlflow.importedVersion"
"""Tags that carry MLflow's own ids on what was imported: how a later import knows what it has."""

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32, as plinth's ids


@dataclass
class ImportContext:
    """The source being read, the stores being written, and what the import has done so far."""

    source: Source
    store: Store
    blobs: BlobStore
    locator: Locator
    uploader: Uploader
    summary: ImportSummary
    heartbeat_s: float
    show_progress: bool
    signer: Signer | None = None


def imported_id(kind: str, original: str, time_ms: int | None) -> str:
    """A plinth id (a ULID) for an MLflow entity, the same on every import of it.

    Its time part is the entity's own time (a run's start), so imported runs sort among
    plinth's by when they ran; its random part comes from MLflow's id. An import that stopped
    half way and starts again therefore gives a run the id the runs written before already
    point at (a child's parent, say).
    """
    ms = max(0, min(time_ms or 0, (1 << 48) - 1))
    noise = int.from_bytes(hashlib.sha256(f"mlflow {kind} {original}".encode()).digest()[:10], "big")
    value = (ms << 80) | noise
    return "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))
