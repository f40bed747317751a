"""Resuming a failed flow run inside the server's process, for the web UI (`allow_resume = true`).

`resume_flow` runs through the process's default tracking backend and its shared executor, and
a driver takes every result its executor hands back, so this process resumes one flow run at a
time, against one store: the first resume opens the default backend on its workspace's store
(unless one is open on that store already, as in a process that also tracks), and a resume in
another workspace waits until nothing runs, then reopens it there. The flow's code must be
importable here (`FlowRun.source`: `module:name` on the server's path, or a file it can read).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from plinth.core.errors import ConflictError, InvalidInput, PlinthError
from plinth.core.settings import Settings
from plinth.store.workspaces import workspace_url
from plinth.tracking import context

if TYPE_CHECKING:
    from plinth.flows.driver import FlowDriver

log = logging.getLogger("plinth.server")

STARTED_WAIT_S = 30.0
"""How long the request waits for the resumed run to be recorded before answering without its id."""


@dataclass
class Resume:
    """One resume in flight: set `started` once the new flow run exists or the resume failed."""

    of: str
    started: threading.Event = field(default_factory=threading.Event)
    flow_run_id: str | None = None
    error: BaseException | None = None


class Resumer:
    """Resumes flow runs in background threads, one at a time, and says which one runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._current: Resume | None = None
        self._opened: context.Backend | None = None

    def busy_with(self, run_id: str) -> bool:
        """True while flow run `run_id` is being resumed here."""
        current = self._current
        return current is not None and current.of == run_id

    def start(self, run_id: str, workspace: str, wait_s: float = STARTED_WAIT_S) -> str | None:
        """Resume `run_id` in a thread; the new flow run's id once recorded (None if not yet).

        Raises:
            ConflictError: this process resumes a flow run already, or tracks to another store.
            PlinthError: the resume failed before its run was recorded (e.g. the flow's code
                cannot be imported here); other errors as InvalidInput naming the cause.
        """
        with self._lock:
            if self._current is not None:
                raise ConflictError(
                    f"This server is resuming flow run {self._current.of}; resume {run_id} once it ends "
                    f"(its page shows when), or run `plinth flows resume {run_id}`."
                )
            self._use_store(workspace, run_id)
            resume = self._current = Resume(run_id)
        threading.Thread(target=self._run, args=(resume,), name=f"resume {run_id}", daemon=True).start()
        resume.started.wait(wait_s)
        if resume.flow_run_id is None and resume.error is not None:
            raise _refusal(run_id, resume.error)
        return resume.flow_run_id

    def _use_store(self, workspace: str, run_id: str) -> None:
        """Make the default backend the one of `workspace`'s store (the lock is held)."""
        wanted = replace(self.settings, store_url=workspace_url(self.settings.resolved_store_url, workspace))
        current = context.current()
        if current is not None and _same_store(current.settings, wanted):
            return
        if current is not None and current is not self._opened:
            raise ConflictError(
                f"This server's process tracks to another store ({current.settings.resolved_store_url}) "
                f"than workspace {workspace!r}'s; run `plinth flows resume {run_id}` there instead."
            )
        self._opened = context.configure(wanted)

    def _run(self, resume: Resume) -> None:
        from plinth.flows.flow import resume_flow

        def recorded(driver: FlowDriver) -> None:
            resume.flow_run_id = driver.flow_run_id
            resume.started.set()

        try:
            result = resume_flow(resume.of, raise_on_failure=False, observer=recorded)
            resume.flow_run_id = result.id
        except BaseException as exc:  # a background thread must say why it stopped, never die silently
            resume.error = exc
            log.warning("Resuming flow run %s failed: %s: %s", resume.of, type(exc).__name__, exc)
        finally:
            resume.started.set()
            with self._lock:
                self._current = None


def _same_store(a: Settings, b: Settings) -> bool:
    return (
        a.resolved_store_url == b.resolved_store_url and a.resolved_artifacts_url == b.resolved_artifacts_url
    )


def _refusal(run_id: str, error: BaseException) -> PlinthError:
    if isinstance(error, PlinthError):
        return error
    return InvalidInput(
        f"Flow run {run_id} could not be resumed in the server: {type(error).__name__}: {error}. "
        f"Its code must be importable by the server; else run `plinth flows resume {run_id}` where it lives."
    )
