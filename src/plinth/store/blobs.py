"""Content-addressed blob store (sha256) over fsspec: a local folder or any fsspec URL.

Layout: `ROOT/blobs/ab/cdef…` (the digest split after two characters). Writes are atomic:
a local blob is written to a temporary file and renamed; an object store publishes a whole
object at once (a PUT or a completed multipart upload), so the final key is written directly,
and only once the bytes sent are known to hash to that key. Large files are streamed in
chunks both ways. Remote filesystems (s3fs) cache directory listings; every lookup here
drops the cached entries first, so blobs written or deleted by other processes are seen.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from plinth.core.errors import ConfigError, IntegrityError, InvalidInput, NotFound, PlinthError, StoreError
from plinth.store.blob_errors import blob_store_failure, missing_bucket

CHUNK = 1 << 20
REMOTE_PART = 5 << 20  # upload block: S3 multipart parts must be at least 5 MiB
REMOTE_CHUNK = 4 << 20  # bytes fetched per ranged read
_DIGEST = re.compile(r"[0-9a-f]{64}")
_STORAGE_LIBRARIES = frozenset({"botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "adlfs", "azure"})


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob: digest, size, and modification time (epoch seconds)."""

    digest: str
    size: int
    mtime: float


def file_digest(path: str) -> tuple[str, int]:
    """sha256 hex digest and size of a local file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class BlobStore:
    """Blobs addressed by the sha256 of their bytes.

    Args:
        url: a local folder or an fsspec URL such as `s3://bucket/prefix`.
        storage_options: passed to fsspec (e.g. `endpoint_url` for S3-compatible servers).
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.endpoint: str | None = (storage_options or {}).get("endpoint_url")
        self._options = dict(storage_options or {})
        self._fs: Any = None
        folder = None if self._options else local_folder(url)
        if folder is None:
            self._fs, root = self._open_fs()
            self.local = _is_local_fs(self._fs)
        else:  # fsspec is loaded only when a listing or deletion needs it
            root, self.local = folder, True
        self.root = root.rstrip("/")
        if self.local:
            try:
                os.makedirs(os.path.join(self.root, "blobs"), exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"Cannot create the artifact folder {self.root!r}: {exc.strerror or exc}. Point "
                    "PLINTH_ARTIFACTS (or PLINTH_HOME) at a folder this user can write."
                ) from exc

    @property
    def fs(self) -> Any:
        """The fsspec filesystem the blobs live on."""
        if self._fs is None:
            self._fs, _ = self._open_fs()
        return self._fs

    def _open_fs(self) -> tuple[Any, str]:
        import fsspec  # here, not at the top: `import plinth` and loading a local model stay light

        try:
            return fsspec.core.url_to_fs(self.url, **self._options)
        except (ImportError, ValueError) as exc:
            raise ConfigError(
                f"Cannot open the artifact store PLINTH_ARTIFACTS={self.url!r}: {exc}. "
                "Use a folder or an fsspec URL; for s3:// install plinth[s3]."
            ) from exc

    def path_of(self, digest: str) -> str:
        """Where the blob with this digest lives inside the filesystem.

        Raises:
            IntegrityError: `digest` is not a sha256 hex digest (a record edited to point elsewhere).
        """
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise IntegrityError(
                f"{digest!r:.80} is not a sha256 digest, so it names no blob; the record holding it "
                "was edited or corrupted. Restore the store from a backup."
            )
        return f"{self.root}/blobs/{digest[:2]}/{digest[2:]}"

    def exists(self, digest: str) -> bool:
        """True when the blob is stored."""
        path = self.path_of(digest)
        if self.local:
            return os.path.exists(path)
        self._forget_cached(path)
        return bool(self._call(self.fs.exists, path))

    def put_file(self, path: str) -> tuple[str, int]:
        """Store a local file; identical content is stored once. Returns (digest, size).

        Raises:
            InvalidInput: `path` is not a regular file this process can read.
            StoreError: the store cannot be written; the message names the setting to check.
        """
        check_readable_file(path)
        if self.local:
            try:
                return self._put_local(path)
            except OSError as exc:
                raise self._not_writable(exc) from exc
        digest, size = file_digest(path)
        if not self.exists(digest):
            self._call(self._upload, path, digest)
        return digest, size

    def _upload(self, path: str, digest: str) -> None:
        """Stream a local file to the blob's key, committing only if the bytes sent hash to it."""
        target = self.path_of(digest)
        # `_open`, not `open`: a deferred file must not join the shared filesystem's transaction.
        out = self.fs._open(target, "wb", block_size=REMOTE_PART, autocommit=False)
        h = hashlib.sha256()
        try:
            with open(path, "rb") as src:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            out.close()
            if h.hexdigest() != digest:
                raise StoreError(
                    f"{path} changed while it was being stored; log it again once it is complete."
                )
            out.commit()
        except BaseException:
            with contextlib.suppress(OSError, PlinthError):
                out.discard()
                if self.exists(digest) and not self._intact(digest):  # a filesystem that cannot defer
                    self.fs.rm_file(target)
            raise
        finally:
            self._forget_cached(target)

    def _intact(self, digest: str) -> bool:
        h = hashlib.sha256()
        for chunk in self._chunks(digest, None):
            h.update(chunk)
        return h.hexdigest() == digest

    def put_bytes(self, data: bytes, *, durable: bool = True) -> tuple[str, int]:
        """Store bytes held in memory. Returns (digest, size).

        `durable=False` skips the fsync of local writes: the blob survives the process
        dying, not the machine losing power (used for intermediate flow results).
        """
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest, len(data)
        if self.local:
            try:
                self._publish_local(digest, lambda fh: fh.write(data), durable=durable)
            except OSError as exc:
                raise self._not_writable(exc) from exc
        else:
            self._call(self.fs.pipe_file, self.path_of(digest), data)
        return digest, len(data)

    def adopt_file(self, path: str, digest: str) -> int:
        """Store a local file already known to hash to `digest`, and remove it. Returns its size.

        On a local store on the same filesystem the file is moved in (no copy), so a large
        upload the server has received is published at once; elsewhere it is copied in, and
        the copy is committed only if the bytes sent hash to `digest`.

        Raises:
            StoreError: the store cannot be written, or the file does not hash to `digest`.
        """
        final = self.path_of(digest)
        size = os.path.getsize(path)
        try:
            if self.local:
                self._adopt_local(path, final, digest)
            else:
                if not self.exists(digest):
                    self._call(self._upload, path, digest)
                os.unlink(path)
        except OSError as exc:
            raise self._not_writable(exc) from exc
        return size

    def _adopt_local(self, path: str, final: str, digest: str) -> None:
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())
        if os.path.exists(final):
            os.unlink(path)
            with contextlib.suppress(OSError):  # reused: make it young, so a running gc keeps it
                os.utime(final)
            return
        os.makedirs(os.path.dirname(final), exist_ok=True)
        try:
            os.replace(path, final)
        except OSError:  # another filesystem: copy it in, hashing again on the way
            found, _ = self._put_local(path)
            os.unlink(path)
            if found != digest:  # what was stored is a blob of its own, which gc may collect
                raise StoreError(f"{path} changed while it was being stored; send it again.") from None

    def stat(self, digest: str) -> BlobInfo:
        """The stored blob's size and modification time.

        Raises:
            NotFound: no blob with that digest.
        """
        path = self.path_of(digest)
        try:
            if self.local:
                st = os.stat(path)
                return BlobInfo(digest, st.st_size, st.st_mtime)
            self._forget_cached(path)
            info = self._call(self.fs.info, path)
        except FileNotFoundError as exc:
            raise self._unreadable(exc, digest, None) from exc
        return BlobInfo(digest, int(info.get("size") or 0), _mtime(info))

    def open_blob(self, digest: str) -> IO[bytes]:
        """A file object reading the blob's stored bytes (unverified: the reader checks the hash).

        Raises:
            NotFound: no blob with that digest.
        """
        path = self.path_of(digest)
        try:
            if self.local:
                return open(path, "rb")
            self._forget_cached(path)
            fh: IO[bytes] = self._call(self.fs.open, path, "rb", block_size=REMOTE_CHUNK, cache_type="none")
            return fh
        except FileNotFoundError as exc:
            raise self._unreadable(exc, digest, None) from exc

    def _put_local(self, path: str) -> tuple[str, int]:
        h = hashlib.sha256()
        size = 0
        tmp_dir = os.path.join(self.root, "tmp")
        os.makedirs(tmp_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            final = self.path_of(digest)
            if os.path.exists(final):
                os.unlink(tmp)
                with contextlib.suppress(OSError):  # reused: make it young, so a running gc keeps it
                    os.utime(final)
            else:
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return digest, size

    def _not_writable(self, exc: OSError) -> StoreError:
        return StoreError(
            f"Cannot write to the artifact store {self.url}: {exc.strerror or exc}. Point "
            "PLINTH_ARTIFACTS (or PLINTH_HOME) at a folder this user can write, with free space."
        )

    def _publish_local(self, digest: str, write: Any, durable: bool = True) -> None:
        final = self.path_of(digest)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(final), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
                out.flush()
                if durable:
                    os.fsync(out.fileno())
            os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def get_file(self, digest: str, dest: str, *, name: str | None = None) -> None:
        """Copy a blob to `dest`, verifying its hash; nothing is left at `dest` on mismatch.

        The copy gets the mode a new file gets (0666 less the umask), as with `cp`.

        Raises:
            NotFound: no blob with that digest.
            IntegrityError: the stored bytes do not hash to `digest`.
            InvalidInput: `dest` cannot be written.
        """
        parent = os.path.dirname(os.path.abspath(dest))
        made = _missing_dirs(parent)
        tmp = None
        try:
            os.makedirs(parent, exist_ok=True)
            fd, tmp = _new_file(parent, ".plinth-")
            with os.fdopen(fd, "wb") as out:
                h = hashlib.sha256()
                for chunk in self._chunks(digest, name):
                    h.update(chunk)
                    out.write(chunk)
            self._check(digest, h.hexdigest(), name)
            os.replace(tmp, dest)
        except BaseException as exc:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
            for folder in reversed(made):
                try:
                    os.rmdir(folder)
                except OSError:
                    break
            if isinstance(exc, OSError):  # the blob's own failures arrive as PlinthErrors
                raise InvalidInput(
                    f"Cannot write {dest!r}: {exc.strerror or exc}; choose a destination you can write."
                ) from exc
            raise

    def read_bytes(self, digest: str, *, name: str | None = None) -> bytes:
        """Return a blob's bytes after verifying their hash (for blobs that fit in memory)."""
        data = self._read_local(digest, name) if self.local else b"".join(self._chunks(digest, name))
        self._check(digest, hashlib.sha256(data).hexdigest(), name)
        return data

    def _read_local(self, digest: str, name: str | None) -> bytes:
        try:
            with open(self.path_of(digest), "rb") as fh:
                return fh.read()  # one read, one copy: this path carries large flow results
        except OSError as exc:
            raise self._unreadable(exc, digest, name) from exc

    def _unreadable(self, exc: Exception, digest: str, name: str | None) -> NotFound | StoreError:
        failure = None if self.local else blob_store_failure(exc, self.url, self.endpoint)
        if failure is not None:
            return failure
        if isinstance(exc, FileNotFoundError):
            return NotFound(
                f"Blob {digest[:12]}… of {name or 'an artifact'} is missing from {self.url}; "
                "it may have been deleted by hand. Re-log the artifact."
            )
        return StoreError(f"Cannot read {name or digest} from {self.url}: {exc}")

    def _chunks(self, digest: str, name: str | None) -> Iterator[bytes]:
        path = self.path_of(digest)
        try:
            if self.local:
                fh: IO[bytes] = open(path, "rb")
                size = CHUNK
            else:
                self._forget_cached(path)
                fh = self.fs.open(path, "rb", block_size=REMOTE_CHUNK, cache_type="none")
                size = REMOTE_CHUNK
            with fh:
                while chunk := fh.read(size):
                    yield chunk
        except PlinthError:
            raise
        except Exception as exc:
            if not _is_storage_error(exc):
                raise
            raise self._unreadable(exc, digest, name) from exc

    def _check(self, expected: str, found: str, name: str | None) -> None:
        if expected != found:
            raise IntegrityError(
                f"{name or 'Blob'} is corrupted: its bytes hash to {found[:12]}… but "
                f"{expected[:12]}… was recorded. It was not returned; restore it from a backup "
                "or log it again."
            )

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob with its size and modification time."""
        base = f"{self.root}/blobs"
        if not self.local:  # s3fs keeps listings of the folders below `base`; start afresh
            self.fs.invalidate_cache(base)
            for key in [k for k in self.fs.dircache if k.startswith(base + "/")]:
                self.fs.dircache.pop(key, None)
        if not self._call(self.fs.exists, base):
            self._require_bucket()
            return
        for path, info in self._call(self.fs.find, base, detail=True).items():
            parts = path.rstrip("/").split("/")
            digest = "".join(parts[-2:])
            if len(parts) < 2 or len(parts[-2]) != 2 or not _DIGEST.fullmatch(digest):
                continue  # temporary files and anything else that is not a blob
            yield BlobInfo(digest, int(info.get("size") or 0), _mtime(info))

    def _require_bucket(self) -> None:
        """Raise when an object store's bucket is missing (an empty listing would hide it)."""
        if self.local or "s3" not in _protocols(self.fs):
            return
        bucket = self.root.split("/", 1)[0]
        self._forget_cached(bucket)
        if not self._call(self.fs.exists, bucket):
            raise missing_bucket(self.url, self.endpoint)

    def stale_temp_files(self, older_than: float) -> list[str]:
        """Partial files left by writers that died mid-write (local stores), older than a time."""
        if not self.local:
            return []
        found = []
        for folder, _dirs, names in os.walk(self.root):
            for name in names:
                path = os.path.join(folder, name)
                is_temp = os.path.basename(folder) == "tmp" or name.startswith(".tmp-")
                if is_temp and os.path.getmtime(path) < older_than:
                    found.append(path)
        return found

    def delete(self, digest: str) -> None:
        """Remove a blob (used by garbage collection only); a blob already gone is fine."""
        path = self.path_of(digest)
        try:
            self._call(self.fs.rm_file, path)
        except FileNotFoundError:
            pass
        finally:
            self._forget_cached(path)

    def _forget_cached(self, path: str) -> None:
        """Drop cached listings of `path` and its folders, so the next lookup asks the store."""
        if not self.local:
            self.fs.invalidate_cache(path)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the filesystem; misconfiguration and failures become StoreErrors.

        A missing key stays a FileNotFoundError, for callers to which it means "not there".
        """
        try:
            return fn(*args, **kwargs)
        except PlinthError:
            raise
        except Exception as exc:
            failure = None if self.local else blob_store_failure(exc, self.url, self.endpoint)
            if failure is not None:
                raise failure from exc
            if isinstance(exc, FileNotFoundError):
                raise
            if _is_storage_error(exc):
                raise StoreError(f"The artifact store {self.url} failed: {exc}") from exc
            raise


def local_folder(url: str) -> str | None:
    """The folder of an artifact store URL that is an absolute POSIX path (or `file://` one).

    None for anything else (a relative path, `~`, another protocol, Windows), which fsspec reads.
    """
    path = url.removeprefix("file://")
    if os.sep != "/" or not path.startswith("/") or "::" in path:
        return None
    return path


def _is_local_fs(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def check_readable_file(path: str) -> None:
    """Raise InvalidInput unless `path` is a regular file this process can open for reading.

    Pipes, sockets and devices are refused before they are opened: reading one may never end.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise InvalidInput(f"Cannot store {path!r}: it is not a regular file (a pipe, socket or device).")
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InvalidInput(f"Cannot read {path!r}: {exc.strerror or exc}.") from exc


def _new_file(folder: str, prefix: str) -> tuple[int, str]:
    """Create a new empty file with an unused name; its mode is 0666 less the umask, as `cp` gives."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        path = os.path.join(folder, prefix + secrets.token_hex(8))
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue


def _is_storage_error(exc: Exception) -> bool:
    """An OSError, or an error of a storage client library (botocore's are not OSErrors)."""
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in _STORAGE_LIBRARIES


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _missing_dirs(folder: str) -> list[str]:
    """The folders `os.makedirs(folder)` would create, outermost first."""
    missing = []
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing[::-1]


def _mtime(info: dict[str, Any]) -> float:
    for key in ("mtime", "LastModified", "last_modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return time.time()
