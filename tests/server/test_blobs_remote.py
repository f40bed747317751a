"""Artifact blobs through the team server: chunked, resumable, sha256-checked, constant memory."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from plinth.core.errors import ConfigError, ConflictError, Forbidden, IntegrityError, NotFound
from plinth.core.settings import Settings
from plinth.server.uploads import STALE_S
from plinth.store.base import ArtifactRecord
from plinth.store.blobs import BlobStore
from plinth.store.http import ServerClient
from plinth.store.open import open_blobs
from plinth.store.remote_blobs import RemoteBlobStore

MiB = 1 << 20


@pytest.fixture
def server(server_factory: Callable[..., Any], tmp_path: Path) -> Any:
    return server_factory(f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}")


@pytest.fixture
def blobs(server: Any) -> Iterator[RemoteBlobStore]:
    client = ServerClient(server.url, token=server.admin_token)
    yield RemoteBlobStore(client)
    client.close()


def _stored(server: Any) -> BlobStore:
    """The server's own artifact store."""
    return BlobStore(server.config.artifacts_url)


def _file(path: Path, size: int, seed: bytes = b"") -> Path:
    block = hashlib.sha256(seed).digest() * (MiB // 32)
    with open(path, "wb") as fh:
        for i in range(size // MiB):
            fh.write(i.to_bytes(8, "big") + block[8:])
        fh.write(os.urandom(size % MiB))
    return path


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(MiB):
            h.update(chunk)
    return h.hexdigest()


def _requests(blobs: RemoteBlobStore) -> list[httpx.Request]:
    """Every request the store's client sends from now on."""
    seen: list[httpx.Request] = []
    blobs.client.http.event_hooks["request"].append(seen.append)
    return seen


def test_small_and_medium_blobs_go_up_and_down(server: Any, blobs: RemoteBlobStore, tmp_path: Path) -> None:
    small, _ = blobs.put_bytes(b"weights")
    medium = _file(tmp_path / "medium.bin", 20 * MiB + 123)
    digest, size = blobs.put_file(str(medium))

    assert (digest, size) == (_sha(medium), 20 * MiB + 123)
    assert blobs.read_bytes(small) == b"weights"
    blobs.get_file(digest, str(tmp_path / "out" / "copy.bin"))
    assert _sha(tmp_path / "out" / "copy.bin") == digest
    assert blobs.exists(digest) and _stored(server).exists(digest)
    assert blobs.stat(digest).size == size
    assert not blobs.exists("0" * 64)


def test_an_empty_blob_round_trips(blobs: RemoteBlobStore) -> None:
    digest, size = blobs.put_bytes(b"")
    assert (digest, size) == (hashlib.sha256(b"").hexdigest(), 0)
    assert blobs.read_bytes(digest) == b""


def test_content_the_server_holds_is_not_sent_again(blobs: RemoteBlobStore, tmp_path: Path) -> None:
    path = _file(tmp_path / "model.bin", 3 * MiB)
    blobs.put_file(str(path))
    sent = _requests(blobs)

    blobs.put_file(str(path))

    assert [r.method for r in sent] == ["HEAD"]


def test_a_file_goes_up_in_chunks(server: Any, tmp_path: Path) -> None:
    client = ServerClient(server.url, token=server.admin_token)
    blobs = RemoteBlobStore(client, chunk_bytes=MiB)
    path = _file(tmp_path / "data.bin", 5 * MiB + 7)
    sent = _requests(blobs)

    digest, _ = blobs.put_file(str(path))

    patches = [r for r in sent if r.method == "PATCH"]
    assert [int(r.headers["upload-offset"]) for r in patches] == [0, MiB, 2 * MiB, 3 * MiB, 4 * MiB, 5 * MiB]
    assert max(int(r.headers["content-length"]) for r in patches) == MiB
    assert _stored(server).read_bytes(digest) == path.read_bytes()


def test_an_interrupted_upload_resumes_from_the_offset_the_server_reports(
    server: Any, tmp_path: Path
) -> None:
    data = _file(tmp_path / "data.bin", 6 * MiB).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    with server.client() as http:
        upload = http.post("/api/v1/blobs/uploads").json()["upload_id"]
        path = f"/api/v1/blobs/uploads/{upload}"
        for offset in (0, 2 * MiB):  # half of the chunks, then the connection drops
            answer = http.patch(
                path, content=data[offset : offset + 2 * MiB], headers={"upload-offset": str(offset)}
            )
            assert answer.status_code == 204

        resume = int(http.head(path).headers["upload-offset"])
        assert resume == 4 * MiB
        http.patch(path, content=data[resume:], headers={"upload-offset": str(resume)})
        committed = http.post(f"{path}/commit", json={"digest": digest})

    assert committed.status_code == 201 and committed.json() == {"digest": digest, "size": 6 * MiB}
    assert _stored(server).read_bytes(digest) == data


class _Flaky(httpx.BaseTransport):
    """A transport that loses the answer to chosen requests (after the server got them), or cuts a
    download short, as a dropped connection would."""

    def __init__(self, drop: Callable[[httpx.Request], bool], cut_after: int | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.drop = drop
        self.cut_after = cut_after
        self.cuts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.drop(request):
            response.close()
            raise httpx.ReadError("connection reset by peer", request=request)
        if self.cut_after is not None and request.method == "GET" and self.cuts == 0:
            self.cuts += 1
            return httpx.Response(
                response.status_code, headers=response.headers, stream=_Cut(response, self.cut_after)
            )
        return response


class _Cut(httpx.SyncByteStream):
    def __init__(self, response: httpx.Response, limit: int) -> None:
        self.response = response
        self.limit = limit

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self.response.stream:  # type: ignore[union-attr]
            yield chunk[: self.limit - sent]
            sent += len(chunk)
            if sent >= self.limit:
                raise httpx.ReadError("connection reset by peer")

    def close(self) -> None:
        self.response.close()


def _flaky_store(server: Any, transport: httpx.BaseTransport, **options: Any) -> RemoteBlobStore:
    client = ServerClient(server.url, token=server.admin_token)
    client.http = httpx.Client(
        base_url=client.http.base_url, headers=client.http.headers, transport=transport
    )
    return RemoteBlobStore(client, **options)


def test_the_client_resumes_an_upload_whose_answer_was_lost(server: Any, tmp_path: Path) -> None:
    dropped: list[int] = []

    def drop(request: httpx.Request) -> bool:
        if request.method == "PATCH" and request.headers["upload-offset"] == str(2 * MiB) and not dropped:
            dropped.append(1)
            return True
        return False

    blobs = _flaky_store(server, _Flaky(drop), chunk_bytes=MiB)
    sent = _requests(blobs)
    path = _file(tmp_path / "data.bin", 4 * MiB + 5)

    digest, _ = blobs.put_file(str(path))

    assert dropped and _stored(server).read_bytes(digest) == path.read_bytes()
    offsets = [int(r.headers["upload-offset"]) for r in sent if r.method == "PATCH"]
    assert offsets == [0, MiB, 2 * MiB, 3 * MiB, 4 * MiB]  # the lost chunk had arrived: not sent again


def test_the_client_resumes_a_dropped_download_with_a_range(server: Any, tmp_path: Path) -> None:
    path = _file(tmp_path / "data.bin", 5 * MiB + 9)
    digest, _ = _stored(server).put_file(str(path))
    blobs = _flaky_store(server, _Flaky(lambda r: False, cut_after=2 * MiB))
    sent = _requests(blobs)

    blobs.get_file(digest, str(tmp_path / "copy.bin"))

    assert _sha(tmp_path / "copy.bin") == digest
    assert [r.headers.get("range") for r in sent if r.method == "GET"] == [None, f"bytes={2 * MiB}-"]


def test_a_range_request_gets_part_of_a_blob(server: Any) -> None:
    data = bytes(range(256)) * 100
    digest, _ = _stored(server).put_bytes(data)
    with server.client() as http:
        tail = http.get(f"/api/v1/blobs/{digest}", headers={"range": "bytes=1000-"})
        middle = http.get(f"/api/v1/blobs/{digest}", headers={"range": "bytes=10-19"})
        last = http.get(f"/api/v1/blobs/{digest}", headers={"range": "bytes=-5"})
        whole = http.get(f"/api/v1/blobs/{digest}")
        past = http.get(f"/api/v1/blobs/{digest}", headers={"range": f"bytes={len(data)}-"})

    assert (tail.status_code, tail.content) == (206, data[1000:])
    assert tail.headers["content-range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    assert (middle.status_code, middle.content) == (206, data[10:20])
    assert last.content == data[-5:]
    assert (whole.status_code, whole.content) == (200, data)
    assert whole.headers["etag"] == f'"{digest}"' and whole.headers["content-length"] == str(len(data))
    assert past.status_code == 416


def test_a_commit_whose_bytes_do_not_match_is_refused(server: Any) -> None:
    with server.client() as http:
        upload = http.post("/api/v1/blobs/uploads").json()["upload_id"]
        path = f"/api/v1/blobs/uploads/{upload}"
        http.patch(path, content=b"tampered", headers={"upload-offset": "0"})
        claimed = hashlib.sha256(b"original").hexdigest()
        answer = http.post(f"{path}/commit", json={"digest": claimed})
        gone = http.head(path)

    assert answer.status_code == 422 and "hash to" in answer.json()["error"]["message"]
    assert gone.status_code == 404
    assert not _stored(server).exists(claimed)
    assert not os.listdir(os.path.join(server.config.artifacts_url, "uploads"))


def test_a_download_that_does_not_match_its_digest_is_refused(
    server: Any, blobs: RemoteBlobStore, tmp_path: Path
) -> None:
    digest, _ = blobs.put_bytes(b"the real weights")
    with open(_stored(server).path_of(digest), "wb") as fh:  # corrupted on the server's disk
        fh.write(b"something else!!")

    with pytest.raises(IntegrityError, match="corrupted"):
        blobs.get_file(digest, str(tmp_path / "copy.bin"))
    assert not (tmp_path / "copy.bin").exists()


def test_a_chunk_past_the_end_is_refused_with_the_offset_to_resume_from(server: Any) -> None:
    with server.client() as http:
        upload = http.post("/api/v1/blobs/uploads").json()["upload_id"]
        http.patch(f"/api/v1/blobs/uploads/{upload}", content=b"12345", headers={"upload-offset": "0"})
        answer = http.patch(f"/api/v1/blobs/uploads/{upload}", content=b"x", headers={"upload-offset": "9"})

    assert answer.status_code == 409 and "resume from Upload-Offset 5" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("HEAD", "/blobs/abc"),
        ("GET", "/blobs/" + "A" * 64),
        ("GET", "/blobs/" + "g" * 64),
        ("GET", "/blobs/..%2F..%2Fetc%2Fpasswd"),
        ("GET", "/blobs/%2E%2E"),
        ("POST", "/blobs/" + "0" * 63 + "/presign"),
        ("DELETE", "/blobs/" + "0" * 65),
        ("HEAD", "/blobs/uploads/short"),
        ("PATCH", "/blobs/uploads/..%2F..%2F" + "a" * 26),
        ("POST", "/blobs/uploads/" + "a" * 33 + "/commit"),
        ("HEAD", "/blobs/uploads/" + "a" * 32),  # well formed, never started
        ("GET", "/blobs/" + "0" * 64),  # well formed, not stored
    ],
)
def test_bad_digests_and_upload_ids_are_refused_with_4xx(server: Any, method: str, path: str) -> None:
    with server.client() as http:
        answer = http.request(
            method, "/api/v1" + path, headers={"upload-offset": "0"}, json={"digest": "0" * 64}
        )
    assert 400 <= answer.status_code < 500


def test_a_commit_needs_a_digest(server: Any) -> None:
    with server.client() as http:
        upload = http.post("/api/v1/blobs/uploads").json()["upload_id"]
        answer = http.post(f"/api/v1/blobs/uploads/{upload}/commit", json={"digest": "../../x"})
    assert answer.status_code == 422


def test_a_missing_blob_is_not_found(blobs: RemoteBlobStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="missing from the team server"):
        blobs.get_file("1" * 64, str(tmp_path / "x"))
    with pytest.raises(IntegrityError, match="not a sha256 digest"):
        blobs.read_bytes("../../etc/passwd")


def test_uploads_left_for_a_day_are_swept(server_factory: Callable[..., Any], tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    stale = artifacts / "uploads" / ("s" * 32)
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half an upload")
    old = time.time() - STALE_S - 60
    os.utime(stale, (old, old))
    server = server_factory(f"sqlite:///{tmp_path / 'plinth.db'}", str(artifacts))

    with server.client() as http:
        fresh = http.post("/api/v1/blobs/uploads").json()["upload_id"]
        assert http.head(f"/api/v1/blobs/uploads/{'s' * 32}").status_code == 404
        assert http.head(f"/api/v1/blobs/uploads/{fresh}").status_code == 200


def test_listing_and_deleting_blobs(server: Any, blobs: RemoteBlobStore) -> None:
    kept, _ = blobs.put_bytes(b"kept")
    stray, _ = blobs.put_bytes(b"stray")
    assert {b.digest for b in blobs.list_blobs()} == {kept, stray}

    blobs.delete(stray)
    blobs.delete(stray)  # already gone is fine

    assert [b.digest for b in blobs.list_blobs()] == [kept]
    assert blobs.stale_temp_files(time.time()) == []


def test_a_blob_a_workspace_refers_to_is_not_deleted(
    server: Any, blobs: RemoteBlobStore, tmp_path: Path
) -> None:
    digest, size = blobs.put_bytes(b"logged")
    store = server.app.state.plinth.stores.get("default")
    run = store.create_run(
        experiment="e", name=None, params={}, tags={}, environment=None, heartbeat_s=60, user="tester"
    )
    store.add_artifacts(run.id, [ArtifactRecord("model.bin", digest, size)])

    with pytest.raises(ConflictError, match="still referred to"):
        blobs.delete(digest)
    assert blobs.exists(digest)


def _token_for(server: Any, name: str, role: str) -> str:
    with server.client() as admin:
        admin.put(f"/api/v1/workspaces/default/members/{name}", json={"role": role}).raise_for_status()
        issued = admin.post(
            "/api/v1/tokens", json={"name": "t", "principal": name, "workspace": "default", "role": role}
        )
    return str(issued.json()["secret"])


@pytest.mark.parametrize(
    ("role", "reads", "writes", "deletes"),
    [
        ("viewer", True, False, False),
        ("predictor", True, False, False),
        ("editor", True, True, False),
        ("admin", True, True, False),
    ],
)
def test_what_each_role_may_do_with_blobs(
    server: Any, blobs: RemoteBlobStore, role: str, reads: bool, writes: bool, deletes: bool
) -> None:
    digest, _ = blobs.put_bytes(b"shared weights")
    theirs = RemoteBlobStore(ServerClient(server.url, token=_token_for(server, "someone", role)))

    assert (theirs.read_bytes(digest) == b"shared weights") is reads
    assert _allowed(lambda: theirs.put_bytes(role.encode())) is writes
    assert _allowed(lambda: list(theirs.list_blobs())) is deletes
    assert _allowed(lambda: theirs.delete(digest)) is deletes


def _allowed(action: Callable[[], object]) -> bool:
    try:
        action()
    except Forbidden:
        return False
    return True


def test_open_blobs_names_the_server_for_a_remote_store(server: Any) -> None:
    settings = Settings(store_url=server.url, token=server.admin_token)
    blobs = open_blobs(settings)
    assert isinstance(blobs, RemoteBlobStore)
    digest, _ = blobs.put_bytes(b"through open_blobs")
    assert blobs.read_bytes(digest) == b"through open_blobs"


def test_a_remote_store_has_no_local_path(blobs: RemoteBlobStore) -> None:
    with pytest.raises(ConfigError, match="no local path"):
        blobs.path_of("0" * 64)
    with pytest.raises(ConfigError, match="no local filesystem"):
        _ = blobs.fs


def test_presigned_urls_move_bytes_straight_to_s3(
    server_factory: Callable[..., Any], s3_server: str, s3_bucket: str, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'plinth.db'}"
    settings = Settings(
        home=str(tmp_path / "server-home"),
        store_url=store_url,
        artifacts_url=s3_bucket,
        storage_options={"endpoint_url": s3_server},
    )
    server = server_factory(store_url, s3_bucket, settings=settings, presign=True)
    blobs = RemoteBlobStore(ServerClient(server.url, token=server.admin_token))
    sent = _requests(blobs)
    path = _file(tmp_path / "model.bin", 3 * MiB + 1)

    digest, _ = blobs.put_file(str(path))
    blobs.get_file(digest, str(tmp_path / "copy.bin"))

    assert _sha(tmp_path / "copy.bin") == digest
    assert not [r for r in sent if r.method == "PATCH" or (r.method == "GET" and "/blobs/" in r.url.path)]
    on_s3 = BlobStore(s3_bucket, {"endpoint_url": s3_server})
    assert on_s3.exists(digest) and not on_s3.fs.exists(f"{on_s3.root}/uploads/")


def test_a_presigned_put_of_other_bytes_is_refused(
    server_factory: Callable[..., Any], s3_server: str, s3_bucket: str, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'plinth.db'}"
    settings = Settings(
        home=str(tmp_path / "server-home"),
        store_url=store_url,
        artifacts_url=s3_bucket,
        storage_options={"endpoint_url": s3_server},
    )
    server = server_factory(store_url, s3_bucket, settings=settings, presign=True)
    claimed = hashlib.sha256(b"the real model").hexdigest()
    with server.client() as http:
        started = http.post("/api/v1/blobs/uploads", json={"presign": True, "size": 5}).json()
        assert httpx.put(started["url"], content=b"other").status_code == 200
        answer = http.post(f"/api/v1/blobs/uploads/{started['upload_id']}/commit", json={"digest": claimed})

    assert answer.status_code == 422
    assert not BlobStore(s3_bucket, {"endpoint_url": s3_server}).exists(claimed)


@pytest.mark.slow
def test_a_5_gb_artifact_goes_up_and_down_in_constant_memory(
    server_process: Callable[..., Any], tmp_path: Path
) -> None:
    size = 5 * 10**9
    server = server_process(f"sqlite:///{tmp_path / 'plinth.db'}", str(tmp_path / "artifacts"))
    proc = psutil.Process(server.proc.pid)
    blobs = RemoteBlobStore(ServerClient(server.url, token=server.admin_token))
    blobs.put_bytes(b"warm up")  # the first request opens the stores
    server_before = _rss(proc)
    source = _file(tmp_path / "big.bin", size)
    with _PeakRss(psutil.Process()) as client:
        digest, stored = blobs.put_file(str(source))
        source.unlink()
        blobs.get_file(digest, str(tmp_path / "back.bin"))
        back = _sha(tmp_path / "back.bin")
        (tmp_path / "back.bin").unlink()

    assert stored == size and back == digest
    server_growth = _peak_rss(proc) - server_before
    assert server_growth < 100 * 10**6, f"the server grew by {server_growth / 10**6:.0f} MB"
    assert client.growth < 100 * 10**6, f"the client grew by {client.growth / 10**6:.0f} MB"


def _rss(proc: psutil.Process) -> int:
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


def _peak_rss(proc: psutil.Process) -> int:
    """The highest RSS the process (and its workers) reached (VmHWM)."""
    peak = 0
    for p in [proc, *proc.children(recursive=True)]:
        with open(f"/proc/{p.pid}/status") as fh:
            peak += next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
    return peak


class _PeakRss:
    """Samples a process's RSS while the block runs; `growth` is the peak over the start."""

    def __init__(self, proc: psutil.Process) -> None:
        self.proc = proc
        self.growth = 0
        self._stop = threading.Event()

    def __enter__(self) -> _PeakRss:
        self.start = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.growth = max(self.growth, self.proc.memory_info().rss - self.start)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
