"""Reading the input as a stream of chunks of exactly `batch_size` rows; the input is never loaded whole.

Arrow's read errors (a bad CSV row, a corrupt Parquet file, a file removed while it is read)
come out as InvalidInput naming the input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from plinth.core.errors import InvalidInput
from plinth.serving.batch.inputs import Input

if TYPE_CHECKING:
    import pyarrow as pa

_CSV_BLOCK = 16 << 20  # bytes per CSV read block (types are inferred from the first one)


def inspect(source: Input) -> tuple[pa.Schema, int | None]:
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


def chunks(source: Input, size: int) -> Iterator[pa.Table]:
    """The input as tables of exactly `size` rows (the last one may be shorter), streamed."""
    return _recut(_batches(source, size), size)


def _parquet_rows(source: Input) -> int | None:
    import pyarrow.parquet as pq

    if source.fmt != "parquet":
        return None
    return sum(pq.read_metadata(f).num_rows for f in source.files)


def _dataset(source: Input) -> Any:
    import pyarrow.dataset as pds

    fmt: Any = source.fmt
    if fmt == "parquet":  # pre-buffering would hold whole files in memory
        options = pds.ParquetFragmentScanOptions(pre_buffer=False)
        fmt = pds.ParquetFileFormat(default_fragment_scan_options=options)
    return pds.dataset(list(source.files), format=fmt)


@contextlib.contextmanager
def _read_errors(source: Input) -> Iterator[None]:
    """Arrow's read errors (bad CSV row, corrupt Parquet, unreadable file) as InvalidInput."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise InvalidInput(f"Input {source.path} changed while it was read: {exc}") from exc
        raise InvalidInput(f"Cannot read {source.path}: {exc}") from exc


def _batches(source: Input, batch_size: int) -> Iterator[pa.RecordBatch]:
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


def _recut(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
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
