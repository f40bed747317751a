"""`plinth cluster status --executor slurm|local` against the one-node SLURM cluster on this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import plinth
from plinth.cli.main import main

pytestmark = pytest.mark.xdist_group("slurm")  # one cluster: its tests take turns


@pytest.fixture(scope="module")
def _slurm_up() -> None:
    if shutil.which("sbatch") is None:
        pytest.fail("sbatch is not on the PATH; scripts/test-services.sh installs and starts SLURM.")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    if "UP" not in ping.stdout:
        pytest.fail(f"slurmctld does not answer ({ping.stdout.strip()}); run scripts/test-services.sh.")


@pytest.fixture
def submit(_slurm_up: None) -> Iterator[list[str]]:
    """Submits held plinth-named jobs (`submit`'s list gets their ids); cancels them afterwards."""
    jobs: list[str] = []
    yield jobs
    for job in jobs:
        subprocess.run(["scancel", job], check=False)


def _held_job(jobs: list[str], *extra: str) -> str:
    name = f"plinth-test-{uuid.uuid4().hex[:8]}"
    cmd = ["sbatch", "--parsable", "--hold", "-J", name, "-c", "1", "--mem=64M", "-o", "/dev/null"]
    done = subprocess.run([*cmd, *extra, "--wrap", "sleep 60"], capture_output=True, text=True, check=True)
    jobs.append(done.stdout.strip().split(";")[0])
    return jobs[-1]


def _node() -> str:
    return subprocess.run(["sinfo", "-h", "-o", "%N"], capture_output=True, text=True).stdout.split()[0]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["cluster", "status", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _step_run(flow: str, call: str, job: str, flow_run: str = "01FLOWRUN") -> None:
    tags = {"plinth.kind": "step", "plinth.flow_run": flow_run, "plinth.slurm_job": job}
    plinth.start_run(flow, name=call, tags=tags, capture_env=False, system_metrics=False)


def test_partitions_nodes_and_free_resources(capsys: pytest.CaptureFixture[str], _slurm_up: None) -> None:
    code, out, err = run(capsys, "--executor", "slurm")
    assert code == 0, err
    assert "SLURM partitions" in out and "debug" in out and _node() in out
    assert "CPUs free / used" in out and "GPUs free / used" in out
    assert "Free now:" in out and " of 4 CPUs" in out and " of 2 GPUs" in out


def test_a_job_shows_the_steps_it_runs(capsys: pytest.CaptureFixture[str], submit: list[str]) -> None:
    job = _held_job(submit)
    _step_run("train-flow", "fit#0", job)
    _step_run("train-flow", "fit#1", job)
    _step_run("other-flow", "unrelated#0", "999999")
    code, out, err = run(capsys, "--executor", "slurm")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.split()[1:2] == [job])  # its cell, not any "(1)"
    assert "pending" in row and "fit#0" in row and "fit#1" in row and "train-flow" in row
    assert "unrelated#0" not in out


def test_each_array_element_shows_its_step(capsys: pytest.CaptureFixture[str], submit: list[str]) -> None:
    job = _held_job(submit, "--array=0-3")
    _step_run("fan-flow", "square#2", f"{job}_2")
    code, out, err = run(capsys, "--executor", "slurm")
    assert code == 0, err
    rows = {line.split()[1]: line for line in out.splitlines() if f"{job}_" in line}
    assert sorted(rows) == [f"{job}_{i}" for i in range(4)]
    assert "square#2" in rows[f"{job}_2"] and "fan-flow" in rows[f"{job}_2"]
    assert "square#2" not in rows[f"{job}_1"]


def test_an_unknown_partition_is_refused_with_the_known_ones(
    capsys: pytest.CaptureFixture[str], _slurm_up: None
) -> None:
    code, _, err = run(capsys, "--executor", "slurm", "--partition", "nosuch")
    assert code == 3
    assert "nosuch" in err and "debug" in err and "Traceback" not in err


def test_without_slurm_it_says_where_to_run_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run(capsys, "--executor", "slurm")
    assert code == 2
    assert "sbatch" in err and "login node" in err and "Traceback" not in err


def test_local_shows_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--executor", "local")
    assert code == 0, err
    assert f"{os.cpu_count()} CPUs" in out and "memory free" in out
    assert "No plinth steps are running." in out


FLOW = """
import time
from plinth import flow, step

@step
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds

@flow(name="napping", executor="slurm")
def napping(seconds: float = 20.0) -> float:
    return nap(seconds)
"""


def test_a_running_flow_step_appears_under_its_job(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, _slurm_up: None
) -> None:
    source = tmp_path / "napping.py"
    source.write_text(textwrap.dedent(FLOW))
    plinth_cli = str(Path(sys.executable).with_name("plinth"))
    driver = subprocess.Popen(
        [plinth_cli, "flows", "run", f"{source}:napping"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        row = _job_row_when_running(capsys, "nap#0", driver)
        assert "napping" in row and _node() in row
    finally:
        output = driver.communicate(timeout=120)[0].decode()
    assert driver.returncode == 0, output


def _job_row_when_running(
    capsys: pytest.CaptureFixture[str], call: str, driver: subprocess.Popen[bytes]
) -> str:
    """The jobs table's row showing `call` once its job runs (polled while the flow runs)."""
    out = ""
    for _ in range(120):
        code, out, err = run(capsys, "--executor", "slurm")
        assert code == 0, err
        rows = [line for line in out.splitlines() if call in line and "│ running" in line]
        if rows:
            return rows[0]
        if driver.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"{call} never showed as running:\n{out}")
