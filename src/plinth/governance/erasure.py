"""Erasure by subject and retention: remove prediction logs and labels, verify, leave a receipt.

Every copy goes at once: the rows, and the columnar segments holding the logs' inputs and
outputs, which are rewritten without them while their old blobs are deleted (see
plinth.store.sql.segments for the order that keeps a crash from leaving a copy reachable).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from plinth.core.errors import InvalidInput, StoreError
from plinth.core.ids import now_ms
from plinth.store.base import Store


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
    count, digest = removed.logs, removed.logs_digest
    labels, labels_digest = removed.labels, removed.labels_digest
    if not dry_run:
        left = store.count_prediction_logs(subject_id=subject_id, before_ms=before_ms)
        left_labels = store.count_labels(subject_id=subject_id, before_ms=before_ms)
        if left or left_labels:
            raise StoreError(
                f"{left} prediction logs and {left_labels} labels remained after the {action}; run it again."
            )
    residue = "" if dry_run else store.scrub()
    receipt = Receipt(
        action, subject_id, before_ms, count, digest, labels, labels_digest, dry_run, now_ms(), residue
    )
    if not dry_run:
        store.record_audit(
            f"governance.{action}",
            "subject" if subject_id else "retention",
            subject_id or str(before_ms),
            None,
            receipt.to_json(),
        )
    return receipt
