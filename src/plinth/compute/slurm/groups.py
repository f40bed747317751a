"""Groups on SLURM: one job of `--ntasks=N`, its ranks' reports, and how they fold into one result.

A group's batch script finds the rendezvous (the first host of the job, a free port on it) and
runs the ranks with `srun --kill-on-bad-exit=1`, so when one rank's process exits non-zero (it
raised, died, went over its memory or past the timeout) srun stops the others at once with
SIGTERM. Each rank (`rank.py`) writes a report of its own into the group's folder,
`results/<task>.ranks/`: `rank-<r>` with its outcome, worker, usage and the time it ended, and
rank 0's value. When srun returns, the script writes `end` (srun's exit code).

The executor folds the reports (`fold`) once every rank reported, or srun ended, or the job did:

- every rank OK: the task is OK with rank 0's value;
- a rank failed: the task ends with the outcome of the rank that failed first. A rank that
  raised shortly after another died usually raised because of that death (a collective lost
  its peer), so a death within `CASCADE_S` before a raise counts as first. A rank that never
  reported once srun or the job ended died without a word (its node or its worker was lost)
  and counts as first of all. A rank past the timeout makes the whole group TIMEOUT;
- no rank failed but some were stopped (scancel from outside, preemption, SLURM's time limit),
  or no rank ever reported (srun could not start them): the job's state says what happened, as
  for a single task (`outcomes.from_state`, which quotes the end of the job's log).
"""

from __future__ import annotations

import os
import pickle
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from plinth.compute.base import Outcome, RankResult, Task, TaskResult
from plinth.compute.groups import group_result
from plinth.compute.slurm import outcomes
from plinth.compute.slurm.asks import cpus_of

RANKS_SUFFIX = ".ranks"
END = "end"
"""The file the batch script writes once srun has returned: srun's exit code."""
CASCADE_S = 1.0
"""A rank that died up to this long after another raised is still taken as the first failure."""
WHOLE_JOB_STATES = frozenset(
    {"CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
)
"""Job states in which SLURM (or someone outside plinth) stopped every rank."""
_DEATHS = (Outcome.CRASHED, Outcome.MEMORY)
_FREE_PORT = "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])"


@dataclass(frozen=True)
class RankReport:
    """What one rank wrote: how it ended, when (seconds since the epoch), and rank 0's value."""

    result: RankResult
    ended: float
    value: Any = None
    traceback: str | None = None


@dataclass
class Reports:
    """The reports found so far in a group's folder, and srun's exit code once it returned."""

    ranks: dict[int, RankReport] = field(default_factory=dict)
    srun_exit: int | None = None


def ranks_dir(results: str, task_id: str) -> str:
    """The folder a group's ranks report into, beside the single tasks' result files."""
    return os.path.join(results, quote(task_id, safe="") + RANKS_SUFFIX)


def rank_file(folder: str, rank: int) -> str:
    """The report file of `rank` in a group's folder."""
    return os.path.join(folder, f"rank-{rank}")


def script_text(folder: str, *, cwd: str, task: Task, ranks: str) -> str:
    """The batch script of a group: rendezvous, srun of the ranks, then the `end` file in `ranks`."""
    workers, cpus = task.workers, cpus_of(task.resources)
    python = shlex.quote(sys.executable)
    pack = shlex.quote(os.path.join(folder, "pack-0.pkl"))
    here, end = shlex.quote(cwd), shlex.quote(os.path.join(ranks, END))
    return (
        "#!/bin/sh\n"
        f"[ -d {here} ] && cd {here}\n"
        'addr=$(scontrol show hostnames "$SLURM_JOB_NODELIST" 2>/dev/null | head -n 1)\n'
        "addr=${addr:-$(hostname)}\n"
        f"port=$({python} -c {shlex.quote(_FREE_PORT)})\n"
        # --wait=0: a rank that returned early never stops one still working (rank 0 saving, say)
        f"srun --kill-on-bad-exit=1 --wait=0 --label --ntasks={workers} --cpus-per-task={cpus} "
        f'{python} -m plinth.compute.slurm.rank {pack} "$addr" "$port"\n'
        "code=$?\n"
        f'{{ echo "$code" > {end}.tmp && mv {end}.tmp {end}; }} 2>/dev/null\n'
        'exit "$code"\n'
    )


def encode(report: RankReport) -> dict[str, Any]:
    """A report as the dict a rank writes."""
    r = report.result
    return {
        "rank": r.rank,
        "outcome": r.outcome.value,
        "worker": r.worker,
        "error": r.error,
        "traceback": report.traceback,
        "max_rss": r.max_rss,
        "cpu_s": r.cpu_s,
        "wall_s": r.wall_s,
        "gpus": tuple(r.gpus),
        "ended": report.ended,
        "value": report.value,
    }


def decode(fields: Mapping[str, Any]) -> RankReport:
    """The report a rank wrote, from its dict."""
    result = RankResult(
        rank=int(fields["rank"]),
        outcome=Outcome(fields["outcome"]),
        worker=str(fields.get("worker", "")),
        error=fields.get("error"),
        max_rss=int(fields.get("max_rss", 0)),
        cpu_s=float(fields.get("cpu_s", 0.0)),
        wall_s=float(fields.get("wall_s", 0.0)),
        gpus=tuple(fields.get("gpus", ())),
    )
    return RankReport(result, float(fields.get("ended", 0.0)), fields.get("value"), fields.get("traceback"))


def read(folder: str, known: Reports | None = None) -> Reports:
    """The reports in `folder`, adding to `known` (files already read are not read again)."""
    found = known or Reports()
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return found
    for name in names:
        if name == END and found.srun_exit is None:
            found.srun_exit = _read_exit(os.path.join(folder, name))
        elif name.startswith("rank-") and name[5:].isdigit() and int(name[5:]) not in found.ranks:
            found.ranks[int(name[5:])] = _read_report(os.path.join(folder, name), int(name[5:]))
    return found


def _read_exit(path: str) -> int:
    try:
        with open(path) as fh:
            return int(fh.read().strip() or 0)
    except (OSError, ValueError):
        return -1


def _read_report(path: str, rank: int) -> RankReport:
    try:
        with open(path, "rb") as fh:
            return decode(pickle.loads(fh.read()))
    except Exception as exc:
        error = f"{type(exc).__name__}: its report could not be read here ({exc})"
        return RankReport(RankResult(rank, Outcome.ERROR, error=error), 0.0)


def complete(reports: Reports, workers: int) -> bool:
    """True when every rank reported, or srun returned (no more reports will come)."""
    return len(reports.ranks) >= workers or reports.srun_exit is not None


def decided(reports: Reports, workers: int) -> bool:
    """True when the reports alone say how the group ended, no more reports coming: all OK, a
    rank failed, or srun returned without the report of a rank (which died without a word).
    Otherwise the job's state says it (every rank was stopped, or none ever reported)."""
    if not complete(reports, workers) or not reports.ranks:
        return False
    ranks = reports.ranks.values()
    if any(_failed(r) for r in ranks) or len(reports.ranks) < workers:
        return True
    return all(r.result.ok for r in ranks)


def fold(
    task: Task, job_id: str, reports: Reports, state: str | None = None, log: str | None = None
) -> TaskResult:
    """The task's one result from its ranks' reports and, once the job ended, its SLURM `state`."""
    ranks = [_rank_of(task, reports, r, job_id, state) for r in range(task.workers)]
    if all(r.ok for r in ranks):
        return group_result(task, ranks, reports.ranks[0].value)
    reported = [r for r in reports.ranks.values() if _failed(r)]
    if any(r.result.outcome is Outcome.TIMEOUT for r in reported):
        limit = task.timeout_s or 0.0
        error = f"Group {outcomes.name(task)!r} ran longer than its timeout of {limit:.1f} s and was stopped."
        return group_result(task, ranks, outcome=Outcome.TIMEOUT, error=error)
    whole_job = state in WHOLE_JOB_STATES or len(reports.ranks) in (0, task.workers)
    if not reported and whole_job:
        whole = outcomes.from_state(task, job_id, state or "", log)
        return group_result(task, ranks, outcome=whole.outcome, error=whole.error)
    missing = [r for r in ranks if r.rank not in reports.ranks]
    if missing:
        return group_result(task, ranks, failed=missing[0])
    first = min(reported, key=_failed_at)
    return group_result(task, ranks, failed=first.result, traceback=first.traceback)


def _rank_of(task: Task, reports: Reports, rank: int, job_id: str, state: str | None) -> RankResult:
    found = reports.ranks.get(rank)
    if found is not None:
        return found.result
    how = (
        f"srun exit code {reports.srun_exit}"
        if reports.srun_exit is not None
        else f"job state {state or 'gone'}"
    )
    error = f"its process ended without reporting ({how}; see the log of job {job_id})"
    return RankResult(rank, Outcome.CRASHED, error=error)


def _failed(report: RankReport) -> bool:
    return not report.result.ok and report.result.outcome is not Outcome.CANCELLED


def _failed_at(report: RankReport) -> float:
    """When a rank failed, a death moved earlier by `CASCADE_S` (see the module docstring)."""
    return report.ended - (CASCADE_S if report.result.outcome in _DEATHS else 0.0)
