"""Governance functions on the default backend (what `plinth.lineage` and friends call)."""

from __future__ import annotations

from typing import Any

from plinth.core.errors import InvalidInput
from plinth.core.units import parse_duration
from plinth.governance import audit, erasure
from plinth.governance import lineage as graphs
from plinth.store.base import ServerSide
from plinth.tracking.context import backend


def lineage(ref: str, direction: str = "both") -> graphs.LineageGraph:
    """Where `ref` came from (up), what came of it (down), or both.

    `ref`: a run id, flow run id, 'model/3', 'model@alias' or 'dataset/2'.
    """
    if direction not in ("up", "down", "both"):
        raise InvalidInput(f"direction must be 'up', 'down' or 'both', not {direction!r}.")
    store = backend().store
    if isinstance(store, ServerSide):  # walked where the logs are (see plinth.store.base.ServerSide)
        found = store.compute("lineage", dict[str, Any], {"ref": ref, "direction": direction})
        return graphs.LineageGraph.from_dict(found)
    return graphs.lineage(store, ref, direction)


def verify_audit(anchor: str | None = None) -> audit.AuditCheck:
    """Check the audit log's keyed hash chain; the result names the first bad event.

    `anchor`: a path or URL written by `anchor_audit`; the events up to it must be there unchanged.

    Raises:
        WrongAuditKey: the audit key in use (PLINTH_AUDIT_KEY, or PLINTH_HOME's audit.key) is not
            the one the log was written with.
    """
    be = backend()
    head = audit.read_anchor(anchor, be.settings.storage_options) if anchor else None
    return audit.verify_audit(be.store, head)


def adopt_audit() -> audit.AuditAdoption:
    """Key the audit events written before the store was keyed, as they stand, once.

    For a store upgraded from an earlier plinth, whose log its owner trusts: `verify_audit` fails
    on those events ("not keyed") until then. Recorded as an `audit.adopt` event.

    Raises:
        AuditTampered: unkeyed events follow keyed ones, or keyed events lost their head.
        WrongAuditKey: the audit key in use is not the one the log was written with.
    """
    return audit.adopt_audit(backend().store)


def anchor_audit(target: str) -> audit.AuditHead:
    """Check the audit log, then write its head to `target`: a file path or any fsspec URL."""
    be = backend()
    return audit.anchor_audit(be.store, target, be.settings.storage_options)


def erase_subject(subject_id: str, *, dry_run: bool = False) -> erasure.Receipt:
    """Remove every prediction log of a subject everywhere, verify it, and return the receipt."""
    return erasure.erase_subject(backend().store, subject_id, dry_run=dry_run)


def apply_retention(predictions: str, *, dry_run: bool = False) -> erasure.Receipt:
    """Remove prediction logs older than `predictions` (e.g. '90d')."""
    seconds = parse_duration(predictions)
    if not seconds:
        raise InvalidInput(f"Retention {predictions!r} must be a period such as 90d or 12h.")
    return erasure.apply_retention(backend().store, int(seconds * 1000), dry_run=dry_run)
