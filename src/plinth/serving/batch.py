"""Batch inference: score a large Parquet or CSV file, or a folder of them, with a registered model.

`batch_predict` streams the input in chunks of `batch_size` rows (the input is never loaded
whole), scores each chunk with `Model.predict` (so every chunk is checked against the
signature) and writes one Parquet file: the id columns asked for, the predictions
(`prediction`, or `prediction_0..k` for 2-D outputs) and `model_version` (e.g. "iris-clf/3").

Resumable: each chunk's output is written atomically (temporary file + rename) as a part
file (Arrow IPC: exact, and about as cheap as a copy) in a staging folder next to the output,
named from a hash of the input's identity (paths, sizes, modification times), the model
version id and the options. Running the same call again after a crash or `kill -9` skips the
parts already written. A thread appends the parts, in order, to the output as they appear
(temporary file, renamed when complete) and the staging folder is then removed. The output
is always built from the part files with fixed settings, so a resumed run gives the same
bytes as an uninterrupted one.

Reading (and conversion to pandas), scoring and writing overlap in three threads, so on a
machine with spare cores the wall time is about that of the model's own predict calls.
With `workers` > 1, chunks are scored in spawned processes (a script calling it needs the
usual `if __name__ == "__main__":` guard). With `executor="ray"`, chunks are scored by Ray tasks
across a cluster (`batch_ray`); reading, the part files and the output stay in this process,
so resuming and lineage are the same whichever executor scored a chunk.

Each call is a tracked run in experiment "batch-predict" (params, metrics rows, rows_per_s,
chunks, chunks_skipped) with lineage edges: ("dataset_input", sha256 of the input) consumed_by
the run, the run used_model the model version, and the run produced ("blob", sha256 of the
output), which is also stored as the run's artifact `predictions.parquet` unless
`store_output=False`. The input is hashed in a background thread while chunks are scored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plinth.core.entities import LineageEdge, ModelVersion
from plinth.core.errors import ConflictError, InvalidInput, PlinthError
from plinth.core.ids import now_ms
from plinth.registry.loaded import Model
from plinth.registry.models import load_version, open_model, resolve
from plinth.tracking.context import Backend, backend
from plinth.tracking.run import ActiveRun, start_run

if TYPE_CHECKING:
    import pyarrow as pa

    from plinth.registry.package import Package

DEFAULT_BATCH_SIZE = 100_000
EXPERIMENT = "batch-predict"
OUTPUT_ARTIFACT = "predictions.parquet"
PARQUET = (".parquet", ".pq")
CSV = (".csv",)
LAYOUT = 1
"""Version of the staging layout; part folders of another layout are never reused."""
RESERVED = ("prediction", "model_version")
_PART = "part-{:08d}.arrow"
_HASH_BLOCK = 4 << 20
_CSV_BLOCK = 16 << 20  # bytes per CSV read block (types are inferred from the first one)


class PredictionError(PlinthError):
    """The model raised an error (or returned the wrong number of rows) while scoring a chunk."""


@dataclass(frozen=True)
class BatchResult:
    """What one `batch_predict` call did."""

    output: str
    rows: int
    chunks: int
    chunks_skipped: int
    model_version: str
    run_id: str
    input_digest: str
    output_digest: str
    seconds: float

    @property
    def rows_per_s(self) -> float:
        """Rows written per second of this call (skipped chunks included)."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Input:
    """The files to read, in order, and their format ("parquet" or "csv")."""

    path: str
    files: tuple[str, ...]
    fmt: str
    folder: bool

    def identity(self) -> list[tuple[str, int, int]]:
        """(path, size, mtime_ns) of every file: changes whenever a file is replaced or edited."""
        return [(f, (st := os.stat(f)).st_size, st.st_mtime_ns) for f in self.files]

    def where(self, first: int, count: int) -> str:
        """`rows 0-99999 of data.parquet`, for error messages."""
        return f"rows {first}-{first + count - 1} of {self.path}"


@dataclass(frozen=True)
class _Job:
    """What a scorer needs besides the model; picklable, so worker processes get it too."""

    source: _Input
    ref: str
    id_columns: tuple[str, ...]
    proba: bool
    batch_size: int


@dataclass
class _Counts:
    """Rows and chunks done so far."""

    rows: int = 0
    rows_scored: int = 0
    chunks: int = 0
    skipped: int = 0
    seconds: float = 0.0
    _start: float = field(default_factory=time.perf_counter, repr=False)


def batch_predict(
    model_ref: str,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    id_columns: str | Sequence[str] | None = None,
    workers: int = 1,
    proba: bool = False,
    store_output: bool = True,
    progress: bool = True,
    executor: str = "local",
    ray_address: str | None = None,
) -> BatchResult:
    """Score a large Parquet or CSV file (or a folder of them) in chunks, resumably, as a tracked run.

    Args:
        model_ref: 'name', 'name/3' or 'name@alias'.
        input: a .parquet/.pq or .csv file, or a folder of such files (read in path order;
            hidden and `_`-prefixed files such as `_SUCCESS` are ignored).
        output: the .parquet file to write (replaced atomically when done).
        batch_size: rows per chunk; each chunk is validated, scored and written on its own.
        id_columns: input columns copied into the output (and not passed to the model).
        workers: processes scoring chunks in parallel (1: score in this process).
        proba: write class probabilities (`prediction_0..k`) instead of predictions.
        store_output: also store the output as the run's artifact `predictions.parquet`.
        progress: show a progress bar with rows/s (only when stderr is a terminal).
        executor: "local" (this process, or `workers` processes) or "ray" (Ray tasks across the
            cluster at `ray_address`: "auto", "HOST:PORT", "ray://HOST:10001"; default RAY_ADDRESS).

    Returns:
        A BatchResult. Calling again with the same arguments after a crash resumes.

    Raises:
        InvalidInput: a missing or unreadable input, an unsupported extension, an output that
            is not .parquet, or input that does not fit the model's signature.
        PredictionError: the model failed on a chunk.
    """
    started = time.perf_counter()
    batch_size, workers = _positive("batch_size", batch_size), _positive("workers", workers)
    if executor not in ("local", "ray"):
        raise InvalidInput(f"executor={executor!r}: use 'local' or 'ray'.")
    ids = _id_columns(id_columns)
    source = _open_input(input)
    out = _check_output(output, source)
    be = backend()
    mv = resolve(model_ref, be)
    model = load_version(be, mv)
    schema, total = _inspect(source)
    _check_columns(source, schema, ids, model, total)
    job = _Job(source, mv.ref, ids, bool(proba), batch_size)
    stage = _Staging(out, _staging_key(job, mv))
    hasher = _Hasher(source)
    try:
        with stage:
            params = _params(model_ref, mv, job, out, workers, executor)
            with start_run(EXPERIMENT, params=params) as run:
                spec = _worker_spec(be, mv, workers, executor, ray_address)
                counts = _score(job, stage, model, spec, total, progress, out)
                digest = _finish(be, run, job, mv, out, counts, hasher.result(), store_output)
            stage.remove()  # still locked: no other process can be using it
    finally:
        hasher.stop()
    return BatchResult(
        out,
        counts.rows,
        counts.chunks,
        counts.skipped,
        mv.ref,
        run.id,
        hasher.result(),
        digest,
        time.perf_counter() - started,
    )


# arguments ---------------------------------------------------------------------------------------
def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be a positive integer, got {value!r}.")
    return value


def _id_columns(value: str | Sequence[str] | None) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value or ())
    if not all(isinstance(n, str) and n for n in names):
        raise InvalidInput(f"id_columns must be column names, got {value!r}.")
    clash = [n for n in names if n in RESERVED or n.startswith("prediction_")]
    if clash:
        raise InvalidInput(f"Id column {clash[0]!r} clashes with an output column; rename it in the input.")
    return tuple(dict.fromkeys(names))


def _open_input(path: str | os.PathLike[str]) -> _Input:
    """The files under `path` and their format; InvalidInput for anything that cannot be read."""
    full = os.path.abspath(os.fspath(path))
    if os.path.isdir(full):
        files = _folder_files(full)
        formats = {fmt for f in files if (fmt := _format_of(f))}
        if len(formats) > 1:
            raise InvalidInput(f"Input folder {full!r} mixes Parquet and CSV files; use one format.")
        return _Input(full, tuple(files), formats.pop(), True)
    if not os.path.isfile(full):
        raise InvalidInput(f"Input {os.fspath(path)!r} does not exist.")
    fmt = _format_of(full)
    if fmt is None:
        raise InvalidInput(f"Cannot read {os.fspath(path)!r}: use a .parquet, .pq or .csv file, or a folder.")
    return _Input(full, (full,), fmt, False)


def _format_of(path: str) -> str | None:
    lower = path.lower()
    return "parquet" if lower.endswith(PARQUET) else "csv" if lower.endswith(CSV) else None


def _folder_files(folder: str) -> list[str]:
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        for name in sorted(names):
            if name.startswith((".", "_")):
                continue
            if _format_of(name) is None:
                raise InvalidInput(
                    f"Input folder {folder!r} holds {os.path.relpath(os.path.join(root, name), folder)!r}, "
                    "which is not .parquet, .pq or .csv; move it out (or prefix it with '_')."
                )
            found.append(os.path.join(root, name))
    if not found:
        raise InvalidInput(f"Input folder {folder!r} holds no .parquet or .csv files.")
    return sorted(found, key=lambda f: os.path.relpath(f, folder).split(os.sep))


def _check_output(output: str | os.PathLike[str], source: _Input) -> str:
    out = os.path.abspath(os.fspath(output))
    if not out.lower().endswith(PARQUET):
        raise InvalidInput(f"Output {os.fspath(output)!r} must be a .parquet file.")
    if os.path.isdir(out):
        raise InvalidInput(f"Output {os.fspath(output)!r} is a folder; name a .parquet file.")
    if out in source.files or (source.folder and out.startswith(source.path + os.sep)):
        raise InvalidInput(
            f"Output {os.fspath(output)!r} would overwrite or join the input; write elsewhere."
        )
    return out


def _check_columns(
    source: _Input, schema: pa.Schema, ids: tuple[str, ...], model: Model, total: int | None
) -> None:
    """Fail before any work when the columns cannot fit: missing id columns, signature mismatch."""
    missing = [n for n in ids if n not in schema.names]
    if missing:
        raise InvalidInput(
            f"Id column {missing[0]!r} is not in {source.path}; its columns are: {', '.join(schema.names)}."
        )
    if total == 0:
        raise InvalidInput(f"Input {source.path} holds no rows.")
    features = schema.empty_table().drop_columns(list(ids)).to_pandas()
    try:
        model.validate(features)
    except InvalidInput as exc:
        ref = model.model_version.ref
        raise InvalidInput(f"{source.path} does not fit model {ref}. {exc}", exc.problems) from exc


def _params(ref: str, mv: ModelVersion, job: _Job, out: str, workers: int, executor: str) -> dict[str, Any]:
    return {
        "executor": executor,
        "model": ref,
        "model_version": mv.ref,
        "input": job.source.path,
        "output": out,
        "batch_size": job.batch_size,
        "workers": workers,
        "id_columns": ",".join(job.id_columns),
        "output_kind": "proba" if job.proba else "prediction",
    }


# reading -----------------------------------------------------------------------------------------
def _inspect(source: _Input) -> tuple[pa.Schema, int | None]:
    """The input's Arrow schema and row count (None for CSV, which would need a full read)."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    with _read_errors(source):
        if source.folder:
            return _dataset(source).schema, _parquet_rows(source)
        if source.fmt == "parquet":
            parquet = pq.ParquetFile(source.path)
            return parquet.schema_arrow, parquet.metadata.num_rows
        with pcsv.open_csv(source.path, read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK)) as reader:
            return reader.schema, None


def _parquet_rows(source: _Input) -> int | None:
    import pyarrow.parquet as pq

    if source.fmt != "parquet":
        return None
    return sum(pq.read_metadata(f).num_rows for f in source.files)


def _dataset(source: _Input) -> Any:
    import pyarrow.dataset as pds

    fmt: Any = source.fmt
    if fmt == "parquet":  # pre-buffering would hold whole files in memory
        options = pds.ParquetFragmentScanOptions(pre_buffer=False)
        fmt = pds.ParquetFileFormat(default_fragment_scan_options=options)
    return pds.dataset(list(source.files), format=fmt)


@contextlib.contextmanager
def _read_errors(source: _Input) -> Iterator[None]:
    """Arrow's read errors (bad CSV row, corrupt Parquet, unreadable file) as InvalidInput."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise InvalidInput(f"Input {source.path} changed while it was read: {exc}") from exc
        raise InvalidInput(f"Cannot read {source.path}: {exc}") from exc


def _batches(source: _Input, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The input's record batches, in file order, streamed."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    with _read_errors(source):
        if source.folder:
            # ordered by file, then row; read-ahead kept small so memory stays bounded
            yield from _dataset(source).to_batches(
                batch_size=batch_size, batch_readahead=2, fragment_readahead=1
            )
        elif source.fmt == "parquet":
            with pq.ParquetFile(source.path, pre_buffer=False) as parquet:  # pre_buffer reads it all
                yield from parquet.iter_batches(batch_size=batch_size)
        else:
            options = pcsv.ReadOptions(block_size=_CSV_BLOCK)
            with pcsv.open_csv(source.path, read_options=options) as reader:
                yield from reader


def _chunks(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Re-cut a stream of batches into tables of exactly `size` rows (the last one may be shorter)."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if not pending and batch.num_rows == size:
            yield pa.Table.from_batches([batch])
            continue
        pending.append(batch)
        count += batch.num_rows
        while count >= size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, size)
            rest = table.slice(size)
            pending, count = [b for b in rest.to_batches() if b.num_rows], rest.num_rows
    if pending:
        yield pa.Table.from_batches(pending)


# scoring -----------------------------------------------------------------------------------------
class _Scorer:
    """Scores one chunk: its output rows, or an error that names the rows and the problem."""

    def __init__(self, job: _Job, model: Model) -> None:
        self.job = job
        self.model = model
        self.predict = model.predict_proba if job.proba else model.predict

    def score(self, index: int, table: pa.Table, frame: Any = None) -> pa.Table:
        """The output rows of chunk `index`: id columns, predictions, model version.

        `frame` is the chunk's features as pandas, where already converted.
        """
        if frame is None:
            frame = _features(table, self.job)
        where = self.job.source.where(index * self.job.batch_size, table.num_rows)
        try:
            predictions = self.predict(frame)
        except InvalidInput as exc:
            raise InvalidInput(f"{where[0].upper()}{where[1:]}: {exc}", exc.problems) from exc
        except PlinthError:
            raise
        except Exception as exc:
            raise PredictionError(
                f"Model {self.job.ref} failed on {where}: {type(exc).__name__}: {exc}"
            ) from exc
        return _output_table(table, predictions, self.job, where)


def _output_table(table: pa.Table, predictions: Any, job: _Job, where: str) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    array = np.asarray(predictions)
    rows = table.num_rows
    if array.ndim == 0 or len(array) != rows:
        got = "a scalar" if array.ndim == 0 else f"{len(array)} predictions"
        raise PredictionError(f"Model {job.ref} returned {got} for the {rows} {where}.")
    columns: dict[str, Any] = {name: table.column(name) for name in job.id_columns}
    try:
        if array.ndim == 1:
            columns["prediction"] = pa.array(array)
        else:
            flat = np.ascontiguousarray(array.reshape(rows, -1).T)
            for j, values in enumerate(flat):
                columns[f"prediction_{j}"] = pa.array(values)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise PredictionError(f"Predictions of {job.ref} for {where} cannot be stored: {exc}") from exc
    columns["model_version"] = pa.repeat(pa.scalar(job.ref, pa.string()), rows)
    return pa.table(columns)


def _write_options(schema: pa.Schema) -> dict[str, Any]:
    """The output's fixed Parquet settings: snappy; dictionaries only for labels and the version."""
    import pyarrow as pa

    labels = [f.name for f in schema if f.name in RESERVED and not pa.types.is_floating(f.type)]
    return {"compression": "snappy", "use_dictionary": labels}


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


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _score(
    job: _Job,
    stage: _Staging,
    model: Model,
    worker_spec: _Workers | None,
    total: int | None,
    show: bool,
    output: str,
) -> _Counts:
    """Score every chunk not yet in `stage` and build `output` from all the parts.

    Three stages overlap: a thread reads the next chunks (and converts them to pandas), this
    thread (or the worker processes) scores, and a thread writes parts and the output.
    """
    counts = _Counts()
    combiner = _Combiner(stage, output)
    chunks = _Prefetch(_prepared(job, stage.done, convert=worker_spec is None))
    try:
        with progress_bar(f"Scoring with {job.ref}", total, show) as advance:
            todo = _skip_done(chunks, counts, advance, combiner)
            if worker_spec is None:
                scorer = _Scorer(job, model)
                for index, table, frame in todo:
                    combiner.add(index, scorer.score(index, table, frame))
                    _scored(counts, table.num_rows, advance)
            elif worker_spec.ray:
                from plinth.serving.batch_ray import score_on_ray

                score_on_ray(job, worker_spec, todo, lambda rows: _scored(counts, rows, advance), combiner)
            else:
                _score_in_pool(job, stage, worker_spec, todo, counts, advance, combiner)
        if counts.chunks == 0:
            raise InvalidInput(f"Input {job.source.path} holds no rows.")
        combiner.finish(counts.chunks)
    except BaseException:
        combiner.abort()
        raise
    finally:
        chunks.close()
    counts.seconds = time.perf_counter() - counts._start
    return counts


_Chunk = tuple[int, "pa.Table", Any]
"""(index, Arrow table, pandas features or None): one chunk of input."""


def _prepared(job: _Job, done: set[int], convert: bool) -> Iterator[_Chunk]:
    """Every chunk of the input; the ones still to score come with their features as pandas."""
    for index, table in enumerate(_chunks(_batches(job.source, job.batch_size), job.batch_size)):
        yield index, table, (_features(table, job) if convert and index not in done else None)


def _features(table: pa.Table, job: _Job) -> Any:
    """The model's input: the chunk without its id columns, as a pandas DataFrame."""
    return (table.drop_columns(list(job.id_columns)) if job.id_columns else table).to_pandas()


def _skip_done(
    chunks: Iterable[_Chunk],
    counts: _Counts,
    advance: Callable[[int], None],
    combiner: _Combiner,
) -> Iterator[_Chunk]:
    """The chunks whose part is not written yet; counts every chunk, hands done ones to `combiner`."""
    for index, table, frame in chunks:
        counts.chunks += 1
        counts.rows += table.num_rows
        if index in combiner.done:
            counts.skipped += 1
            combiner.add(index)
            advance(table.num_rows)
            continue
        yield index, table, frame


class _Prefetch:
    """Runs an iterator in a thread, a few items ahead of the consumer (reading overlaps scoring)."""

    def __init__(self, items: Iterator[Any], depth: int = 2) -> None:
        self._items = items
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plinth-batch-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._offer(item):
                    return
            self._offer(_END)
        except BaseException as exc:
            self._offer(_Failed(exc))
        finally:
            with contextlib.suppress(Exception):
                self._items.close()  # type: ignore[attr-defined]

    def _offer(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while (item := self._queue.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop reading ahead and wait for the thread."""
        self._stop.set()
        self._thread.join()


_END = object()


@dataclass(frozen=True)
class _Failed:
    """An exception raised while reading ahead, to re-raise in the consumer."""

    error: BaseException


def _scored(counts: _Counts, rows: int, advance: Callable[[int], None]) -> None:
    counts.rows_scored += rows
    advance(rows)


# worker processes --------------------------------------------------------------------------------
_worker_scorer: _Scorer | None = None


@dataclass(frozen=True)
class _Workers:
    """How many worker processes, and what they need to load the model without the store."""

    count: int
    version: ModelVersion
    package: Package  # checked by the workers as they read it
    ray: bool = False
    ray_address: str | None = None


def _worker_spec(
    be: Backend, mv: ModelVersion, workers: int, executor: str = "local", ray_address: str | None = None
) -> _Workers | None:
    """None for scoring in this process; else the model's local package for the workers."""
    if workers == 1 and executor == "local":
        return None
    from plinth.registry.package import materialize

    package = materialize(be.blobs, mv, os.path.join(be.settings.home, "cache", "models"))
    return _Workers(workers, mv, package, executor == "ray", ray_address)


def _init_worker(job: _Job, mv: ModelVersion, package: Package) -> None:
    global _worker_scorer
    _worker_scorer = _Scorer(job, open_model(mv, package))


def _work(index: int, table: pa.Table, path: str) -> int:
    """In a worker: score chunk `index` and write its part file; returns its row count."""
    assert _worker_scorer is not None
    write_part(_worker_scorer.score(index, table), path)
    return table.num_rows


def _score_in_pool(
    job: _Job,
    stage: _Staging,
    spec: _Workers,
    todo: Iterator[_Chunk],
    counts: _Counts,
    advance: Callable[[int], None],
    writer: _Combiner,
) -> None:
    """Score chunks in `workers` spawned processes, at most two chunks each in flight.

    Workers write the part files; `writer` appends them to the output in chunk order.
    """
    context = multiprocessing.get_context("spawn")  # no fork of a process running threads
    initargs = (job, spec.version, spec.package)
    pool = ProcessPoolExecutor(spec.count, mp_context=context, initializer=_init_worker, initargs=initargs)
    running: dict[Future[int], int] = {}
    try:
        for index, table, _frame in todo:
            running[pool.submit(_work, index, table, stage.part(index))] = index
            if len(running) >= 2 * spec.count:
                _collect(running, counts, advance, writer, FIRST_COMPLETED)
        _collect(running, counts, advance, writer, ALL_COMPLETED)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _collect(
    running: dict[Future[int], int],
    counts: _Counts,
    advance: Callable[[int], None],
    writer: _Combiner,
    when: str,
) -> None:
    done, _rest = wait(running, return_when=when)
    for future in sorted(done, key=running.__getitem__):
        try:
            rows = future.result()
        except BrokenProcessPool as exc:
            raise PredictionError(
                "A worker process failed to start or died while scoring (out of memory, or killed); "
                "run the same call again to resume, with fewer workers or a smaller batch size."
            ) from exc
        writer.add(running.pop(future))
        _scored(counts, rows, advance)


class _Combiner:
    """Writes part files and appends them, in chunk order, to the output's temporary file; in a thread.

    The output is always built from the part files as read back from disk, whether they were
    written just now or by an earlier, interrupted call: that is what makes a resumed output
    byte-identical to an uninterrupted one. Runs beside the scoring, so combining costs
    little extra time; `finish` renames the finished file into place.
    """

    def __init__(self, stage: _Staging, output: str) -> None:
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


# staging -----------------------------------------------------------------------------------------
def _staging_key(job: _Job, mv: ModelVersion) -> str:
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


class _Staging:
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

    def __enter__(self) -> _Staging:
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


def _conform(table: pa.Table, schema: pa.Schema, index: int) -> pa.Table:
    import pyarrow as pa

    try:
        return table.cast(schema)
    except (pa.ArrowException, ValueError) as exc:
        raise PredictionError(
            f"Chunk {index} has columns {table.schema.to_string(show_schema_metadata=False)!r}, which do "
            f"not match the earlier chunks' {schema.to_string(show_schema_metadata=False)!r}: {exc}"
        ) from exc


# lineage -----------------------------------------------------------------------------------------
class _Hasher:
    """sha256 of the input, computed in a background thread (a folder: over each file's digest)."""

    def __init__(self, source: _Input) -> None:
        self._source = source
        self._stop = threading.Event()
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="plinth-input-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            digests = [(f, *self._file(f)) for f in self._source.files]
            if self._source.folder:
                lines = "".join(f"{os.path.relpath(f, self._source.path)}\t{n}\t{d}\n" for f, d, n in digests)
                self._digest = hashlib.sha256(lines.encode()).hexdigest()
            else:
                self._digest = digests[0][1]
        except BaseException as exc:
            self._error = exc

    def _file(self, path: str) -> tuple[str, int]:
        h = hashlib.sha256()
        size = 0
        buffer = bytearray(_HASH_BLOCK)
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as fh:
            while count := fh.readinto(buffer):
                if self._stop.is_set():
                    raise InterruptedError("stopped")
                h.update(view[:count])  # releases the GIL: scoring goes on meanwhile
                size += count
        return h.hexdigest(), size

    def result(self) -> str:
        """The digest (waits for the thread)."""
        self._thread.join()
        if self._error is not None:
            raise InvalidInput(f"Cannot hash input {self._source.path}: {self._error}") from self._error
        assert self._digest is not None
        return self._digest

    def stop(self) -> None:
        """Ask the thread to give up (after a failure)."""
        self._stop.set()


def _finish(
    be: Backend,
    run: ActiveRun,
    job: _Job,
    mv: ModelVersion,
    out: str,
    counts: _Counts,
    input_digest: str,
    store_output: bool,
) -> str:
    """Record metrics, the output artifact and the lineage edges; returns the output's digest."""
    from plinth.store.blobs import file_digest

    if store_output:
        [artifact] = run.log_artifact(out, OUTPUT_ARTIFACT)
        digest = artifact.digest
    else:
        digest = file_digest(out)[0]
    rate = counts.rows_scored / counts.seconds if counts.seconds > 0 else 0.0
    run.log_metrics(
        {
            "rows": counts.rows,
            "rows_scored": counts.rows_scored,
            "rows_per_s": rate,
            "chunks": counts.chunks,
            "chunks_skipped": counts.skipped,
            "seconds": counts.seconds,
        }
    )
    run.set_tags({"input_digest": input_digest, "output_digest": digest})
    at = now_ms()
    source = job.source
    be.store.add_edges(
        [
            LineageEdge(
                "dataset_input",
                input_digest,
                "consumed_by",
                "run",
                run.id,
                at,
                {"role": "inference", "path": source.path, "format": source.fmt, "files": len(source.files)},
            ),
            LineageEdge("run", run.id, "used_model", "model_version", mv.id, at, {"ref": mv.ref}),
            LineageEdge(
                "run",
                run.id,
                "produced",
                "blob",
                digest,
                at,
                {"path": out, "rows": counts.rows, "artifact": OUTPUT_ARTIFACT if store_output else None},
            ),
        ]
    )
    return digest


# progress ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def progress_bar(description: str, total: int | None, show: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield `advance(rows)`; draws a bar with rows/s on stderr when it is a terminal."""
    if not show or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total, rate="")

        def advance(rows: int) -> None:
            speed = bar.tasks[0].speed
            bar.update(task, advance=rows, rate=f"{speed:,.0f} rows/s" if speed else "")

        yield advance
