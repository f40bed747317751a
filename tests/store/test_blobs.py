"""The content-addressed blob store, on a local folder, fsspec's memory filesystem and S3 (moto)."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
import uuid
from pathlib import Path

import boto3
import pytest

from plinth.errors import ConfigError, IntegrityError, InvalidInput, NotFound, StoreError
from plinth.store import blobs as blobs_module
from plinth.store.blobs import BlobStore

MiB = 1 << 20


@pytest.fixture(params=["local", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore(str(tmp_path / "artifacts"))
    if request.param == "memory":
        return BlobStore(f"memory://plinth-{uuid.uuid4().hex}/artifacts")
    endpoint = request.getfixturevalue("s3_server")
    return BlobStore(request.getfixturevalue("s3_bucket"), {"endpoint_url": endpoint})


def _s3_client(store: BlobStore):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3", endpoint_url=store.fs.client_kwargs.get("endpoint_url") or store.fs.endpoint_url
    )


def _split(store: BlobStore, digest: str) -> tuple[str, str]:
    bucket, _, key = store.path_of(digest).partition("/")
    return bucket, key


def _overwrite(store: BlobStore, digest: str, data: bytes) -> None:
    """Replace a stored blob's bytes behind plinth's back (by hand, or with boto3 on S3)."""
    if store.local:
        with open(store.path_of(digest), "wb") as fh:
            fh.write(data)
    elif store.url.startswith("s3://"):
        bucket, key = _split(store, digest)
        boto3.client("s3", endpoint_url=store.fs.endpoint_url).put_object(Bucket=bucket, Key=key, Body=data)
    else:
        store.fs.pipe_file(store.path_of(digest), data)


def _write(path, data: bytes) -> str:  # type: ignore[no-untyped-def]
    path.write_bytes(data)
    return str(path)


def test_put_and_get_round_trip(store: BlobStore, tmp_path: Path) -> None:
    data = b"weights " * 1000
    digest, size = store.put_file(_write(tmp_path / "model.bin", data))
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert store.path_of(digest).endswith(f"/blobs/{digest[:2]}/{digest[2:]}")
    assert store.exists(digest)
    store.get_file(digest, str(tmp_path / "out" / "copy.bin"))
    assert (tmp_path / "out" / "copy.bin").read_bytes() == data
    assert store.read_bytes(digest) == data
    assert [b.digest for b in store.list_blobs()] == [digest]


def test_identical_content_is_stored_once(store: BlobStore, tmp_path: Path) -> None:
    first = store.put_file(_write(tmp_path / "a.txt", b"same"))
    second = store.put_file(_write(tmp_path / "b.txt", b"same"))
    third = store.put_bytes(b"same")
    assert first == second == third
    [blob] = store.list_blobs()
    assert (blob.digest, blob.size) == (first[0], 4)


def test_empty_file(store: BlobStore, tmp_path: Path) -> None:
    digest, size = store.put_file(_write(tmp_path / "empty", b""))
    assert (digest, size) == (hashlib.sha256(b"").hexdigest(), 0)
    store.get_file(digest, str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == b""


def test_missing_blob_is_not_found(store: BlobStore, tmp_path: Path) -> None:
    digest = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(digest)
    with pytest.raises(NotFound, match=rf"{digest[:12]}.*of artifact 'x'.*missing from"):
        store.get_file(digest, str(tmp_path / "out" / "x"), name="artifact 'x'")
    with pytest.raises(NotFound):
        store.read_bytes(digest)
    assert not (tmp_path / "out").exists()


def test_corrupted_blob_raises_and_writes_nothing(store: BlobStore, tmp_path: Path) -> None:
    digest, _ = store.put_bytes(b"the real bytes")
    _overwrite(store, digest, b"tampered bytes")
    dest = tmp_path / "out" / "model.bin"
    with pytest.raises(IntegrityError, match=r"artifact 'model\.bin' of run r1 is corrupted"):
        store.get_file(digest, str(dest), name="artifact 'model.bin' of run r1")
    assert not (tmp_path / "out").exists()
    with pytest.raises(IntegrityError):
        store.read_bytes(digest)


@pytest.mark.parametrize("store", ["local", "s3"], indirect=True)  # memory:// holds blobs in RAM
def test_large_file_is_streamed(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    block = os.urandom(MiB)
    expected = hashlib.sha256()
    with open(src, "wb") as fh:
        for i in range(64):
            chunk = bytes([i]) + block[1:]
            expected.update(chunk)
            fh.write(chunk)
    store.exists(expected.hexdigest())  # open the S3 client before measuring
    tracemalloc.start()
    try:
        digest, size = store.put_file(str(src))
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        store.get_file(digest, str(tmp_path / "back.bin"))
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (digest, size) == (expected.hexdigest(), 64 * MiB)
    assert put_peak < 24 * MiB and get_peak < 24 * MiB, (put_peak, get_peak)
    assert blobs_module.file_digest(str(tmp_path / "back.bin")) == (digest, size)


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "artifacts"))
    store.put_file(_write(tmp_path / "a", b"a"))
    store.put_bytes(b"b")
    with pytest.raises(InvalidInput, match="No such file"):
        store.put_file(str(tmp_path / "missing"))
    found = [os.path.join(r, n) for r, _, names in os.walk(tmp_path / "artifacts") for n in names]
    assert len(found) == 2 and all("/blobs/" in p and ".tmp" not in p for p in found)
    assert len(list(store.list_blobs())) == 2


def test_local_reuse_makes_a_blob_young_again(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "artifacts"))
    digest, _ = store.put_file(_write(tmp_path / "a", b"a"))
    os.utime(store.path_of(digest), (1_000_000_000, 1_000_000_000))
    store.put_file(_write(tmp_path / "b", b"a"))  # a concurrent gc must not take it now
    [blob] = store.list_blobs()
    assert blob.mtime > 1_600_000_000


@pytest.mark.parametrize("store", ["memory", "s3"], indirect=True)  # local hashes the bytes it copies
def test_remote_upload_checks_the_bytes_it_sends(
    store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = hashlib.sha256(b"what the file held a moment ago").hexdigest()
    monkeypatch.setattr(blobs_module, "file_digest", lambda path: (wrong, 5))
    with pytest.raises(StoreError, match="changed while"):
        store.put_file(_write(tmp_path / "f", b"new!!"))
    assert not store.exists(wrong)
    assert list(store.list_blobs()) == []


def test_s3_sees_changes_made_by_other_clients(s3_server: str, s3_bucket: str, tmp_path: Path) -> None:
    store = BlobStore(s3_bucket, {"endpoint_url": s3_server})
    digest, _ = store.put_bytes(b"shared")
    other = hashlib.sha256(b"from another process").hexdigest()
    assert [b.digest for b in store.list_blobs()] == [digest]  # s3fs caches this listing
    s3 = boto3.client("s3", endpoint_url=s3_server)
    bucket, key = _split(store, other)
    s3.put_object(Bucket=bucket, Key=key, Body=b"from another process")
    assert store.exists(other)
    assert store.read_bytes(other) == b"from another process"
    assert sorted(b.digest for b in store.list_blobs()) == sorted([digest, other])
    # another process's gc deletes the blob: storing the same bytes again must re-upload them
    bucket, key = _split(store, digest)
    s3.delete_object(Bucket=bucket, Key=key)
    assert not store.exists(digest)
    store.put_file(_write(tmp_path / "again", b"shared"))
    assert store.read_bytes(digest) == b"shared"


def test_list_blobs_reports_size_and_time(store: BlobStore) -> None:
    digest, _ = store.put_bytes(b"12345")
    [blob] = store.list_blobs()
    assert (blob.digest, blob.size) == (digest, 5)
    assert blob.mtime > 1_600_000_000
    store.delete(digest)
    assert not store.exists(digest) and list(store.list_blobs()) == []


def test_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nosuchfs://x"):
        BlobStore("nosuchfs://x/y")


def test_only_sha256_digests_name_blobs(store: BlobStore) -> None:
    digest, _ = store.put_bytes(b"kept")
    store.fs.makedirs(f"{store.root}/blobs/ab", exist_ok=True)
    store.fs.pipe_file(f"{store.root}/blobs/ab/not-a-digest", b"left by hand")
    assert [b.digest for b in store.list_blobs()] == [digest]
    for edited in ("../../../../etc/passwd", "ab/../../x", digest.upper(), digest[:-1]):
        with pytest.raises(IntegrityError, match="not a sha256 digest"):
            store.read_bytes(edited)
