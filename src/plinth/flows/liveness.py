"""Whether a flow run's driver still lives: asked of the OS on its own host, of its heartbeat elsewhere.

A driver records its host and pid when the flow run starts. On that host a missing pid (or a
zombie, or a pid now held by a process started after the run) means the driver is gone, at once.
From another host nothing can be asked but the store: the run reads CRASHED once its driver has
missed three heartbeats (`PLINTH_HEARTBEAT_S` each).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Literal

import psutil

from plinth.core.entities import FlowRun, Run

Verdict = Literal["alive", "gone", "unknown"]

# psutil derives a start time from the boot time in whole seconds: allow for that much error.
_START_SLACK_MS = 2_000
MISSED_BEATS = 3


@dataclass(frozen=True)
class DriverCheck:
    """What this host can tell about a RUNNING flow run's driver.

    Attributes:
        verdict: "alive" (its process runs on this host), "gone" (it ran on this host and its
            process is no more), or "unknown" (another host, or a run that recorded none).
        host: The driver's host, or None when not recorded.
        pid: The driver's process id, or None when not recorded.
        here: This host's name.
        heartbeat_s: Seconds between the driver's heartbeats.
        decides_in_s: Seconds until missed heartbeats mark the run CRASHED (0 once they have).
    """

    verdict: Verdict
    host: str | None
    pid: int | None
    here: str
    heartbeat_s: float
    decides_in_s: float

    @property
    def driver(self) -> str:
        """'pid 123 on HOST', or what stands for it when none was recorded."""
        if self.host is None or self.pid is None:
            return "an unrecorded process"
        return f"pid {self.pid} on {self.host}"


def this_driver() -> tuple[str, int]:
    """(host, pid) of this process, as a flow run records its driver."""
    return socket.gethostname(), os.getpid()


def check_driver(run: FlowRun, tracked: Run, now_ms: int) -> DriverCheck:
    """Judge the driver of `run` (a RUNNING flow run) whose tracked run is `tracked`, at `now_ms`."""
    here = socket.gethostname()
    last_beat = tracked.heartbeat_ms if tracked.heartbeat_ms is not None else tracked.start_ms
    deadline = last_beat + tracked.heartbeat_s * MISSED_BEATS * 1000
    decides_in_s = max(deadline - now_ms, 0) / 1000
    verdict: Verdict = "unknown"
    if run.driver_host == here and run.driver_pid is not None:
        verdict = "alive" if _runs(run.driver_pid, run.start_ms) else "gone"
    return DriverCheck(verdict, run.driver_host, run.driver_pid, here, tracked.heartbeat_s, decides_in_s)


def _runs(pid: int, since_ms: int) -> bool:
    """Whether `pid` on this host is still the process that was running at `since_ms`."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        started_ms = process.create_time() * 1000
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # it exists, but this user may not look at it: take it for alive
        return True
    return started_ms <= since_ms + _START_SLACK_MS
