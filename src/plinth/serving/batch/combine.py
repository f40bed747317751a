"""Combining: part files appended, in chunk order, to the output's Parquet file, in a thread.

The output is always built from the part files as read back from disk, whether they were written
just now or by an earlier, interrupted call, and always with the same Parquet settings: that is
what makes a resumed output byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from typing import TYPE_CHECKING, Any

from plinth.core.errors import ModelFailed
from plinth.serving.batch.scorer import RESERVED
from plinth.serving.batch.staging import Staging, read_part, write_part

if TYPE_CHECKING:
    import pyarrow as pa


class Combiner:
    """Writes part files and appends them, in chunk order, to the output's temporary file; in a thread.

    Runs beside the scoring, so combining costs little extra time; `finish` renames the finished
    file into place.
    """

    def __init__(self, stage: Staging, output: str) -> None:
        self._stage = stage
        self.done = stage.done
        self._output = output
        self._tmp = os.path.join(stage.folder, f"output.parquet.tmp-{os.getpid()}")
        self._queue: queue.Queue[tuple[int, pa.Table | None] | None] = queue.Queue(maxsize=2)
        self._writer: Any = None
        self._next = 0
        self._ready: set[int] = set()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="plinth-batch-combine", daemon=True)
        self._thread.start()

    def add(self, index: int, table: pa.Table | None = None) -> None:
        """Part `index` exists on disk (`table` None) or is to be written from `table`."""
        self._put((index, table))

    def _put(self, item: tuple[int, pa.Table | None] | None) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                index, table = item
                if table is not None:
                    write_part(table, self._stage.part(index))
                self._ready.add(index)
                while self._next in self._ready:
                    self._append(self._next)
                    self._ready.discard(self._next)
                    self._next += 1
        except BaseException as exc:
            self._error = exc

    def _append(self, index: int) -> None:
        import pyarrow.parquet as pq

        table = read_part(self._stage.part(index))
        if self._writer is None:
            schema = table.schema
            self._writer = pq.ParquetWriter(self._tmp, schema, **_write_options(schema))
        elif not table.schema.equals(self._writer.schema):
            table = _conform(table, self._writer.schema, index)
        self._writer.write_table(table)

    def finish(self, chunks: int) -> None:
        """Wait for every part, then move the complete output into place (durably)."""
        self._put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._next != chunks:  # pragma: no cover - a bug, not a user error
            raise RuntimeError(f"Combined {self._next} of {chunks} parts.")
        self._writer.close()
        _fsync(self._tmp)
        os.replace(self._tmp, self._output)

    def abort(self) -> None:
        """Stop the thread and remove the temporary output; parts already written stay."""
        if self._thread.is_alive():
            with contextlib.suppress(BaseException):
                self._put(None)
            self._thread.join()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)


def _write_options(schema: pa.Schema) -> dict[str, Any]:
    """The output's fixed Parquet settings: snappy; dictionaries only for labels and the version."""
    import pyarrow as pa

    labels = [f.name for f in schema if f.name in RESERVED and not pa.types.is_floating(f.type)]
    return {"compression": "snappy", "use_dictionary": labels}


def _conform(table: pa.Table, schema: pa.Schema, index: int) -> pa.Table:
    import pyarrow as pa

    try:
        return table.cast(schema)
    except (pa.ArrowException, ValueError) as exc:
        raise ModelFailed(
            f"Chunk {index} has columns {table.schema.to_string(show_schema_metadata=False)!r}, which do "
            f"not match the earlier chunks' {schema.to_string(show_schema_metadata=False)!r}: {exc}"
        ) from exc


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
