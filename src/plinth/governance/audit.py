"""Checking the keyed audit chain, and anchoring its head outside the store.

An anchor is the chain's head (sequence number, hash, time and keyed hash) written to a file or
an object-store path that the database's writers cannot rewrite. Checked against it later, the
chain must still hold that event unchanged: events cut from its end, or a chain rewritten by
someone who holds the key, no longer match. Take one regularly (e.g. daily, to a bucket with
object versioning or retention): events newer than the latest anchor are vouched for by the key
and the head alone.

An anchor is written only where the target already exists: a local file's folder is made, but no
bucket or remote folder is, so a mistyped bucket name fails instead of quietly holding the anchor.

Events written before the store was keyed fail the check until adopted (`adopt_audit`, see
`store/audit.py`).
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from plinth.core.audit import AuditAdoption, AuditCheck, AuditHead
from plinth.core.errors import ConfigError, InvalidInput, NotFound, PlinthError, StoreError
from plinth.store.base import Store

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = [
    "AuditAdoption",
    "AuditCheck",
    "AuditHead",
    "adopt_audit",
    "anchor_audit",
    "read_anchor",
    "verify_audit",
    "write_anchor",
]


def verify_audit(store: Store, anchor: AuditHead | None = None) -> AuditCheck:
    """Check the chain with the store's key (and against `anchor`); name the first bad event.

    Raises:
        WrongAuditKey: the key in use is not the one the chain was written with.
    """
    return store.verify_audit(anchor)


def adopt_audit(store: Store) -> AuditAdoption:
    """Key the events written before the store was keyed, as they stand (see `store.audit`).

    Run it once on a store upgraded from an earlier plinth, by someone who trusts its log: a
    keyed log whose keyed hashes and head were stripped looks the same.

    Raises:
        AuditTampered: unkeyed events follow keyed ones, or keyed events lost their head.
        WrongAuditKey: the key in use is not the one the chain was written with.
    """
    return store.adopt_audit()


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
    """Write `head` as JSON to a local file (atomically: all of it or nothing) or an fsspec URL.

    A local file's folder is made when missing; a bucket or remote folder never is.

    Raises:
        ConfigError: the target cannot hold an anchor (unknown or read-only protocol, no such
            bucket or folder, a local path that cannot be written).
        StoreError: the target's server failed, cannot be reached, or refused the credentials.
    """
    body = head.to_json()
    if "://" not in target:
        _write_local(target, body)
        return
    fs, path = _filesystem(target, storage_options)
    if _is_local(fs):
        _write_local(path, body)
        return
    try:
        _require_container(fs, path, target)
        with fs.open(path, "wb") as fh:  # through the filesystem: fsspec.open would make the bucket
            fh.write(body.encode())
    except PlinthError:
        raise
    except NotImplementedError as exc:
        raise ConfigError(
            f"Cannot write the audit anchor to {target}: {target.split('://')[0]}:// URLs cannot be "
            "written through fsspec. Write it to a local path or an object store (s3://, gs://, az://)."
        ) from exc
    except FileNotFoundError as exc:
        raise ConfigError(
            f"Cannot write the audit anchor to {target}: its bucket or folder does not exist ({exc}). "
            "plinth does not create it: check the name, or create it first."
        ) from exc
    except Exception as exc:  # each protocol fails in its own types (botocore, aiohttp, ...)
        raise StoreError(
            f"Cannot write the audit anchor to {target}: {_first_line(exc)}. Check that the server is "
            "reachable and that the credentials in use (storage options, AWS_* variables) may write there."
        ) from exc


def read_anchor(source: str, storage_options: Mapping[str, Any] | None = None) -> AuditHead:
    """Read an anchor written by `write_anchor` from a path or an fsspec URL.

    Raises:
        NotFound: nothing is there.
        InvalidInput: what is there is not an anchor.
    """
    fs, path = _filesystem(source, storage_options)
    try:
        with fs.open(path, "rb") as fh:
            text = fh.read(1 << 16).decode()
    except FileNotFoundError as exc:
        if _unreachable(exc):  # fsspec's http reports a refused connection as a missing file
            raise StoreError(
                f"Cannot read the audit anchor at {source}: {_first_line(_root_cause(exc))}. Check that "
                "the server is running and that the URL names it."
            ) from exc
        raise NotFound(
            f"No audit anchor at {source}; write one with `plinth audit anchor -o {source}`."
        ) from exc
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{source} is not an audit anchor: {exc}.") from exc
    except Exception as exc:  # each protocol fails in its own types (botocore, aiohttp, ...)
        raise StoreError(
            f"Cannot read the audit anchor at {source}: {_first_line(exc)}. Check that it can be reached "
            "and that this user, or the credentials in use (storage options, AWS_* variables), may read it."
        ) from exc
    return AuditHead.from_json(text, source)


def _filesystem(url: str, storage_options: Mapping[str, Any] | None) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and path of `url`.

    Raises:
        ConfigError: the protocol is unknown, its package is missing, or the options do not fit it.
    """
    try:
        from fsspec.core import url_to_fs  # here: `import plinth` stays light

        return url_to_fs(url, **dict(storage_options or {}))
    except (ImportError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"Cannot use {url} for the audit anchor: {_first_line(exc)}. Give a local path or a URL "
            "whose fsspec package is installed (s3:// needs s3fs, gs:// gcsfs, az:// adlfs)."
        ) from exc


def _is_local(fs: AbstractFileSystem) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _require_container(fs: AbstractFileSystem, path: str, target: str) -> None:
    """Refuse a target whose folder does not exist, or, on an object store (where folders are
    only name prefixes), whose bucket does not."""
    parent = posixpath.dirname(path.rstrip("/"))
    bucket = path.lstrip("/").split("/", 1)[0]
    if parent and fs.exists(parent):
        return
    if hasattr(fs, "split_path") and bucket and fs.exists(bucket):
        return
    what = f"bucket {bucket!r}" if hasattr(fs, "split_path") else f"folder {parent or path!r}"
    raise ConfigError(
        f"Cannot write the audit anchor to {target}: the {what} does not exist, or cannot be reached "
        "with the credentials in use. plinth does not create it: check the name and that the server "
        "is running, or create it first."
    )


def _write_local(path: str, body: str) -> None:
    """Write `path` all at once (a staged file renamed into place), making its folder if missing.

    Raises:
        ConfigError: the folder or file cannot be made or written.
    """
    try:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
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
    except OSError as exc:
        raise ConfigError(
            f"Cannot write the audit anchor to {path}: {exc.strerror or exc}. Choose a path this user "
            "may write."
        ) from exc


_CONNECTION_ERRORS = frozenset(
    {"ConnectionError", "ClientConnectorError", "EndpointConnectionError", "ConnectTimeoutError"}
)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _unreachable(exc: BaseException) -> bool:
    """Whether a connection failure (builtin, aiohttp, botocore) lies behind `exc`."""
    return any(cls.__name__ in _CONNECTION_ERRORS for e in _causes(exc) for cls in type(e).__mro__)


def _root_cause(exc: BaseException) -> BaseException:
    return _causes(exc)[-1]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
