"""Artifact names and the artifact store, tried as a hostile or careless user would.

A name is refused when it is logged, before anything is stored; a record planted in the store
is refused again when it is read; downloads land inside their destination, links resolved, with
the mode `cp` gives; a misconfigured object store is named with the setting to fix. SQLite and
PostgreSQL where the metadata store is involved, S3 on moto.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import pandas as pd
import pytest
from sqlalchemy import insert, select

import plinth
from plinth.cli.main import main
from plinth.core.settings import Settings
from plinth.errors import ConfigError, IntegrityError, InvalidInput, StoreError
from plinth.store import schema
from plinth.store.base import ArtifactRecord
from plinth.store.blobs import BlobStore
from plinth.tracking.artifacts import download_artifacts
from plinth.tracking.context import Backend

PLANTED = "report/!/../../../../escaped.txt"


def plant(be: Backend, run_id: str, path: str, digest: str) -> None:
    """Write an artifact record straight into the database, past every check plinth makes."""
    engine = be.store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        key = conn.execute(select(schema.runs.c.key).where(schema.runs.c.id == run_id)).scalar_one()
        values = {"run_key": key, "path": path, "digest": digest, "size": 6, "created_ms": 0}
        conn.execute(insert(schema.artifacts).values(**values))


@pytest.fixture
def finished_run(tracking: Backend, tmp_path: Path) -> tuple[str, str]:
    """A finished run with `report/summary.txt`; returns (run id, digest of its bytes)."""
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "summary.txt").write_text("fine\n")
    with plinth.start_run(experiment="e") as run:
        [art] = run.log_artifact(str(tmp_path / "report"))
    return run.id, art.digest


# records that escape their destination (5) ------------------------------------------------------
def test_a_record_with_dot_dot_is_refused_when_written(tracking: Backend) -> None:
    with plinth.start_run(experiment="e") as run:
        with pytest.raises(InvalidInput, match="not a plain relative path"):
            tracking.store.add_artifacts(run.id, [ArtifactRecord(PLANTED, "a" * 64, 6)])
        with pytest.raises(InvalidInput, match="is absolute"):
            tracking.store.add_artifacts(run.id, [ArtifactRecord("/etc/cron.d/x", "a" * 64, 6)])
    assert plinth.get_run(run.id).artifacts == []


def test_a_planted_record_is_refused_when_read(
    tracking: Backend,
    finished_run: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_id, digest = finished_run
    plant(tracking, run_id, PLANTED, digest)
    work = tmp_path / "work" / "a" / "b" / "c"
    work.mkdir(parents=True)
    with pytest.raises(IntegrityError, match="not a plain relative path"):
        download_artifacts(tracking, run_id, "report", str(work / "out"))
    monkeypatch.chdir(work)
    assert main(["artifacts", "get", run_id, "report"]) == 4
    assert "error: " in capsys.readouterr().err
    assert [p.name for p in tmp_path.rglob("escaped.txt")] == []
    assert os.listdir(work) == []


def test_downloads_do_not_follow_links_out_of_the_destination(
    tracking: Backend, finished_run: tuple[str, str], tmp_path: Path
) -> None:
    run_id, _ = finished_run
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "report").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInput, match="outside"):
        download_artifacts(tracking, run_id, "report", str(dest))
    assert os.listdir(outside) == []
    # a destination that is itself a link is where the user asked the files to go
    (tmp_path / "via-link").symlink_to(dest / "inside", target_is_directory=True)
    (dest / "inside").mkdir()
    download_artifacts(tracking, run_id, "report", str(tmp_path / "via-link"))
    assert (dest / "inside" / "report" / "summary.txt").read_text() == "fine\n"


# names that could not be fetched back (12) -----------------------------------------------------
@pytest.mark.parametrize(
    ("artifact_path", "problem"),
    [
        ("/abs/model.bin", "is absolute"),
        ("\\abs\\model.bin", "is absolute"),
        ("C:/model.bin", "is absolute"),
        ("plots/../model.bin", "not a plain relative path"),
        ("plots/a\nb.png", "control character"),
        ("plots/\x1b[31mred", "control character"),
        ("plots/a\u2028b", "line break"),
        ("p/" + "x" * 300, "longer than 255 bytes"),
        ("p/" + "é" * 128, "longer than 255 bytes"),
        ("/".join(["d"] * 65), "65 folders deep"),
        ("/".join(["x" * 200] * 6), "the limit is 1024"),
        ("/".join(["\N{GRINNING FACE}" * 63] * 16), "is 4047 bytes long in UTF-8; the limit is 1024"),
        ("/".join(["é" * 127] * 4 + ["abcde"]), "is 1025 bytes long"),
    ],
)
def test_bad_artifact_paths_are_refused(
    tracking: Backend, tmp_path: Path, artifact_path: str, problem: str
) -> None:
    (tmp_path / "model.bin").write_bytes(b"weights")
    with plinth.start_run(experiment="e") as run:
        with pytest.raises(InvalidInput, match=problem):
            run.log_artifact(str(tmp_path / "model.bin"), artifact_path=artifact_path)
    assert plinth.get_run(run.id).artifacts == []
    assert list(tracking.blobs.list_blobs()) == []


@pytest.mark.parametrize(
    "longest", ["/".join(["d"] * 63 + ["é" * 127]), "/".join(["d"] + ["é" * 127] * 4 + ["ab"])]
)
def test_the_longest_names_allowed_can_be_fetched(tracking: Backend, tmp_path: Path, longest: str) -> None:
    (tmp_path / "model.bin").write_bytes(b"weights")
    assert len(longest.encode()) <= 1024
    with plinth.start_run(experiment="e") as run:
        run.log_artifact(str(tmp_path / "model.bin"), artifact_path=longest)
    dest = tmp_path.joinpath(*["destination-folder"] * 8)  # a long way down, as a real one may be
    [written] = download_artifacts(tracking, run.id, "d", str(dest))
    assert Path(written).read_bytes() == b"weights"


@pytest.mark.parametrize("path", ["report", "report/summary.txt", "no-such-artifact", PLANTED])
def test_a_refused_get_leaves_no_destination_behind(
    tracking: Backend,
    finished_run: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    run_id, digest = finished_run
    plant(tracking, run_id, PLANTED, digest)
    tracking.blobs.delete(digest)  # every fetch of a recorded file now fails
    monkeypatch.chdir(tmp_path)
    assert main(["artifacts", "get", run_id, path, "o/"]) != 0
    assert not (tmp_path / "o").exists()


def test_get_into_a_new_folder_creates_it(
    tracking: Backend, finished_run: tuple[str, str], tmp_path: Path
) -> None:
    run_id, _ = finished_run
    assert main(["artifacts", "get", run_id, "report/summary.txt", str(tmp_path / "o") + "/"]) == 0
    assert (tmp_path / "o" / "summary.txt").read_text() == "fine\n"


@pytest.mark.parametrize(
    "bad_name", ["line\nbreak.txt", "bell\x07.txt", "esc\x1b[2J.txt", "undecodable-\udcff"]
)
def test_a_folder_with_one_bad_name_logs_nothing(tracking: Backend, tmp_path: Path, bad_name: str) -> None:
    folder = tmp_path / "ckpt"
    (folder / "sub").mkdir(parents=True)
    (folder / "good.txt").write_bytes(b"good")
    with open(os.path.join(os.fsencode(folder / "sub"), os.fsencode(bad_name)), "wb") as fh:
        fh.write(b"bad")
    with plinth.start_run(experiment="e") as run:
        with pytest.raises(InvalidInput, match="Nothing was logged"):
            run.log_artifact(str(folder))
    assert plinth.get_run(run.id).artifacts == []
    assert list(tracking.blobs.list_blobs()) == []


def test_a_folder_too_deep_logs_nothing(tracking: Backend, tmp_path: Path) -> None:
    deep = tmp_path / "ckpt"
    path = deep.joinpath(*["d"] * 70)
    path.mkdir(parents=True)
    (path / "leaf.txt").write_bytes(b"leaf")
    (deep / "top.txt").write_bytes(b"top")
    with plinth.start_run(experiment="e") as run:
        with pytest.raises(InvalidInput, match="folders deep"):
            run.log_artifact(str(deep))
    assert plinth.get_run(run.id).artifacts == []


def test_a_folder_with_unreadable_entries_logs_nothing(tracking: Backend, tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "ok.txt").write_bytes(b"ok")
    os.mkfifo(folder / "a-pipe")  # reading it would never end
    (folder / "dangling").symlink_to(tmp_path / "gone")
    with plinth.start_run(experiment="e") as run:
        with pytest.raises(InvalidInput, match=r"not a regular file|No such file"):
            run.log_artifact(str(folder))
        os.unlink(folder / "a-pipe")
        with pytest.raises(InvalidInput, match="No such file"):
            run.log_artifact(str(folder))
        os.unlink(folder / "dangling")
        (folder / "loop").symlink_to(folder, target_is_directory=True)
        with pytest.raises(InvalidInput, match="holds it"):
            run.log_artifact(str(folder))
    assert plinth.get_run(run.id).artifacts == []


def test_linked_folders_are_logged_not_skipped(tracking: Backend, tmp_path: Path) -> None:
    (tmp_path / "step-100").mkdir()
    (tmp_path / "step-100" / "w.bin").write_bytes(b"w")
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "latest").symlink_to(tmp_path / "step-100", target_is_directory=True)
    with plinth.start_run(experiment="e") as run:
        assert [a.path for a in run.log_artifact(str(folder))] == ["ckpt/latest/w.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_downloads_honour_the_umask(tracking: Backend, tmp_path: Path, umask: int) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "a.txt").write_bytes(b"a")
    with plinth.start_run(experiment="e") as run:
        run.log_artifact(str(tmp_path / "ckpt"))
    previous = os.umask(umask)
    try:
        [folder_file] = download_artifacts(tracking, run.id, "ckpt", str(tmp_path / "out"))
        [single] = download_artifacts(tracking, run.id, "ckpt/a.txt", str(tmp_path / "one.txt"))
    finally:
        os.umask(previous)
    for written in (folder_file, single):
        assert os.stat(written).st_mode & 0o777 == 0o666 & ~umask
    assert os.stat(tmp_path / "out" / "ckpt").st_mode & 0o777 == 0o777 & ~umask


# case and wildcards in the prefix a re-log replaces (3) ----------------------------------------
@pytest.mark.parametrize(
    ("kept", "logged"), [("plots", "Plots"), ("pat", "p_t"), ("p%x", "p%"), ("PLOTS", "plots")]
)
def test_relogging_a_path_keeps_other_folders(
    tracking: Backend, tmp_path: Path, kept: str, logged: str
) -> None:
    (tmp_path / "f.txt").write_bytes(b"f")
    with plinth.start_run(experiment="e") as run:
        run.log_artifact(str(tmp_path / "f.txt"), artifact_path=f"{kept}/a.txt")
        run.log_artifact(str(tmp_path / "f.txt"), artifact_path=f"{kept}/b.txt")
        run.log_artifact(str(tmp_path / "f.txt"), artifact_path=logged)
    assert sorted(a.path for a in plinth.get_run(run.id).artifacts) == sorted(
        [f"{kept}/a.txt", f"{kept}/b.txt", logged]
    )


def test_a_folder_of_many_files_is_recorded(tracking: Backend) -> None:
    """More files than one statement can bind parameters for (65,535 on PostgreSQL)."""
    records = [ArtifactRecord(f"f{i}", "a" * 64, 1) for i in range(70_000)]
    with plinth.start_run(experiment="e") as run:
        tracking.store.add_artifacts(run.id, records)
        tracking.store.add_artifacts(run.id, records[:3])
    assert len(plinth.get_run(run.id).artifacts) == 70_000


# blob digests from the store (5, sibling) ------------------------------------------------------
def test_a_digest_edited_to_a_path_reads_nothing(
    tracking: Backend, finished_run: tuple[str, str], tmp_path: Path
) -> None:
    run_id, _ = finished_run
    plant(tracking, run_id, "report/zero.bin", "../../../../../../dev/zero")
    with pytest.raises(IntegrityError, match="not a sha256 digest"):
        download_artifacts(tracking, run_id, "report/zero.bin", str(tmp_path / "zero.bin"))
    assert not (tmp_path / "zero.bin").exists()


# a misconfigured object store (15) -------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_refusing() -> Iterator[str]:
    """A moto S3 server that checks credentials: it knows none, so it refuses every key."""
    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("moto S3 server did not start")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def _configure(monkeypatch: pytest.MonkeyPatch, settings: Settings, url: str, endpoint: str) -> Backend:
    """plinth configured from the environment, as a team deployment sets it."""
    for name, value in {
        "PLINTH_STORE": settings.resolved_store_url,
        "PLINTH_TOKEN": settings.token or "",
        "PLINTH_ARTIFACTS": url,
        "PLINTH_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    return plinth.configure(replace(Settings.from_env(), heartbeat_s=0.2, flush_s=0.1))


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """The artifact store is under test here, so one metadata store is enough."""
    return Settings(home=str(tmp_path / "home"), store_url=f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}")


MISCONFIGURED = {
    "missing bucket": ("bucket 'a-bucket-that-does-not-exist' does not exist", "Create the bucket"),
    "refused credentials": ("refused access", "AWS_ACCESS_KEY_ID"),
}


@pytest.fixture(params=list(MISCONFIGURED))
def misconfigured(
    request: pytest.FixtureRequest, sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> tuple[Backend, tuple[str, str]]:
    if request.param == "missing bucket":
        endpoint = request.getfixturevalue("s3_server")
        url = "s3://a-bucket-that-does-not-exist/x"
    else:
        endpoint = request.getfixturevalue("s3_refusing")
        url = "s3://some-bucket/x"
    return _configure(monkeypatch, sqlite_settings, url, endpoint), MISCONFIGURED[request.param]


def test_a_misconfigured_store_is_named_on_first_log(
    misconfigured: tuple[Backend, tuple[str, str]], tmp_path: Path
) -> None:
    _be, (problem, advice) = misconfigured
    (tmp_path / "model.bin").write_bytes(b"weights")
    with pytest.raises(StoreError, match="PLINTH_ARTIFACTS=s3://") as caught:
        with plinth.start_run(experiment="e") as run:
            run.log_artifact(str(tmp_path / "model.bin"))
    assert problem in str(caught.value) and advice in str(caught.value)
    assert "PLINTH_S3_ENDPOINT_URL" in str(caught.value)
    assert plinth.get_run(run.id).status == "FAILED"


def test_datasets_models_and_gc_get_the_same_message(
    misconfigured: tuple[Backend, tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    be, (problem, _advice) = misconfigured
    with pytest.raises(StoreError, match=problem), plinth.start_run(experiment="e") as run:
        run.log_dataset(pd.DataFrame({"a": [1, 2]}), name="d")
    with pytest.raises(StoreError, match=problem):
        plinth.register_model("m", lambda data: data)
    with pytest.raises(StoreError, match=problem):
        be.blobs.read_bytes("a" * 64)  # a flow result, a model manifest
    assert main(["gc", "--dry-run"]) == 5
    assert problem in capsys.readouterr().err


@pytest.mark.parametrize(
    "endpoint", ["localhost:18500", "ftp://localhost:18500", "http://:18500", "http://a:99999"]
)
def test_an_endpoint_that_is_not_an_http_url_is_named(
    sqlite_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    endpoint: str,
) -> None:
    with pytest.raises(ConfigError, match=f"PLINTH_S3_ENDPOINT_URL={endpoint!r} is not an http"):
        _configure(monkeypatch, sqlite_settings, "s3://bucket/x", endpoint)
    monkeypatch.chdir(tmp_path)
    assert main(["artifacts", "get", "0" * 32, "model.bin"]) != 0
    err = capsys.readouterr().err
    assert "PLINTH_S3_ENDPOINT_URL" in err and "http://localhost:9000" in err and "Traceback" not in err


def test_an_unreachable_endpoint_is_named(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    endpoint = f"http://127.0.0.1:{_free_port()}"  # nothing listens there: connection refused
    _configure(monkeypatch, sqlite_settings, "s3://bucket/x", endpoint)
    (tmp_path / "model.bin").write_bytes(b"weights")
    with pytest.raises(StoreError, match=f"Cannot reach the artifact store .* at {endpoint}") as caught:
        with plinth.start_run(experiment="e") as run:
            run.log_artifact(str(tmp_path / "model.bin"))
    assert "PLINTH_S3_ENDPOINT_URL" in str(caught.value)


def test_refused_and_missing_credentials_are_read_from_botocore(
    s3_refusing: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The codes botocore reports (here from moto), not only the 403 of a bodiless HEAD."""
    import botocore.exceptions

    from plinth.store.blob_errors import blob_store_failure

    keys = {"aws_access_key_id": "nobody", "aws_secret_access_key": "x"}
    client = boto3.client("s3", endpoint_url=s3_refusing, region_name="us-east-1", **keys)
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        client.list_objects_v2(Bucket="some-bucket")
    assert refused.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert "refused access" in str(blob_store_failure(refused.value, "s3://some-bucket/x", s3_refusing))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask the link-local metadata service
    with pytest.raises(botocore.exceptions.NoCredentialsError) as none:
        # a new session: the default one may hold credentials another test's client resolved
        boto3.session.Session().client("s3", endpoint_url=s3_refusing, region_name="us-east-1").list_buckets()
    assert "refused access" in str(blob_store_failure(none.value, "s3://some-bucket/x", None))


def test_a_blob_missing_from_a_good_bucket_is_still_not_found(s3_server: str, s3_bucket: str) -> None:
    from plinth.errors import NotFound

    store = BlobStore(s3_bucket, {"endpoint_url": s3_server})
    with pytest.raises(NotFound, match="missing"):
        store.read_bytes("b" * 64)


# dataset names that a NAME/VERSION reference could not name (sibling) --------------------------
@pytest.mark.parametrize("name", ["digits/2", "digits/", "/digits", "line\u2028break", "lone\ud800"])
def test_dataset_names_a_reference_cannot_name_are_refused(tracking: Backend, name: str) -> None:
    with plinth.start_run(experiment="e") as run:
        with pytest.raises(InvalidInput, match="Dataset name"):
            run.log_dataset(pd.DataFrame({"a": [1]}), name=name)
        run.log_dataset(pd.DataFrame({"a": [1]}), name="digits/train")
    assert [d.name for d in plinth.list_datasets()] == ["digits/train"]
