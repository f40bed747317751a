"""The journal of a work folder: which job each submitted task went to, and where its log is.

One JSON line per task, appended when its job is submitted. A new executor on the same work
folder (a flow driver restarted after it was killed) reads it to find, and adopt, jobs still
running tasks it wants, and `plinth flows logs` reads it to find a task's job log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

FILE = "journal.jsonl"


@dataclass(frozen=True)
class Entry:
    """One submitted task: its id, its job ("123" or "123_4") and the job's log file."""

    task_id: str
    job_id: str
    log: str


class Journal:
    """Appends to and reads `WORK_DIR/journal.jsonl` (read incrementally: only new lines)."""

    def __init__(self, work_dir: str) -> None:
        self.path = os.path.join(work_dir, FILE)
        self._entries: dict[str, Entry] = {}
        self._offset = 0

    def append(self, entries: Iterable[Entry]) -> None:
        """Record submitted tasks (one write, so concurrent drivers do not interleave lines)."""
        lines = "".join(
            json.dumps({"task": e.task_id, "job": e.job_id, "log": e.log}, separators=(",", ":")) + "\n"
            for e in entries
        )
        if not lines:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)

    def find(self, task_id: str) -> Entry | None:
        """The latest entry of `task_id`, or None."""
        found = self._entries.get(task_id)
        if found is None:
            self._read_new()
            found = self._entries.get(task_id)
        return found

    def _read_new(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # a line being written is read next time
        self._offset += end
        for line in data[:end].splitlines():
            try:
                row = json.loads(line)
                self._entries[row["task"]] = Entry(row["task"], row["job"], row.get("log", ""))
            except (ValueError, KeyError, TypeError):
                continue
