"""What runs inside a SLURM job: `python -m plinth.compute.slurm.worker PACK_FILE`.

A pack file (written by the executor) holds the driver's working folder, the results folder
and one or more tasks, each an encoded request of `compute.worker.run_request` with its label,
timeout and memory limit. The worker runs them one after the other in the driver's working
folder (when this node has it) and writes each task's result as its own file, atomically, so
the driver sees a result as soon as its task ends. A task already holding a result (a job that
SLURM requeued) is not run again.

A task without limits runs in this process, so what it caches (open stores, loaded inputs)
serves the next task of the pack. A task with a timeout or memory limit runs in a forked child
watched from here every `SAMPLE_S` seconds: past its timeout, or with its process tree over its
memory limit, the child's tree is killed, a TIMEOUT or MEMORY result written, and the worker
moves on. A child that dies on its own gets a CRASHED result.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any

import cloudpickle
import psutil

from plinth.compute.base import Outcome, TaskResult
from plinth.compute.slurm import outcomes
from plinth.compute.worker import run_request, tree_rss

SAMPLE_S = 0.1
_HOST = socket.gethostname()


def main(argv: list[str] | None = None) -> int:
    """Run every task of the pack file named in `argv`; 0 once each has a result."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m plinth.compute.slurm.worker PACK_FILE", file=sys.stderr)
        return 2
    with open(args[0], "rb") as fh:
        pack = pickle.load(fh)
    if pack["cwd"] and os.path.isdir(pack["cwd"]):  # relative paths then agree with the driver's
        os.chdir(pack["cwd"])
    for spec in pack["tasks"]:
        target = os.path.join(pack["results"], outcomes.result_name(spec["id"]))
        if os.path.exists(target):
            continue
        if spec["timeout_s"] is None and spec["memory"] is None:
            write(target, run_one(spec))
        else:
            watched = run_watched(spec, target)
            if watched is not None:
                write(target, watched)
    return 0


def run_one(spec: Mapping[str, Any]) -> TaskResult:
    """Run a task in this process; its result."""
    reply = run_request(spec["request"], psutil.Process())
    try:
        status, value, error, trace, cpu_s, wall_s, rss, peak, _total = cloudpickle.loads(reply)
    except Exception as exc:
        return TaskResult(spec["id"], Outcome.ERROR, error=f"{type(exc).__name__}: {exc}", worker=where())
    return TaskResult(
        task_id=spec["id"],
        outcome=Outcome.OK if status == "ok" else Outcome.ERROR,
        value=value,
        error=error,
        traceback=trace,
        gpus=gpu_ids(),
        max_rss=max(rss, peak),
        cpu_s=cpu_s,
        wall_s=wall_s,
        worker=where(),
    )


def run_watched(spec: Mapping[str, Any], target: str) -> TaskResult | None:
    """Run a task in a child process within its limits; its result unless the child wrote it."""
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: run, report, leave without running the parent's exit handlers
        code = 0
        try:
            write(target, run_one(spec))
        except BaseException:
            code = 70
        os._exit(code)
    how, number = _watch(pid, spec["timeout_s"], spec["memory"], start)
    wall_s = time.monotonic() - start
    label, timeout_s, memory = spec["label"], spec["timeout_s"], spec["memory"]
    if how == "timeout":
        return outcomes.timed_out(spec["id"], label, timeout_s, wall_s, where())
    if how == "memory":
        return outcomes.over_memory(spec["id"], label, number, memory, wall_s, where())
    if os.path.exists(target):
        return None
    return outcomes.died(spec["id"], label, number, wall_s, where())


def _watch(pid: int, timeout_s: float | None, memory: int | None, start: float) -> tuple[str, int]:
    """Wait for child `pid`: ("exit", wait status), ("timeout", 0) or ("memory", its peak rss)."""
    child = psutil.Process(pid)
    ended = exit_signal(pid)
    deadline = None if timeout_s is None else start + timeout_s
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return "exit", status
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                kill_tree(child)
                return "timeout", 0
            if memory is not None:
                rss = tree_rss(child)
                if rss > memory:
                    kill_tree(child)
                    return "memory", rss
            pause = SAMPLE_S if deadline is None else max(0.0, min(SAMPLE_S, deadline - now))
            if ended is not None:
                select.select([ended], [], [], pause)
            else:
                time.sleep(pause)
    finally:
        if ended is not None:
            os.close(ended)


def exit_signal(pid: int) -> int | None:
    """A file descriptor readable once `pid` ends (Linux), so a short task is not waited on."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def kill_tree(child: psutil.Process) -> None:
    """Kill a child process and everything it started, then reap the child."""
    with contextlib.suppress(psutil.Error):
        for grandchild in child.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                grandchild.kill()
    with contextlib.suppress(psutil.Error):
        child.kill()
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child.pid, 0)


def write(target: str, result: TaskResult) -> None:
    """Write a result file atomically (a temporary name, then rename)."""
    try:
        data = cloudpickle.dumps(outcomes.encode(result))
    except Exception as exc:
        error = f"{type(exc).__name__}: the task's result could not be pickled to send back ({exc})"
        data = cloudpickle.dumps(outcomes.encode(TaskResult(result.task_id, Outcome.ERROR, error=error)))
    folder, name = os.path.split(target)
    temp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    with open(temp, "wb") as fh:
        fh.write(data)
    os.replace(temp, target)


def where(pid: int | None = None) -> str:
    """This worker's place in the cluster: 'host:pid job JOB_ID' (`pid` default: this process)."""
    array, index = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array}_{index}" if array and index else os.environ.get("SLURM_JOB_ID", "?")
    return f"{_HOST}:{os.getpid() if pid is None else pid} job {job}"


def gpu_ids() -> tuple[int, ...]:
    """The GPUs SLURM gave this job."""
    text = os.environ.get("SLURM_JOB_GPUS") or os.environ.get("CUDA_VISIBLE_DEVICES") or ""
    return tuple(int(part) for part in text.split(",") if part.strip().isdigit())


if __name__ == "__main__":
    sys.exit(main())
