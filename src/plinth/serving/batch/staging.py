"""Staging and resume: each chunk's output is a part file in a locked folder next to the output.

The folder is named from a hash of the job (the input's paths, sizes and modification times,
the model version id and the options), so running the same call again after a crash or
`kill -9` finds the parts already written and skips their chunks. A part is written atomically
(temporary file + rename) as Arrow IPC, which round-trips every type and value exactly and costs
little more than a copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from typing import TYPE_CHECKING

from plinth.core.entities import ModelVersion
from plinth.core.errors import ConflictError
from plinth.serving.batch.scorer import Job

if TYPE_CHECKING:
    import pyarrow as pa

LAYOUT = 1
"""Version of the staging layout; part folders of another layout are never reused."""
_PART = "part-{:08d}.arrow"


def staging_key(job: Job, mv: ModelVersion) -> str:
    """Identifies one job: same input files (unchanged), model version and options."""
    identity = {
        "layout": LAYOUT,
        "input": job.source.identity(),
        "model_version": mv.id,
        "batch_size": job.batch_size,
        "id_columns": job.id_columns,
        "proba": job.proba,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


class Staging:
    """The part files of one job, in a locked folder next to the output.

    `.OUTPUT.plinth-KEY/part-00000000.arrow`, ... Entering creates the folder, locks it
    (a second process on the same job gets ConflictError), removes leftovers of dead jobs
    on the same output and lists the parts already written.
    """

    def __init__(self, output: str, key: str) -> None:
        self.parent = os.path.dirname(output)
        self.prefix = f".{os.path.basename(output)}.plinth-"
        self.folder = os.path.join(self.parent, self.prefix + key[:20])
        self.done: set[int] = set()
        self._lock: int | None = None

    def __enter__(self) -> Staging:
        os.makedirs(self.folder, exist_ok=True)
        self._lock = _lock(self.folder)
        if self._lock == -1:
            raise ConflictError(
                f"Another process is writing this output (staging folder {self.folder}); wait for it to end."
            )
        self._remove_stale()
        self.done = self._written()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None and self._lock >= 0:
            os.close(self._lock)
        self._lock = None

    def part(self, index: int) -> str:
        """The path of chunk `index`'s part file."""
        return os.path.join(self.folder, _PART.format(index))

    def _written(self) -> set[int]:
        """Indexes of complete part files; temporary files of killed writers are removed."""
        import pyarrow as pa

        done = set()
        for name in os.listdir(self.folder):
            path = os.path.join(self.folder, name)
            if ".tmp-" in name:
                os.unlink(path)
            elif name.startswith("part-") and name.endswith(".arrow") and name[5:-6].isdigit():
                try:
                    read_part(path)  # a part cut short (power loss) has no footer: redo it
                except (pa.ArrowException, OSError):
                    os.unlink(path)
                    continue
                done.add(int(name[5:-6]))
        return done

    def _remove_stale(self) -> None:
        """Remove staging folders of this output left by jobs whose input or model has changed."""
        for name in os.listdir(self.parent):
            path = os.path.join(self.parent, name)
            if name.startswith(self.prefix) and path != self.folder and os.path.isdir(path):
                fd = _lock(path)
                if fd != -1:  # not in use
                    shutil.rmtree(path, ignore_errors=True)
                    if fd is not None:
                        os.close(fd)

    def remove(self) -> None:
        """Delete the staging folder (the output is complete)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def write_part(table: pa.Table, path: str) -> None:
    """Write one chunk's output as an Arrow IPC file, atomically (temporary file + rename).

    Arrow IPC round-trips every type and value exactly and costs little more than a copy.
    """
    import pyarrow as pa

    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as ipc:
            ipc.write_table(table)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_part(path: str) -> pa.Table:
    """A part file's table (memory-mapped: no copy)."""
    import pyarrow as pa

    return pa.ipc.open_file(pa.memory_map(path)).read_all()


def _lock(folder: str) -> int | None:
    """An exclusive lock on `folder` held by the returned descriptor; -1 when another process holds
    it; None where file locks are not available."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    fd = os.open(os.path.join(folder, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return -1
    return fd
