"""Checking the keyed audit chain, and anchoring its head outside the store.

An anchor is the chain's head (sequence number, hash, time and keyed hash) written to a file or
an object-store path that the database's writers cannot rewrite. Checked against it later, the
chain must still hold that event unchanged: events cut from its end, or a chain rewritten by
someone who holds the key, no longer match. Take one regularly (e.g. daily, to a bucket with
object versioning or retention): events newer than the latest anchor are vouched for by the key
and the head alone.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

from plinth.core.audit import AuditCheck, AuditHead
from plinth.core.errors import ConfigError, InvalidInput, NotFound
from plinth.store.base import Store

__all__ = ["AuditCheck", "AuditHead", "anchor_audit", "read_anchor", "verify_audit", "write_anchor"]


def verify_audit(store: Store, anchor: AuditHead | None = None) -> AuditCheck:
    """Check the chain with the store's key (and against `anchor`); name the first bad event.

    Raises:
        WrongAuditKey: the key in use is not the one the chain was written with.
    """
    return store.verify_audit(anchor)


def anchor_audit(store: Store, target: str, storage_options: Mapping[str, Any] | None = None) -> AuditHead:
    """Check the chain, then write its head to `target` (a path or an fsspec URL); returns the head.

    Raises:
        AuditTampered: the chain is broken (an anchor of a broken chain would vouch for it).
        InvalidInput: the audit log is empty or unkeyed, so there is no head to anchor.
    """
    check = store.verify_audit()
    check.raise_if_broken()
    if check.head is None:
        raise InvalidInput("The audit log has no keyed head yet (no events): nothing to anchor.")
    write_anchor(check.head, target, storage_options)
    return check.head


def write_anchor(head: AuditHead, target: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Write `head` as JSON to a local file (atomically: all of it or nothing) or an fsspec URL."""
    body = head.to_json()
    try:
        if "://" not in target:
            _write_file(target, body)
            return
        import fsspec  # here: `import plinth` stays light

        with fsspec.open(target, "w", **dict(storage_options or {})) as fh:
            fh.write(body)
    except (OSError, ValueError, ImportError) as exc:
        raise ConfigError(f"Cannot write the audit anchor to {target}: {exc}.") from exc


def read_anchor(source: str, storage_options: Mapping[str, Any] | None = None) -> AuditHead:
    """Read an anchor written by `write_anchor` from a path or an fsspec URL.

    Raises:
        NotFound: nothing is there.
        InvalidInput: what is there is not an anchor.
    """
    try:
        import fsspec

        with fsspec.open(source, "r", **dict(storage_options or {})) as fh:
            text = fh.read(1 << 16)
    except FileNotFoundError as exc:
        raise NotFound(
            f"No audit anchor at {source}; write one with `plinth audit anchor -o {source}`."
        ) from exc
    except (OSError, ValueError, ImportError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the audit anchor at {source}: {exc}.") from exc
    return AuditHead.from_json(text, source)


def _write_file(path: str, body: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, staging = tempfile.mkstemp(prefix=".anchor-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(staging, path)
    except BaseException:
        os.unlink(staging)
        raise
