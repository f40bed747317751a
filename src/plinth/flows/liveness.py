"""Whether a flow run's driver still lives: asked of the OS on its own machine, of its heartbeat elsewhere.

A driver records its host, pid and namespace (the kernel's boot id and its PID namespace) when
the flow run starts. A host name alone does not name a machine: containers on one machine share
it, each with its own pids, and two machines may be given the same name. Only where all three
match can the OS be asked: there a missing pid (or a zombie, or a pid now held by a process
started after the run) means the driver is gone, at once. From anywhere else nothing can be asked
but the store: the run reads CRASHED once its driver has missed three heartbeats
(`PLINTH_HEARTBEAT_S` each).
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
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_PID_NAMESPACE = "/proc/self/ns/pid"


@dataclass(frozen=True)
class Driver:
    """Where a process runs, as a flow run records its driver.

    Attributes:
        host: The host name.
        pid: The process id, as seen in its own PID namespace.
        ns: The kernel's boot id and the PID namespace, e.g. '3a37e327-… pid:[4026531836]';
            None where the OS shows neither (not Linux).
    """

    host: str
    pid: int
    ns: str | None


@dataclass(frozen=True)
class DriverCheck:
    """What this process can tell about a RUNNING flow run's driver.

    Attributes:
        verdict: "alive" (its process runs beside this one), "gone" (it ran beside this one and
            its process is no more), or "unknown" (another host, boot or PID namespace, or a run
            that recorded none).
        host: The driver's host, or None when not recorded.
        pid: The driver's process id, or None when not recorded.
        here: This host's name.
        heartbeat_s: Seconds between the driver's heartbeats.
        decides_in_s: Seconds until missed heartbeats mark the run CRASHED (0 once they have).
        elsewhere: Where the driver ran, seen from here, when the OS cannot be asked: 'on another
            host', 'in another PID namespace (container) on this host', 'in an earlier boot of
            this host or on another machine named HOST'; '' when it can.
    """

    verdict: Verdict
    host: str | None
    pid: int | None
    here: str
    heartbeat_s: float
    decides_in_s: float
    elsewhere: str = ""

    @property
    def driver(self) -> str:
        """'pid 123 on HOST', or what stands for it when none was recorded."""
        if self.host is None or self.pid is None:
            return "an unrecorded process"
        return f"pid {self.pid} on {self.host}"

    @property
    def how_to_stop(self) -> str:
        """How to stop a live driver by hand: `kill PID` on its host, unless it is its container's init."""
        if self.pid == 1:  # a container's init ignores signals sent from inside; pid 1 outside is the host's
            return f"stop its container on {self.host} (the driver is that container's pid 1)"
        return f"stop it (`kill {self.pid}` on {self.host})"


def this_driver() -> Driver:
    """This process, as a flow run records its driver."""
    return Driver(socket.gethostname(), os.getpid(), this_namespace())


def this_namespace() -> str | None:
    """'BOOT_ID pid:[INODE]' of this process, None where the OS shows neither; unreadable parts are '?'."""
    try:
        with open(_BOOT_ID, encoding="ascii") as f:
            boot = f.read().strip() or "?"
    except (OSError, ValueError):
        boot = "?"
    try:
        pids = os.readlink(_PID_NAMESPACE)
    except OSError:
        pids = "?"
    return None if boot == pids == "?" else f"{boot} {pids}"[:128]


def check_driver(run: FlowRun, tracked: Run, now_ms: int) -> DriverCheck:
    """Judge the driver of `run` (a RUNNING flow run) whose tracked run is `tracked`, at `now_ms`."""
    here = socket.gethostname()
    last_beat = tracked.heartbeat_ms if tracked.heartbeat_ms is not None else tracked.start_ms
    deadline = last_beat + tracked.heartbeat_s * MISSED_BEATS * 1000
    decides_in_s = max(deadline - now_ms, 0) / 1000
    found = (run.driver_host, run.driver_pid, here, tracked.heartbeat_s, decides_in_s)
    if run.driver_host is None or run.driver_pid is None:
        return DriverCheck("unknown", *found, elsewhere="in an unrecorded place")
    elsewhere = _elsewhere(run.driver_host, run.driver_ns, here, this_namespace())
    if elsewhere:
        return DriverCheck("unknown", *found, elsewhere=elsewhere)
    return DriverCheck("alive" if _runs(run.driver_pid, run.start_ms) else "gone", *found)


def _elsewhere(host: str, ns: str | None, here: str, here_ns: str | None) -> str:
    """Where a driver at (host, ns) ran, seen from (here, here_ns); '' for this machine and namespace."""
    if host != here:
        return "on another host"
    if ns == here_ns:
        return ""
    if (ns or "?").split(" ")[0] != (here_ns or "?").split(" ")[0]:
        return f"in an earlier boot of this host or on another machine named {host}"
    return "in another PID namespace (container) on this host"


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
