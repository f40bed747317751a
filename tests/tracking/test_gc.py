"""`plinth gc`: blobs no entity references are removed; referenced and young blobs stay."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import plinth
from plinth.cli.main import main
from plinth.core.settings import Settings
from plinth.tracking.artifacts import download_artifacts
from plinth.tracking.context import Backend
from plinth.tracking.gc import collect_garbage


@pytest.fixture(params=["local", "s3"])
def be(request: pytest.FixtureRequest, settings: Settings) -> Backend:
    if request.param == "s3":
        settings = replace(
            settings,
            artifacts_url=request.getfixturevalue("s3_bucket"),
            storage_options={"endpoint_url": request.getfixturevalue("s3_server")},
        )
    return plinth.configure(settings)


def _stored(be: Backend) -> set[str]:
    return {b.digest for b in be.blobs.list_blobs()}


def test_gc_removes_only_unreferenced_blobs(be: Backend, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    with plinth.start_run(experiment="e") as run:
        src.write_bytes(b"old weights")
        [old] = run.log_artifact(str(src))
        src.write_bytes(b"new weights")
        [new] = run.log_artifact(str(src))  # replaces the path: the old blob is now unreferenced
        dataset = run.log_dataset(pd.DataFrame({"x": [1, 2, 3]}), name="d")
    stray, _ = be.blobs.put_bytes(b"stored, never recorded")
    assert _stored(be) == {old.digest, new.digest, dataset.digest, stray}

    report = collect_garbage(be, dry_run=True, min_age_s=0)
    assert sorted(report.removed) == sorted([old.digest, stray])
    assert (report.bytes_freed, report.kept, report.dry_run) == (11 + 22, 2, True)
    assert len(_stored(be)) == 4

    report = collect_garbage(be, min_age_s=0)
    assert sorted(report.removed) == sorted([old.digest, stray]) and not report.dry_run
    assert _stored(be) == {new.digest, dataset.digest}
    assert {e.entity_id for e in be.store.audit_events() if e.action == "blob.delete"} == {old.digest, stray}
    download_artifacts(be, run.id, "model.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == b"new weights"
    assert plinth.get_dataset("d").digest == dataset.digest
    assert collect_garbage(be, min_age_s=0).removed == []


def test_gc_keeps_young_blobs(be: Backend) -> None:
    stray, _ = be.blobs.put_bytes(b"a writer has not recorded me yet")
    report = collect_garbage(be)  # default min age: an hour
    assert (report.removed, report.kept) == ([], 1)
    assert collect_garbage(be, min_age_s=3600).removed == []
    assert collect_garbage(be, min_age_s=0).removed == [stray]


def test_gc_command(be: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    stray, _ = be.blobs.put_bytes(b"12345")
    assert main(["gc", "--dry-run", "--min-age", "0"]) == 0
    assert "Would remove 1 blob(s)" in capsys.readouterr().out
    assert be.blobs.exists(stray)
    assert main(["gc"]) == 0
    assert "Removed 0 blob(s)" in capsys.readouterr().out and be.blobs.exists(stray)
    assert main(["gc", "--min-age", "0"]) == 0
    assert "Removed 1 blob(s)" in capsys.readouterr().out
    assert not be.blobs.exists(stray)


def test_gc_in_another_process(be: Backend, tmp_path: Path) -> None:
    """This process has listed the blobs (s3fs caches listings) when another one collects them."""
    (tmp_path / "a.txt").write_bytes(b"kept")
    with plinth.start_run(experiment="e") as run:
        run.log_artifact(str(tmp_path / "a.txt"))
    stray, _ = be.blobs.put_bytes(b"collected elsewhere")
    assert collect_garbage(be, dry_run=True, min_age_s=0).removed == [stray]
    s = be.settings
    env = {
        **os.environ,
        "PLINTH_HOME": s.home,
        "PLINTH_STORE": s.resolved_store_url,
        "PLINTH_TOKEN": s.token or "",
        "PLINTH_ARTIFACTS": s.resolved_artifacts_url,
        "PLINTH_S3_ENDPOINT_URL": s.storage_options.get("endpoint_url", ""),
    }
    cmd = [sys.executable, "-m", "plinth.cli.main", "gc", "--min-age", "0"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "Removed 1 blob(s)" in done.stdout, done.stderr
    assert not be.blobs.exists(stray)
    # logging the same bytes again must store them again, not trust a stale listing
    (tmp_path / "b.txt").write_bytes(b"collected elsewhere")
    with plinth.start_run(experiment="e") as run:
        run.log_artifact(str(tmp_path / "b.txt"))
    download_artifacts(be, run.id, "b.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_bytes() == b"collected elsewhere"


def test_gc_removes_partial_files_of_dead_writers(tmp_path: Path) -> None:
    be = plinth.configure(plinth.Settings(home=str(tmp_path / "h")))
    leftover = tmp_path / "h" / "artifacts" / "tmp" / "tmpabc"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half a blob")
    old = time.time() - 7200
    os.utime(leftover, (old, old))
    assert str(leftover) in collect_garbage(be, dry_run=True).removed and leftover.exists()
    collect_garbage(be)
    assert not leftover.exists()
