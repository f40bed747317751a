"""Logging files and folders under a run and getting them back, on a local folder and on S3 (moto)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import boto3
import pytest

import plinth
from plinth.core.settings import Settings
from plinth.errors import IntegrityError, InvalidInput, NotFound
from plinth.tracking.artifacts import download_artifacts
from plinth.tracking.context import Backend


@pytest.fixture(params=["local", "s3"])
def be(request: pytest.FixtureRequest, settings: Settings) -> Backend:
    """plinth configured on the parametrized metadata store, with artifacts in a folder or on S3."""
    if request.param == "s3":
        settings = replace(
            settings,
            artifacts_url=request.getfixturevalue("s3_bucket"),
            storage_options={"endpoint_url": request.getfixturevalue("s3_server")},
        )
    return plinth.configure(settings)


def corrupt(be: Backend, digest: str, data: bytes = b"bit rot") -> None:
    """Overwrite a stored blob behind plinth's back: the file under the artifacts root, or via boto3."""
    url = be.settings.resolved_artifacts_url
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        s3 = boto3.client("s3", endpoint_url=be.settings.storage_options["endpoint_url"])
        s3.put_object(Bucket=bucket, Key=f"{prefix}/blobs/{digest[:2]}/{digest[2:]}", Body=data)
    else:
        with open(os.path.join(url, "blobs", digest[:2], digest[2:]), "wb") as fh:
            fh.write(data)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "src" / "ckpt"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha")
    (root / "sub" / "b.txt").write_bytes(b"beta")
    return root


def test_log_and_download_a_file(be: Backend, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    with plinth.start_run(experiment="e") as run:
        [art] = run.log_artifact(str(src))
    assert (art.path, art.size, art.run_id) == ("model.bin", 7, run.id)
    assert [a.path for a in plinth.get_run(run.id).artifacts] == ["model.bin"]
    written = download_artifacts(be, run.id, "model.bin", str(tmp_path / "out" / "copy.bin"))
    assert written == [str(tmp_path / "out" / "copy.bin")]
    assert (tmp_path / "out" / "copy.bin").read_bytes() == b"weights"
    # into an existing folder, under the artifact's own name
    assert download_artifacts(be, run.id, "model.bin", str(tmp_path / "out")) == [
        str(tmp_path / "out" / "model.bin")
    ]


def test_log_and_download_a_folder(be: Backend, folder: Path, tmp_path: Path) -> None:
    with plinth.start_run(experiment="e") as run:
        logged = run.log_artifact(str(folder))
    assert [a.path for a in logged] == ["ckpt/a.txt", "ckpt/sub/b.txt"]
    out = tmp_path / "out"
    written = download_artifacts(be, run.id, "ckpt", str(out))
    assert sorted(written) == [str(out / "ckpt" / "a.txt"), str(out / "ckpt" / "sub" / "b.txt")]
    assert (out / "ckpt" / "sub" / "b.txt").read_bytes() == b"beta"
    download_artifacts(be, run.id, "ckpt/sub", str(tmp_path / "out2"))
    assert (tmp_path / "out2" / "sub" / "b.txt").read_bytes() == b"beta"
    download_artifacts(be, run.id, "ckpt/a.txt", str(tmp_path / "a-copy.txt"))
    assert (tmp_path / "a-copy.txt").read_bytes() == b"alpha"


def test_artifact_path_overrides_the_name(be: Backend, folder: Path, tmp_path: Path) -> None:
    with plinth.start_run(experiment="e") as run:
        run.log_artifact(str(folder / "a.txt"), artifact_path="plots/first.txt")
        run.log_artifact(str(folder), artifact_path="weights/")
    paths = [a.path for a in plinth.get_run(run.id).artifacts]
    assert paths == ["plots/first.txt", "weights/a.txt", "weights/sub/b.txt"]


def test_relogging_a_path_replaces_it(be: Backend, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    with plinth.start_run(experiment="e") as run:
        src.write_bytes(b"v1")
        run.log_artifact(str(src))
        src.write_bytes(b"v2")
        [new] = run.log_artifact(str(src))
    [art] = plinth.get_run(run.id).artifacts
    assert art.digest == new.digest and art.size == 2
    download_artifacts(be, run.id, "model.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == b"v2"


def test_identical_content_is_stored_once(be: Backend, folder: Path) -> None:
    for _ in range(2):
        with plinth.start_run(experiment="e") as run:
            run.log_artifact(str(folder))
            run.log_artifact(str(folder / "a.txt"), artifact_path="copy-of-a.txt")
    assert len(list(be.blobs.list_blobs())) == 2


def test_corrupted_blob_is_detected_on_download(be: Backend, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"the real weights")
    with plinth.start_run(experiment="e") as run:
        [art] = run.log_artifact(str(src))
    corrupt(be, art.digest)
    dest = tmp_path / "out" / "model.bin"
    with pytest.raises(IntegrityError, match=rf"artifact 'model\.bin' of run {run.id} is corrupted"):
        download_artifacts(be, run.id, "model.bin", str(dest))
    assert not (tmp_path / "out").exists()


def test_folder_download_is_all_or_nothing(be: Backend, folder: Path, tmp_path: Path) -> None:
    with plinth.start_run(experiment="e") as run:
        _, b = run.log_artifact(str(folder))
    corrupt(be, b.digest)
    with pytest.raises(IntegrityError, match=r"ckpt/sub/b\.txt"):
        download_artifacts(be, run.id, "ckpt", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    with pytest.raises(IntegrityError):
        download_artifacts(be, run.id, "ckpt", str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == []


def test_missing_blob_is_not_found(be: Backend, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    with plinth.start_run(experiment="e") as run:
        [art] = run.log_artifact(str(src))
    be.blobs.delete(art.digest)
    with pytest.raises(NotFound, match=rf"{art.digest[:12]}.*artifact 'model\.bin' of run {run.id}.*missing"):
        download_artifacts(be, run.id, "model.bin", str(tmp_path / "out" / "m.bin"))
    assert not (tmp_path / "out").exists()


def test_bad_requests(be: Backend, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "f").write_bytes(b"x")
    with plinth.start_run(experiment="e") as run:
        with pytest.raises(InvalidInput, match="no such file"):
            run.log_artifact(str(tmp_path / "nope"))
        with pytest.raises(InvalidInput, match="holds no files"):
            run.log_artifact(str(tmp_path / "empty"))
        with pytest.raises(InvalidInput, match="not a plain relative path"):
            run.log_artifact(str(tmp_path / "f"), artifact_path="../escape")
    with pytest.raises(NotFound, match="has no artifact at 'f'"):
        download_artifacts(be, run.id, "f", str(tmp_path / "out"))
