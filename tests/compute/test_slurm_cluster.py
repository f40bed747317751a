"""The SLURM cluster as plinth reads it, SlurmOptions, sbatch flags and the parsing of SLURM's output."""

from __future__ import annotations

import getpass
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.compute.base import Resources
from plinth.compute.slurm import SlurmExecutor, SlurmOptions, cluster, jobs, shared_executor
from plinth.compute.slurm.asks import sbatch_flags
from plinth.compute.slurm.journal import Entry, Journal
from plinth.core.errors import ConfigError, InvalidInput, StorageNotShared
from plinth.core.settings import Settings
from waiting import wait_until

pytestmark = [pytest.mark.xdist_group("slurm")]
GiB = 2**30


@pytest.fixture
def up() -> None:
    if not cluster.available():
        pytest.fail(
            "The SLURM cluster is not up (`scontrol ping`); start it with `bash scripts/test-services.sh`."
        )


@pytest.fixture
def held_job(up: None, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A job of ours named plinth-hold-..., held in the queue (never runs); cancelled after."""
    name = f"plinth-hold-{uuid.uuid4().hex[:8]}"
    out = subprocess.run(
        ["sbatch", "--parsable", "--hold", f"--job-name={name}", "-o", "/dev/null", "--wrap", "true"],
        capture_output=True,
        text=True,
        check=True,
    )
    yield out.stdout.strip(), name
    subprocess.run(["scancel", "-u", getpass.getuser(), "-n", name], check=False)


def test_options_from_the_environment() -> None:
    env = {
        "PLINTH_HOME": "/data/plinth",
        "PLINTH_SLURM_PARTITION": "gpu",
        "PLINTH_SLURM_ACCOUNT": "lab",
        "PLINTH_SLURM_QOS": "high",
        "PLINTH_SLURM_CONSTRAINT": "a100",
        "PLINTH_SLURM_SBATCH_ARGS": "--exclusive --comment 'two words'",
    }
    options = SlurmOptions.from_env(env)
    assert options == SlurmOptions(
        "gpu", "lab", "high", "a100", ("--exclusive", "--comment", "two words"), "/data/plinth/slurm"
    )
    assert SlurmOptions.from_env({"PLINTH_SLURM_WORKDIR": "rel"}).work_dir == str(Path("rel").absolute())


def test_a_steps_options_go_over_the_executors() -> None:
    base = SlurmOptions(partition="cpu", account="lab", sbatch_args=("--exclusive",))
    assert base.merged({}) is base
    merged = base.merged({"partition": "gpu", "sbatch_args": "--nice=10"})
    assert merged == SlurmOptions(partition="gpu", account="lab", sbatch_args=("--nice=10",))
    with pytest.raises(
        InvalidInput, match=r"Unknown slurm option 'nodes'; a step's slurm=.* may set partition"
    ):
        base.merged({"nodes": 2})


@pytest.mark.parametrize(
    ("res", "timeout_s", "expected"),
    [
        (Resources(), None, ["--cpus-per-task=1"]),
        (Resources(cpu=0.5), None, ["--cpus-per-task=1"]),
        (
            Resources(cpu=2.5, gpu=1, memory=GiB + 1),
            90,
            ["--cpus-per-task=3", "--gres=gpu:1", "--mem=1025", "--time=3"],
        ),
        (Resources(cpu=1, memory=GiB), 3600, ["--cpus-per-task=1", "--mem=1024", "--time=68"]),
    ],
)
def test_sbatch_flags_from_a_tasks_ask(res: Resources, timeout_s: float | None, expected: list[str]) -> None:
    assert sbatch_flags(res, timeout_s, SlurmOptions()) == expected


def test_sbatch_flags_from_options_and_a_default_memory_share() -> None:
    options = SlurmOptions(
        partition="gpu", account="lab", qos="high", constraint="a100", sbatch_args=("--exclusive",)
    )
    assert sbatch_flags(Resources(cpu=2), None, options, memory_per_cpu_mb=4000) == [
        "--cpus-per-task=2",
        "--mem=8000",
        "--partition=gpu",
        "--account=lab",
        "--qos=high",
        "--constraint=a100",
        "--exclusive",
    ]


def test_parsing_scontrol_records_and_array_ids() -> None:
    [record] = jobs.records(
        "NodeName=vm Gres=gpu:a100:4(S:0-1) OS=Linux 6.1 #1 SMP AllocNode:Sid=host:12 State=MIXED\n"
    )
    assert record == {
        "NodeName": "vm",
        "Gres": "gpu:a100:4(S:0-1)",
        "OS": "Linux 6.1 #1 SMP",
        "AllocNode:Sid": "host:12",
        "State": "MIXED",
    }
    assert (
        jobs.expand("4") == [4]
        and jobs.expand("1,3,5-7") == [1, 3, 5, 6, 7]
        and jobs.expand("0-9:3%2") == [0, 3, 6, 9]
    )
    assert jobs.element_ids({"JobId": "9", "ArrayJobId": "7", "ArrayTaskId": "2-3"}) == ["7_2", "7_3"]
    assert jobs.element_ids({"JobId": "9"}) == ["9"]
    assert cluster.count_gpus("gpu:a100:4(S:0-1),gpu:v100:2") == 6 and cluster.count_gpus("(null)") == 0


def test_the_journal_is_read_by_a_second_reader(tmp_path: Path) -> None:
    Journal(str(tmp_path)).append(
        [Entry("a:1", "12_0", "/logs/12_0.out"), Entry("b:1", "13", "/logs/13.out")]
    )
    reader = Journal(str(tmp_path))
    assert reader.find("a:1") == Entry("a:1", "12_0", "/logs/12_0.out")
    Journal(str(tmp_path)).append([Entry("a:1", "14", "/logs/14.out")])
    assert reader.find("c:1") is None and reader.find("a:1") == Entry("a:1", "14", "/logs/14.out")


def test_nodes_and_partitions_of_the_test_cluster(up: None) -> None:
    [node] = cluster.nodes("debug")
    assert node.name == socket.gethostname().split(".")[0]
    assert (node.cpus, node.gpus, node.partitions) == (4, 2, ("debug",))
    assert node.memory > GiB and 0 <= node.cpus_alloc <= node.cpus and node.usable
    assert cluster.nodes("no-such-partition") == []
    assert ("debug", True, [node.name]) in cluster.partitions()
    assert cluster.default_partition() == "debug"


def test_jobs_lists_this_users_jobs_by_name(held_job: tuple[str, str]) -> None:
    job_id, name = held_job
    [found] = cluster.jobs(name)
    assert (found.job_id, found.name, found.state, found.cpus) == (job_id, name, "PENDING", 1)
    assert cluster.jobs(f"{name}-other") == []


def test_one_host_runs_with_the_embedded_stores(up: None, tmp_path: Path) -> None:
    settings = Settings(home=str(tmp_path / "home"))
    cluster.check_shared_storage(settings, "debug", str(tmp_path / "slurm"))
    executor = shared_executor(settings)
    assert executor is shared_executor(settings)
    assert executor.work_dir == str(tmp_path / "home" / "slurm")
    executor.shutdown()
    assert shared_executor(settings) is not executor


def test_nodes_on_other_hosts_need_shared_stores(
    up: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "login-node")  # the node is now another host
    local = Settings(home=str(tmp_path / "local"))
    with pytest.raises(StorageNotShared) as refused:
        cluster.check_shared_storage(local, "debug", str(tmp_path / "slurm"))
    message = str(refused.value)
    assert "the metadata store is the SQLite file" in message and "set PLINTH_STORE=postgresql://" in message
    assert "PLINTH_ARTIFACTS=s3://" in message and "PLINTH_SLURM_WORKDIR" in message
    shared = Settings(
        home=str(tmp_path / "shared"),
        store_url="postgresql+psycopg://db.example:5432/plinth",
        artifacts_url="s3://bucket/plinth",
    )
    assert cluster.storage_problems(shared) == []


def test_missing_slurm_commands_say_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not cluster.available()
    with pytest.raises(ConfigError, match="`sbatch` is not on PATH: the SLURM executor runs where"):
        SlurmExecutor(SlurmOptions(work_dir=str(tmp_path / "slurm")))


def test_a_held_job_is_seen_as_live(held_job: tuple[str, str]) -> None:
    job_id, _ = held_job
    assert jobs.queue([job_id])[job_id].live
    subprocess.run(["scancel", job_id], check=True)
    wait_until(lambda: job_id not in jobs.queue([job_id]), "the job gone from squeue")
    assert jobs.show_job(job_id)[job_id].state == "CANCELLED"
    assert jobs.queue(["999999999"]) == {} and jobs.show_job("999999999") == {}
