"""SLURM's client commands as functions: sbatch, squeue, scontrol, scancel, and their parsing.

Every call has a timeout and turns a missing command or an unreachable controller into a
ConfigError that says what to install or start. Job ids are SLURM's strings: "123" for a job,
"123_4" for element 4 of job array 123.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from plinth.core.errors import ConfigError

TIMEOUT_S = 30.0
"""Longest wait for one SLURM command (a busy controller answers within seconds)."""
LIVE_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "CONFIGURING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "RESV_DEL_HOLD",
    }
)
"""Job states in which a job may still run (or be running) its tasks."""
_KEY = re.compile(r"(?:^|\s)([A-Za-z][\w/:.]*)=")
_NO_CONTROLLER = ("unable to contact slurm controller", "connection refused", "socket timed out")


@dataclass(frozen=True)
class JobState:
    """What SLURM says about one job or array element: its state and why it is in it."""

    job_id: str
    state: str
    reason: str = ""
    exit_code: str = ""

    @property
    def live(self) -> bool:
        """True while the job may still run (pending, running, completing, requeued...)."""
        return self.state in LIVE_STATES


def run(args: list[str], *, env: Mapping[str, str] | None = None, timeout_s: float = TIMEOUT_S) -> str:
    """Run a SLURM command; its stdout.

    Raises:
        ConfigError: the command is missing, did not answer in time, or failed (with its message).
    """
    found = _call(args, env=env, timeout_s=timeout_s)
    if found.returncode != 0:
        raise _failed(args, found.stderr)
    return found.stdout


def _call(
    args: list[str], *, env: Mapping[str, str] | None = None, timeout_s: float = TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            args, capture_output=True, text=True, timeout=timeout_s, env=None if env is None else dict(env)
        )
    except FileNotFoundError as exc:
        raise ConfigError(
            f"`{args[0]}` is not on PATH: the SLURM executor runs where SLURM's client commands are "
            "installed and configured (a login node of the cluster; on Debian `apt-get install slurm-client` "
            "and /etc/slurm/slurm.conf), or choose another executor."
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(
            f"`{' '.join(args[:3])}` did not answer within {timeout_s:g} s: the SLURM controller is down or "
            "overloaded; check `scontrol ping` (and start slurmctld), then run again."
        ) from exc


def _failed(args: list[str], stderr: str) -> ConfigError:
    message = " ".join(stderr.split())[:500] or "no message"
    hint = ""
    if any(text in message.lower() for text in _NO_CONTROLLER):
        hint = (
            " The SLURM controller cannot be reached: check `scontrol ping` and start slurmctld (and munged)."
        )
    return ConfigError(f"`{' '.join(args[:2])}` failed: {message}.{hint}")


def submit(script: str, args: list[str], env: Mapping[str, str]) -> str:
    """`sbatch --parsable ARGS SCRIPT`; the new job's id."""
    out = run(["sbatch", "--parsable", *args, script], env=env)
    return out.strip().split(";", 1)[0]


def cancel(job_ids: Iterable[str]) -> None:
    """`scancel` the jobs (or array elements); ones that already ended are no error."""
    ids = sorted(set(job_ids))
    if ids:
        _call(["scancel", *ids])


def queue(job_ids: Iterable[str]) -> dict[str, JobState]:
    """The jobs of `job_ids` still in the queue (`squeue -r`), by job or array element id."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    found = _call(["squeue", "-h", "-r", "-j", ",".join(ids), "-o", "%i|%T|%r"])
    if found.returncode != 0:
        if "invalid job id" in found.stderr.lower():
            return {}
        raise _failed(["squeue", "-j"], found.stderr)
    states = {}
    for line in found.stdout.splitlines():
        job_id, state, reason = [*line.split("|", 2), "", ""][:3]
        states[job_id.strip()] = JobState(job_id.strip(), state.strip(), reason.strip())
    return states


def show_job(job_id: str) -> dict[str, JobState]:
    """Every element of a job as `scontrol show job` has it (also recently ended ones); {} when unknown."""
    found = _call(["scontrol", "show", "job", "-o", job_id])
    if found.returncode != 0:
        if "invalid job id" in found.stderr.lower():
            return {}
        raise _failed(["scontrol", "show"], found.stderr)
    states = {}
    for record in records(found.stdout):
        for element in element_ids(record):
            states[element] = JobState(
                element, record.get("JobState", ""), record.get("Reason", ""), record.get("ExitCode", "")
            )
    return states


def records(text: str) -> list[dict[str, str]]:
    """`scontrol show ... -o` output as one dict per line (values may hold spaces)."""
    found = []
    for line in text.splitlines():
        keys = list(_KEY.finditer(line))
        record = {}
        for i, match in enumerate(keys):
            end = keys[i + 1].start() if i + 1 < len(keys) else len(line)
            record[match.group(1)] = line[match.end() : end].strip()
        if record:
            found.append(record)
    return found


def element_ids(record: Mapping[str, str]) -> list[str]:
    """The ids a job record stands for: "123", or "123_4" per array element (ranges expanded)."""
    array, tasks = record.get("ArrayJobId"), record.get("ArrayTaskId")
    if not array or not tasks:
        return [record.get("JobId", "")]
    return [f"{array}_{i}" for i in expand(tasks)]


def expand(spec: str) -> list[int]:
    """Array indices from SLURM's form: '4', '1-5', '1,3,5-7', '0-9%2' (a throttle, ignored)."""
    indices: list[int] = []
    for part in spec.split("%", 1)[0].split(","):
        first, _, last = part.partition("-")
        if first.isdigit():
            step_last, _, step = last.partition(":")
            end = int(step_last) if step_last.isdigit() else int(first)
            indices.extend(range(int(first), end + 1, int(step) if step.isdigit() else 1))
    return indices
