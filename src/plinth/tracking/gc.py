"""Garbage collection of blobs that no entity references."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from plinth.core.errors import ConflictError
from plinth.store.workspaces import referenced_everywhere
from plinth.tracking.context import Backend

DEFAULT_MIN_AGE_S = 3600.0


@dataclass(frozen=True)
class GcReport:
    """What a collection found (and removed, unless it was a dry run)."""

    removed: list[str]
    bytes_freed: int
    kept: int
    dry_run: bool


def collect_garbage(be: Backend, *, dry_run: bool = False, min_age_s: float = DEFAULT_MIN_AGE_S) -> GcReport:
    """Remove blobs no entity references and older than `min_age_s`.

    Young blobs are kept: a writer may have stored the bytes and not yet recorded the entity.
    The blobs are listed before the references are read, so an entity recorded meanwhile
    protects its blob. Blobs are shared by every workspace, so the references of all of them
    count (a team server counts them itself).
    """
    cutoff = time.time() - min_age_s
    # prediction segment blobs replaced or abandoned by a crash are known to the store: any age
    removed = [] if dry_run else be.store.sweep_prediction_blobs(min_age_s=min_age_s)
    blobs = list(be.blobs.list_blobs())
    # a team server answers for every workspace; a SQL store is asked for each of its workspaces
    used = be.store.referenced_digests() if be.settings.is_remote else referenced_everywhere(be.settings)
    freed, kept = 0, 0
    for blob in blobs:
        if blob.digest in used or blob.mtime > cutoff:
            kept += 1
            continue
        if not dry_run:
            try:
                be.blobs.delete(blob.digest)
            except ConflictError:  # a team server refuses one some workspace came to refer to meanwhile
                kept += 1
                continue
            be.store.record_audit("blob.delete", "blob", blob.digest, blob.digest, None)
        removed.append(blob.digest)
        freed += blob.size
    for path in be.blobs.stale_temp_files(cutoff):
        if not dry_run:
            os.unlink(path)
        removed.append(path)
        freed += os.path.getsize(path) if dry_run else 0
    return GcReport(removed, freed, kept, dry_run)
