"""Erasure by subject and retention: remove prediction logs and labels, verify, leave a receipt.

Every copy goes at once: the rows, and the columnar segments holding the logs' inputs and
outputs, which are rewritten without them while their old blobs are deleted (see
plinth.store.sql.segments for the order that keeps a crash from leaving a copy reachable).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from plinth.core.entities import LineageEdge
from plinth.core.errors import InvalidInput, NotFound, StoreError
from plinth.core.ids import now_ms
from plinth.store.base import Store

ERASED = "logs erased by"
"""The relation of a stored edge from a model version to a receipt that removed its prediction
logs or labels; lineage reads it as the version's predictions "erased by" the receipt (a
version's id fits an edge's columns where 'NAME/VERSION' may not)."""


@dataclass(frozen=True)
class Receipt:
    """What an erasure or retention pass removed: counts, a digest of the removed rows, when, and
    (`residue`) what in the store's files may still hold the removed values, and until when."""

    action: str
    subject_id: str | None
    before_ms: int | None
    prediction_logs: int
    digest: str
    labels: int
    labels_digest: str
    dry_run: bool
    time_ms: int
    residue: str = ""
    id: str = ""
    """'ACTION-TIME_MS-DIGEST12': the receipt's node in lineage; empty for a dry run."""
    versions: tuple[tuple[str, int, int, int], ...] = ()
    """(model, version, logs, labels) of every model version whose logs or labels it removed."""

    def to_json(self) -> str:
        """The receipt as canonical JSON (what the audit event records)."""
        return json.dumps(asdict(self), sort_keys=True)


def erase_subject(store: Store, subject_id: str, *, dry_run: bool = False) -> Receipt:
    """Remove every prediction log and label of `subject_id`, check none remain, audit the receipt.

    Raises:
        InvalidInput: an empty subject id.
        StoreError: rows of the subject remained after removal.
    """
    if not isinstance(subject_id, str) or not subject_id.strip():
        raise InvalidInput("Say whose data to erase: --subject ID (a non-empty id).")
    return _remove(store, "erasure", subject_id=subject_id, before_ms=None, dry_run=dry_run)


def apply_retention(store: Store, older_than_ms: int, *, dry_run: bool = False) -> Receipt:
    """Remove prediction logs (and their labels) older than `older_than_ms` ms ago, the same way."""
    if older_than_ms <= 0:
        raise InvalidInput("A retention period must be longer than zero, e.g. 90d.")
    return _remove(store, "retention", subject_id=None, before_ms=now_ms() - older_than_ms, dry_run=dry_run)


def _remove(
    store: Store, action: str, *, subject_id: str | None, before_ms: int | None, dry_run: bool
) -> Receipt:
    # labels and logs go in one transaction; the segments holding the logs are rewritten without
    # them and their old blobs deleted at once (as are blobs left over by earlier crashes)
    removed = store.remove_predictions(subject_id=subject_id, before_ms=before_ms, dry_run=dry_run)
    if not dry_run:
        left = store.count_prediction_logs(subject_id=subject_id, before_ms=before_ms)
        left_labels = store.count_labels(subject_id=subject_id, before_ms=before_ms)
        if left or left_labels:
            raise StoreError(
                f"{left} prediction logs and {left_labels} labels remained after the {action}; run it again."
            )
    residue = "" if dry_run else store.scrub()
    time_ms = now_ms()
    receipt = Receipt(
        action,
        subject_id,
        before_ms,
        removed.logs,
        removed.logs_digest,
        removed.labels,
        removed.labels_digest,
        dry_run,
        time_ms,
        residue,
        "" if dry_run else _receipt_id(action, time_ms, removed.logs_digest, removed.labels_digest),
        removed.versions,
    )
    if not dry_run:
        _record(store, receipt)
    return receipt


def _receipt_id(action: str, time_ms: int, logs_digest: str, labels_digest: str) -> str:
    """'erasure-1765000000000-0123456789ab': the action, when, and a digest of what went."""
    both = hashlib.sha256(f"{logs_digest}|{labels_digest}".encode()).hexdigest()
    return f"{action}-{time_ms}-{both[:12]}"


def _record(store: Store, receipt: Receipt) -> None:
    """Audit the receipt, linked into lineage from each model version it removed logs of (one
    transaction: a receipt is in the log and the graph, or in neither)."""
    store.record_audit(
        f"governance.{receipt.action}",
        "subject" if receipt.subject_id else "retention",
        receipt.subject_id or str(receipt.before_ms),
        None,
        receipt.to_json(),
        _edges(store, receipt),
    )


def _edges(store: Store, receipt: Receipt) -> list[LineageEdge]:
    """An edge per removed-from model version still registered (logs of others have no node).

    The subject stays out of the edges, which anyone who may read lineage reads: lineage shows
    it from the audit event, to those who may see subjects.
    """
    shared = {
        "action": receipt.action,
        "time_ms": receipt.time_ms,
        "before_ms": receipt.before_ms,
        "prediction_logs": receipt.prediction_logs,
        "labels": receipt.labels,
    }
    edges = []
    for model, version, logs, labels in receipt.versions:
        try:
            version_id = store.get_model_version(model, version).id
        except NotFound:
            continue
        attributes = {
            **shared,
            "predictions": f"{model}/{version}",
            "logs_of_version": logs,
            "labels_of_version": labels,
        }
        edges.append(
            LineageEdge(
                "model_version", version_id, ERASED, "receipt", receipt.id, receipt.time_ms, attributes
            )
        )
    return edges
