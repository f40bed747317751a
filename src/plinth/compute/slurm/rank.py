"""What runs as each rank of a group's job: `python -m plinth.compute.slurm.rank PACK ADDR PORT`.

srun starts one of these per rank (see `groups.py` for the batch script). It reads its place in
the group from SLURM's variables (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID and
SLURM_STEP_TASKS_PER_NODE), takes its own GPUs, and runs the task's call in a forked child with
the task's environment plus the rank's (`plinth.compute.groups.rank_env`, ADDR:PORT being the
rendezvous the batch script chose). The call runs in a child so that this process outlives it
and reports how it ended, whatever happens to it: the child writes the report when the call
returns or raises; this process writes it when the child died, went over its memory or past the
timeout (it kills the child's tree), or when SLURM stopped the rank with SIGTERM (srun does that
to every other rank once one exits non-zero, and scancel to all). It exits 0 only when the call
returned, so srun's `--kill-on-bad-exit` stops the group when any rank fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import cloudpickle
import psutil

from plinth.compute.base import Outcome, RankResult
from plinth.compute.groups import rank_env
from plinth.compute.slurm import groups, outcomes
from plinth.compute.slurm.worker import exit_signal, kill_tree, run_one, where
from plinth.compute.worker import tree_rss

SAMPLE_S = 0.1
STOP_GRACE_S = 0.5
"""How long a child killed by SIGTERM waits for this process's own SIGTERM (SLURM signals the
processes of a step one after the other) before its death counts as a crash."""
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class Layout:
    """Where a rank stands in its group, from SLURM's variables."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Layout:
        """The layout srun gave this process.

        Raises:
            KeyError: a SLURM variable is missing (not started by srun).
        """
        node_rank = int(env.get("SLURM_NODEID", "0"))
        per_node = tasks_per_node(env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE", ""))
        world = int(env.get("SLURM_STEP_NUM_TASKS") or env["SLURM_NTASKS"])
        return cls(
            rank=int(env["SLURM_PROCID"]),
            world_size=world,
            local_rank=int(env["SLURM_LOCALID"]),
            local_world_size=per_node[node_rank] if node_rank < len(per_node) else world,
            node_rank=node_rank,
        )


def tasks_per_node(spec: str) -> list[int]:
    """SLURM's tasks per node, one entry per node: '2(x3),1' -> [2, 2, 2, 1]."""
    counts: list[int] = []
    for part in spec.split(","):
        number, _, repeat = part.strip().partition("(x")
        if number.isdigit():
            counts.extend([int(number)] * (int(repeat.rstrip(")")) if repeat.rstrip(")").isdigit() else 1))
    return counts


def own_gpus(env: Mapping[str, str], local_rank: int, per_rank: int) -> list[str]:
    """This rank's GPUs as CUDA_VISIBLE_DEVICES should list them ([] for none, or when SLURM
    named none): the ones SLURM bound to this task, else this rank's share of its node's."""
    if per_rank <= 0:
        return []
    visible = _split(env.get("CUDA_VISIBLE_DEVICES"))
    if len(visible) == per_rank:
        return visible
    node = _split(env.get("SLURM_STEP_GPUS")) or _split(env.get("SLURM_JOB_GPUS")) or visible
    mine = node[local_rank * per_rank : (local_rank + 1) * per_rank]
    return mine if len(mine) == per_rank else []


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    """Run this rank of the pack file's group; 0 when its call returned."""
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 3 or not args[2].isdigit():
        print("usage: python -m plinth.compute.slurm.rank PACK_FILE MASTER_ADDR MASTER_PORT", file=sys.stderr)
        return 2
    with open(args[0], "rb") as fh:
        pack = pickle.load(fh)
    if pack["cwd"] and os.path.isdir(pack["cwd"]):
        os.chdir(pack["cwd"])
    spec = pack["tasks"][0]
    layout = Layout.from_env(os.environ)
    gpus = own_gpus(os.environ, layout.local_rank, spec["gpu"])
    env = rank_env(
        layout.rank,
        layout.world_size,
        local_rank=layout.local_rank,
        local_world_size=layout.local_world_size,
        node_rank=layout.node_rank,
        master_addr=args[1],
        master_port=int(args[2]),
    )
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    request = with_env(spec["request"], env)
    ids = tuple(int(g) for g in gpus if g.isdigit())
    return supervise(spec, layout.rank, request, groups.rank_file(spec["ranks"], layout.rank), ids)


def with_env(request: bytes, env: Mapping[str, str]) -> bytes:
    """An encoded request (see `compute.worker.run_request`) with `env` over the task's own."""
    sys_path, task_env, payload = pickle.loads(request)
    return pickle.dumps((sys_path, {**task_env, **env}, payload), protocol=pickle.HIGHEST_PROTOCOL)


class _Stop:
    """Set by SIGTERM or SIGINT: SLURM is stopping this rank."""

    def __init__(self) -> None:
        self.signum = 0
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self)

    def __call__(self, signum: int, frame: object) -> None:
        self.signum = signum


def supervise(spec: Mapping[str, Any], rank: int, request: bytes, target: str, gpus: tuple[int, ...]) -> int:
    """Run the call in a child, watch it, and see that the rank's report gets written; the exit code."""
    stop = _Stop()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(spec, rank, request, target, gpus)
    how, status, peak = _watch(pid, spec["timeout_s"], spec["memory"], start, stop)
    if os.path.exists(target) and how in ("exit", "stopped"):  # the child reported
        return 0 if how == "exit" and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else 1
    if how == "exit" and os.WIFSIGNALED(status) and os.WTERMSIG(status) in _STOP_SIGNALS:
        _wait_for(stop, STOP_GRACE_S)
    outcome, error = _ending(how, status, stop.signum, peak, spec)
    wall_s = time.monotonic() - start
    result = RankResult(rank, outcome, where(pid), error, peak, wall_s=wall_s, gpus=gpus)
    write(target, groups.RankReport(result, time.time()))
    return 1


def _ending(
    how: str, status: int, stopped_by: int, peak: int, spec: Mapping[str, Any]
) -> tuple[Outcome, str]:
    """How a rank whose child did not report ended, and the message saying so."""
    if stopped_by:
        name = signal.Signals(stopped_by).name
        return Outcome.CANCELLED, f"stopped by SLURM ({name}): another rank failed, or the job was cancelled"
    if how == "timeout":
        return Outcome.TIMEOUT, f"ran longer than the group's timeout of {spec['timeout_s']:.1f} s"
    if how == "memory":
        used, limit = outcomes.size(peak), outcomes.size(spec["memory"])
        advice = "raise the step's memory or make it use less"
        return Outcome.MEMORY, f"used {used} of memory, over its limit of {limit}; {advice}"
    return Outcome.CRASHED, _death(status)


def _child(
    spec: Mapping[str, Any], rank: int, request: bytes, target: str, gpus: tuple[int, ...]
) -> NoReturn:
    """The forked child: run the call, write the report, leave without the parent's exit handlers."""
    code = 70
    try:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        _die_with_parent()
        done = run_one({"id": spec["id"], "request": request})
        result = RankResult(
            rank, done.outcome, done.worker, done.error, done.max_rss, done.cpu_s, done.wall_s, gpus
        )
        value = done.value if rank == 0 else None
        code = 0 if write(target, groups.RankReport(result, time.time(), value, done.traceback)) else 1
    except BaseException:
        code = 70
    os._exit(code)


def _die_with_parent() -> None:
    """Have Linux kill this child should its supervising process die (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _watch(
    pid: int, timeout_s: float | None, memory: int | None, start: float, stop: _Stop
) -> tuple[str, int, int]:
    """Wait for child `pid`: (how, wait status, peak rss), how being exit, stopped, timeout or memory."""
    child = psutil.Process(pid)
    ended = exit_signal(pid)
    deadline = None if timeout_s is None else start + timeout_s
    peak = 0
    try:
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                return "exit", status, max(peak, usage.ru_maxrss * 1024)
            how = "stopped" if stop.signum else None
            if deadline is not None and time.monotonic() >= deadline:
                how = how or "timeout"
            if memory is not None:
                peak = max(peak, tree_rss(child))
                how = how or ("memory" if peak > memory else None)
            if how is not None:
                kill_tree(child)
                return how, 0, peak
            if ended is not None:
                select.select([ended], [], [], SAMPLE_S)
            else:
                time.sleep(SAMPLE_S)
    finally:
        if ended is not None:
            os.close(ended)


def _wait_for(stop: _Stop, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not stop.signum and time.monotonic() < deadline:
        time.sleep(0.01)


def _death(status: int) -> str:
    """How the child ended without reporting, from its wait status."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            how = f"was killed by signal {number} ({signal.Signals(number).name})"
        except ValueError:
            how = f"was killed by signal {number}"
    else:
        how = f"exited with code {os.waitstatus_to_exitcode(status)}"
    return f"its process {how} before reporting a result"


def write(target: str, report: groups.RankReport) -> bool:
    """Write a rank's report atomically; whether it says OK (an unpicklable value makes it ERROR).
    A report whose group folder is gone (the group was cancelled) is dropped."""
    try:
        data = cloudpickle.dumps(groups.encode(report))
    except Exception as exc:
        error = f"{type(exc).__name__}: the value rank 0 returned could not be pickled to send back ({exc})"
        result = RankResult(report.result.rank, Outcome.ERROR, report.result.worker, error)
        report = groups.RankReport(result, report.ended)
        data = cloudpickle.dumps(groups.encode(report))
    folder, name = os.path.split(target)
    temp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as fh:
            fh.write(data)
        os.replace(temp, target)
    except FileNotFoundError:
        pass
    return report.result.ok


if __name__ == "__main__":
    sys.exit(main())
