"""The SLURM cluster as plinth sees it: partitions, nodes, plinth's jobs, and shared storage.

Read through `scontrol` and `squeue` (no accounting database needed). Every job plinth submits
opens the metadata and artifact stores named by the driver's settings. On a partition whose
nodes are all this host that works with the embedded defaults (a SQLite file and a folder);
once a node is another host, `check_shared_storage` refuses a SQLite store, stores on a
loopback address and an artifact folder on a local disk, naming the settings to use.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil

from plinth.compute.slurm import jobs as slurm
from plinth.core.errors import ConfigError, StorageNotShared
from plinth.core.settings import Settings

NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "lustre",
        "gpfs",
        "beegfs",
        "cifs",
        "smb3",
        "ceph",
        "glusterfs",
        "fuse.glusterfs",
        "fuse.sshfs",
        "fuse.cephfs",
        "panfs",
        "wekafs",
        "9p",
        "virtiofs",
        "fuse.juicefs",
        "orangefs",
    }
)
"""Filesystem types whose folders the nodes of a cluster usually share."""
_GPUS = re.compile(r"gpu(?::[^:,(\s]+)?:(\d+)")
_checked: set[tuple[object, ...]] = set()
_lock = threading.Lock()


@dataclass(frozen=True)
class NodeInfo:
    """One SLURM node: its state and what it has and has handed out (memory in bytes)."""

    name: str
    state: str
    partitions: tuple[str, ...]
    cpus: int
    cpus_alloc: int
    memory: int
    memory_alloc: int
    gpus: int
    gpus_alloc: int
    hostname: str = ""

    @property
    def usable(self) -> bool:
        """False for a node that is down, drained or failing (it takes no new jobs)."""
        return not any(word in self.state for word in ("down", "drain", "fail", "inval", "unknown"))


@dataclass(frozen=True)
class JobInfo:
    """One job (or array element) in the queue, as squeue shows it."""

    job_id: str
    name: str
    state: str
    reason: str
    nodes: str
    elapsed: str
    cpus: int
    memory: str
    gres: str
    array_task: str


def available() -> bool:
    """True when sbatch is on PATH and the controller answers `scontrol ping` as UP."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        return False
    try:
        return " is UP" in slurm.run(["scontrol", "ping"], timeout_s=10.0)
    except ConfigError:
        return False


def require() -> None:
    """Check that SLURM can take jobs from here.

    Raises:
        ConfigError: sbatch is not on PATH, or the controller does not answer `scontrol ping`.
    """
    if shutil.which("sbatch") is None:
        slurm.run(["sbatch", "--version"])  # raises the ConfigError that says what to install
    answer = slurm.run(["scontrol", "ping"], timeout_s=10.0)
    if " is UP" not in answer:
        raise ConfigError(
            f"The SLURM controller does not answer (`scontrol ping`: {' '.join(answer.split())}); start "
            "slurmctld (and munged) or ask the cluster's administrators, then run again."
        )


def nodes(partition: str | None = None) -> list[NodeInfo]:
    """The nodes of `partition` (every node when None), by name.

    Raises:
        ConfigError: SLURM's commands are missing or its controller cannot be reached.
    """
    found = [_node(r) for r in slurm.records(slurm.run(["scontrol", "-d", "show", "node", "-o"]))]
    if partition is not None:
        found = [n for n in found if partition in n.partitions]
    return sorted(found, key=lambda n: n.name)


def _node(record: dict[str, str]) -> NodeInfo:
    partitions = record.get("Partitions", "")
    return NodeInfo(
        name=record.get("NodeName", ""),
        state=record.get("State", "").lower(),
        partitions=tuple(p for p in partitions.split(",") if p and p != "(null)"),
        cpus=_int(record.get("CPUTot")),
        cpus_alloc=_int(record.get("CPUAlloc")),
        memory=_int(record.get("RealMemory")) * 2**20,
        memory_alloc=_int(record.get("AllocMem")) * 2**20,
        gpus=count_gpus(record.get("Gres", "")),
        gpus_alloc=count_gpus(record.get("GresUsed", "")),
        hostname=record.get("NodeHostName", ""),
    )


def count_gpus(gres: str) -> int:
    """GPUs in a gres string: 'gpu:2', 'gpu:a100:4(S:0-1),gpu:v100:2' -> 2, 6; '(null)' -> 0."""
    return sum(int(n) for n in _GPUS.findall(gres))


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def partitions() -> list[tuple[str, bool, list[str]]]:
    """(name, is the default, node names) of each partition.

    Raises:
        ConfigError: SLURM's commands are missing or its controller cannot be reached.
    """
    every = nodes()
    found = []
    for record in slurm.records(slurm.run(["scontrol", "show", "partition", "-o"])):
        name = record.get("PartitionName", "")
        found.append((name, record.get("Default") == "YES", [n.name for n in every if name in n.partitions]))
    return found


def default_partition() -> str | None:
    """The partition jobs go to when none is named (None when the cluster has no default)."""
    return next((name for name, default, _ in partitions() if default), None)


def gives_default_memory(partition: str | None = None) -> bool:
    """True when SLURM gives a job that asks for no memory a share (DefMemPerCPU or DefMemPerNode);
    False when such a job takes its whole node's memory (and so the node for itself)."""
    config = slurm.run(["scontrol", "show", "config"])
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("DefMemPerCPU", "DefMemPerNode") and value.strip().isdigit():
            return True
    if partition is None:
        return False
    for record in slurm.records(slurm.run(["scontrol", "show", "partition", "-o", partition])):
        if any(record.get(k, "").isdigit() for k in ("DefMemPerCPU", "DefMemPerNode")):
            return True
    return False


def jobs(name_prefix: str = "plinth") -> list[JobInfo]:
    """This user's jobs whose names start with `name_prefix`, one per array element.

    Raises:
        ConfigError: SLURM's commands are missing or its controller cannot be reached.
    """
    out = slurm.run(["squeue", "--me", "-h", "-r", "-o", "%i|%T|%r|%N|%M|%C|%m|%b|%K|%j"])
    found = []
    for line in out.splitlines():
        parts = line.split("|", 9)
        if len(parts) < 10 or not parts[9].startswith(name_prefix):
            continue
        job_id, state, reason, where, elapsed, cpus, memory, gres, array_task, name = (
            p.strip() for p in parts
        )
        found.append(
            JobInfo(
                job_id=job_id,
                name=name,
                state=state,
                reason=reason,
                nodes=where,
                elapsed=elapsed,
                cpus=_int(cpus),
                memory=memory,
                gres="" if gres == "N/A" else gres,
                array_task="" if array_task == "N/A" else array_task,
            )
        )
    return found


def check_shared_storage(
    settings: Settings, partition: str | None = None, work_dir: str | None = None
) -> None:
    """Refuse stores that nodes on other hosts could not use (checked once per partition shape).

    Raises:
        StorageNotShared: the partition has nodes other than this host and a store is local,
            naming the settings to use instead.
        ConfigError: SLURM's commands are missing or its controller cannot be reached.
    """
    found = nodes(partition or default_partition())
    key = (
        settings.resolved_store_url,
        settings.resolved_artifacts_url,
        work_dir,
        tuple(n.name for n in found),
    )
    with _lock:
        if key in _checked:
            return
    here = {socket.gethostname().split(".")[0], "localhost"}
    remote = sorted(n.name for n in found if (n.hostname or n.name).split(".")[0] not in here)
    if remote:
        problems = storage_problems(settings)
        if work_dir is not None and not on_network_filesystem(work_dir):
            problems.append(
                f"the folder for jobs' payloads and results, {work_dir}, is on a disk of this host only: set "
                "PLINTH_SLURM_WORKDIR to a folder on the cluster's shared filesystem"
            )
        if problems:
            raise StorageNotShared(
                f"SLURM partition {partition or 'default'} has nodes on other hosts ({', '.join(remote)}), "
                f"which cannot use this process's stores: {'; '.join(problems)}. Then run again."
            )
    with _lock:
        _checked.add(key)


def storage_problems(settings: Settings) -> list[str]:
    """What nodes on other hosts could not use, each with the setting to fix it ([] when all is well)."""
    problems = []
    store = settings.resolved_store_url
    if store.startswith("sqlite"):
        problems.append(
            f"the metadata store is the SQLite file {store.split(':///', 1)[-1]}, which only this host can "
            "open: set PLINTH_STORE=postgresql://USER:PASSWORD@HOST:5432/DB (a PostgreSQL server every "
            "node reaches) or PLINTH_STORE=https://HOST to a team server"
        )
    elif _loopback(urlsplit(store).hostname or ""):
        problems.append(
            f"the metadata store {_hide_password(store)} is on a loopback address, which means another "
            "machine on each node: set PLINTH_STORE to the database server's network address"
        )
    artifacts = settings.resolved_artifacts_url
    if not settings.is_remote and ("://" not in artifacts or artifacts.startswith("file://")):
        folder = artifacts.removeprefix("file://")
        if not on_network_filesystem(folder):
            problems.append(
                f"the artifact store is the folder {folder}, on a disk of this host only: set "
                "PLINTH_ARTIFACTS=s3://BUCKET/PREFIX (with PLINTH_S3_ENDPOINT_URL for S3-compatible stores "
                "such as MinIO), or a folder on the cluster's shared filesystem"
            )
    endpoint = settings.storage_options.get("endpoint_url", "")
    if endpoint and _loopback(urlsplit(endpoint).hostname or ""):
        problems.append(
            f"the object store endpoint {endpoint} is on a loopback address: set PLINTH_S3_ENDPOINT_URL "
            "to an address every node reaches"
        )
    return problems


def on_network_filesystem(folder: str) -> bool:
    """True when `folder` (or the nearest existing folder above it) is on NFS, Lustre, GPFS, ..."""
    path = os.path.realpath(folder)
    best, fstype = "", ""
    for part in psutil.disk_partitions(all=True):
        mount = part.mountpoint.rstrip("/") or "/"
        inside = path == mount or path.startswith(mount + "/") or mount == "/"
        if inside and len(mount) >= len(best):
            best, fstype = mount, part.fstype
    return fstype.lower() in NETWORK_FILESYSTEMS


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
