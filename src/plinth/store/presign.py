"""Presigned URLs for blobs on S3: bytes go straight between a client and the bucket.

A team server whose artifact store is on S3 may hand a client a URL to GET a blob, or to PUT
new bytes to a staging key beside the blobs (`ROOT/uploads/<id>`). A staged object counts as
stored only after the server has read it back, found that it hashes to the digest the client
named, and copied exactly that version (`CopySourceIfMatch` on the ETag it read) to the blob's
key; a client never writes a blob's key itself. Staged objects left for a day are swept.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from plinth.core.errors import ConfigError, ConflictError, InvalidInput, NotFound
from plinth.store.blobs import REMOTE_CHUNK, BlobStore

EXPIRES_S = 3600
MAX_PUT = 5 << 30
"""S3 takes at most 5 GiB in one PUT; larger blobs go through the server in chunks."""


class Presigner:
    """Presigned GET and PUT URLs for the blobs of an S3 `BlobStore`.

    Raises:
        ConfigError: the store is not on S3.
    """

    def __init__(self, blobs: BlobStore, expires_s: int = EXPIRES_S) -> None:
        if not supports_presign(blobs):
            raise ConfigError(f"Presigned URLs need an artifact store on S3, not {blobs.url}.")
        self.blobs = blobs
        self.expires_s = expires_s

    def get_url(self, digest: str) -> str:
        """A URL that reads the blob for `expires_s` seconds.

        Raises:
            NotFound: no blob with that digest.
        """
        self.blobs.stat(digest)
        url: str = self.blobs.fs.url(self.blobs.path_of(digest), expires=self.expires_s)
        return url

    def put_url(self, upload_id: str) -> str:
        """A URL that writes the staged object of upload `upload_id`."""
        url: str = self.blobs.fs.url(
            self.staged(upload_id), expires=self.expires_s, client_method="put_object"
        )
        return url

    def staged(self, upload_id: str) -> str:
        """The staging key of an upload."""
        return f"{self.blobs.root}/uploads/{upload_id}"

    def is_staged(self, upload_id: str) -> bool:
        """Whether the client has put the upload's object."""
        path = self.staged(upload_id)
        self.blobs.fs.invalidate_cache(path)
        return bool(self.blobs.fs.exists(path))

    def commit(self, upload_id: str, digest: str) -> int:
        """Verify the staged object hashes to `digest`, then make it that blob. Returns its size.

        Raises:
            NotFound: nothing was put for this upload.
            InvalidInput: the staged bytes hash to something else (the object is deleted).
        """
        bucket, key = self._split(self.staged(upload_id))
        try:
            head = self.blobs.fs.call_s3("head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            raise NotFound(
                f"Nothing was put for upload {upload_id}; PUT the bytes to its URL first."
            ) from None
        try:
            found = self._hash(self.staged(upload_id))
            if found != digest:
                raise InvalidInput(
                    f"The bytes put for upload {upload_id} hash to {found[:12]}…, not {digest[:12]}…; "
                    "they were discarded. Send the file again."
                )
            if not self.blobs.exists(digest):
                self._copy(bucket, key, head["ETag"], digest)
        finally:
            self.discard(upload_id)
        return int(head["ContentLength"])

    def _copy(self, bucket: str, key: str, etag: str, digest: str) -> None:
        """Copy the staged object to the blob's key, only if it is still the version hashed."""
        target_bucket, target_key = self._split(self.blobs.path_of(digest))
        try:
            self.blobs.fs.call_s3(
                "copy_object",
                Bucket=target_bucket,
                Key=target_key,
                CopySource={"Bucket": bucket, "Key": key},
                CopySourceIfMatch=etag,
            )
        except OSError as exc:
            raise ConflictError(
                f"The bytes put for blob {digest[:12]}… changed while they were checked, or could "
                f"not be copied ({exc}); send the file again."
            ) from exc
        finally:
            self.blobs.fs.invalidate_cache(self.blobs.path_of(digest))

    def discard(self, upload_id: str) -> None:
        """Delete an upload's staged object (one already gone is fine)."""
        with contextlib.suppress(FileNotFoundError):
            self.blobs.fs.rm_file(self.staged(upload_id))
        self.blobs.fs.invalidate_cache(self.staged(upload_id))

    def sweep(self, older_than: float) -> list[str]:
        """Delete the staged objects last written before `older_than`; returns their upload ids."""
        base = f"{self.blobs.root}/uploads"
        self.blobs.fs.invalidate_cache(base)
        if not self.blobs.fs.exists(base):
            return []
        gone = []
        for path, info in self.blobs.fs.find(base, detail=True).items():
            modified = info.get("LastModified")
            if modified is not None and modified.timestamp() < older_than:
                upload_id = path.rsplit("/", 1)[-1]
                self.discard(upload_id)
                gone.append(upload_id)
        return gone

    def _hash(self, path: str) -> str:
        h = hashlib.sha256()
        with self.blobs.fs.open(path, "rb", block_size=REMOTE_CHUNK, cache_type="none") as fh:
            while chunk := fh.read(REMOTE_CHUNK):
                h.update(chunk)
        return h.hexdigest()

    def _split(self, path: str) -> tuple[str, str]:
        bucket, _, key = path.partition("/")
        return bucket, key


def supports_presign(blobs: BlobStore) -> bool:
    """Whether `blobs` is on S3, where presigned URLs exist."""
    if blobs.local:
        return False
    protocol: Any = blobs.fs.protocol
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    return "s3" in protocols or "s3a" in protocols
