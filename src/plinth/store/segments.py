"""Prediction segments: logged requests as columns, written as Arrow IPC files (one blob each).

A segment holds one model's requests, oldest first, one table row per row a request sent (and
one row for a request that sent none, such as a failed one); the request's own columns are
repeated on each of its rows:

    seq           int64    the request's key within the segment (its part's base + part_row)
    request_id    string
    time_ms       int64
    version       int64
    route         string   primary, canary or shadow
    latency_ms    float64
    status        int64    HTTP status of the answer
    n_rows        int64    rows in the request, as logged
    subject_id    string   null when none was given
    row           int64    this row's place in its request (0: the first)
    n_in          int64    input rows of the request
    n_out         int64    predictions of the request
    inputs_text   string   the inputs as logged (JSON), on the request's first row only; null
                           for predictions logged as columns (`plinth.log_predictions`)
    outputs_text  string   likewise the outputs (JSON, or a failed request's error message)
    in:NAME       one column per named input (records, or a `columns`/`data` body)
    at:N          one column per positional input (rows sent as lists, `data` without columns)
    output        the row's prediction: a class, a value, or a list of probabilities

An input or the output holds typed values (int64, float64, string, bool, lists) where its
values share a type; where they do not, it holds each value as JSON text, marked by the field
metadata `plinth.json`. A row past a request's inputs (`row >= n_in`) or predictions
(`row >= n_out`) holds nulls there.

Segments are read as columns (`monitoring` reads a window's features without parsing JSON);
`decode_logs` turns one back into `PredictionLog`s, with the logged text as it was.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.core.entities import PredictionLog

if TYPE_CHECKING:
    import pyarrow as pa

FORMAT = "1"
DIRECT_ROWS = 500
"""A batch of at least this many logs is written as a segment of its own; a smaller one as rows
holding JSON, gathered into a segment once `COMPACT_ROWS` of them wait."""
COMPACT_ROWS = 10_000
"""Requests of a model waiting as JSON rows that make a compaction worthwhile (and the most a
read parses)."""
SEGMENT_ROWS = 200_000
"""The most requests one compaction gathers from rows into a segment."""
SMALL_SEGMENT = 250_000
"""Segments with fewer requests are merged, `MERGE_FANIN` of a size at a time."""
MERGE_FANIN = 8
INPUT = "in:"
POSITION = "at:"
OUTPUT = "output"
JSON_FIELD = b"plinth.json"
REQUEST_COLUMNS = (
    "seq",
    "request_id",
    "time_ms",
    "version",
    "route",
    "latency_ms",
    "status",
    "n_rows",
    "subject_id",
)
ROW_COLUMNS = ("row", "n_in", "n_out")
TEXT_COLUMNS = ("inputs_text", "outputs_text")
SCAN_COLUMNS = (*REQUEST_COLUMNS, *ROW_COLUMNS)
"""The columns every read returns; inputs and the output are added, the text columns on demand."""
_INTS = ("seq", "time_ms", "version", "status", "n_rows", "row", "n_in", "n_out")
_ONE = (1, 1)


def is_feature(name: str) -> bool:
    """True for an input column (`in:NAME` or `at:N`)."""
    return name.startswith((INPUT, POSITION))


def encode_logs(logs: Sequence[PredictionLog], seqs: Iterable[int]) -> pa.Table:
    """Logged requests as a segment table (their inputs and outputs parsed into columns).

    Args:
        logs: the requests, in the order they go in the segment.
        seqs: each request's key within the segment.
    """
    import orjson

    records: list[Any] = []
    outputs: list[Any] = []
    counts: list[tuple[int, int]] = []
    for entry in logs:
        rows = _input_rows(entry.inputs, orjson)
        answers = _answers(entry, orjson)
        if len(rows) == len(answers) == 1:  # the common request: one row, one prediction
            records.append(rows[0])
            outputs.append(answers[0])
            counts.append(_ONE)
            continue
        height = max(len(rows), len(answers), 1)
        records += rows
        records += [None] * (height - len(rows))
        outputs += answers
        outputs += [None] * (height - len(answers))
        counts.append((len(rows), len(answers)))
    fields = dict(zip(PredictionLog._fields, zip(*logs, strict=True), strict=True)) if logs else {}
    request = {name: list(fields.get(name, ())) for name in REQUEST_COLUMNS if name != "seq"}
    request |= {"seq": list(seqs), "inputs_text": list(fields.get("inputs", ()))}
    request["outputs_text"] = list(fields.get("outputs", ()))
    return _assemble(request, counts, _feature_columns(records), _values(outputs))


def encode_frame(
    request: dict[str, Any], inputs: dict[str, Any], outputs: Any, seqs: Sequence[int]
) -> pa.Table:
    """One-row requests given as columns (what `plinth.log_predictions` logs) as a segment table.

    Args:
        request: the request columns of `REQUEST_COLUMNS` but `seq`, one value per request.
        inputs: input name -> values (arrays or lists, one per request); names as in `in:NAME`.
        outputs: one prediction per request (an array, or a list of values or lists).
        seqs: each request's key within the segment.
    """
    n = len(seqs)
    columns = {f"{INPUT}{name}": _array(values) for name, values in inputs.items()}
    texts = {"inputs_text": [None] * n, "outputs_text": [None] * n}
    return _assemble({**request, **texts, "seq": list(seqs)}, [(1, 1)] * n, columns, _array(outputs))


def _assemble(
    request: dict[str, Any],
    counts: Sequence[tuple[int, int]],
    features: dict[str, tuple[pa.Array, bool]],
    output: tuple[pa.Array, bool],
) -> pa.Table:
    """The segment table: request columns repeated over each request's rows, then the rows."""
    import pyarrow as pa

    sizes = np.array([max(i, o, 1) for i, o in counts], dtype=np.int64)
    single = not len(sizes) or int(sizes.max()) == 1  # one row per request: nothing to repeat
    owner = None if single else pa.array(np.repeat(np.arange(len(sizes)), sizes))
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    arrays: dict[str, pa.Array] = {}
    for name in REQUEST_COLUMNS:
        column = _request_array(name, request[name])
        arrays[name] = column if owner is None else column.take(owner)
    arrays["row"] = pa.array(np.arange(int(sizes.sum()), dtype=np.int64) - starts)
    arrays["n_in"] = pa.array(np.repeat(np.array([i for i, _ in counts], dtype=np.int64), sizes))
    arrays["n_out"] = pa.array(np.repeat(np.array([o for _, o in counts], dtype=np.int64), sizes))
    for name in TEXT_COLUMNS:
        arrays[name] = _first_rows_only(pa.array(request[name], pa.string()), sizes)
    fields = [pa.field(name, array.type) for name, array in arrays.items()]
    for name, (array, is_json) in [*features.items(), (OUTPUT, output)]:
        arrays[name] = array
        fields.append(pa.field(name, array.type, metadata={JSON_FIELD: b"1"} if is_json else None))
    schema = pa.schema(fields, metadata={b"plinth.segment": FORMAT.encode()})
    return pa.Table.from_arrays(list(arrays.values()), schema=schema)


def _request_array(name: str, values: Any) -> pa.Array:
    import pyarrow as pa

    if name in _INTS:
        return pa.array(values, pa.int64())
    if name == "latency_ms":
        return pa.array(values, pa.float64(), from_pandas=True)
    if name == "route":
        return pa.array(values, pa.string()).dictionary_encode()
    return pa.array(values, pa.string())


def _first_rows_only(texts: pa.Array, sizes: np.ndarray) -> pa.Array:
    """`texts` (one per request) on each request's first row, null on its other rows."""
    import pyarrow as pa

    if not len(sizes) or int(sizes.max()) == 1:
        return texts
    position = np.full(int(sizes.sum()), -1, dtype=np.int64)
    position[np.cumsum(sizes) - sizes] = np.arange(len(sizes))
    return texts.take(pa.array(position, mask=position < 0))


def _input_rows(text: str, orjson: Any) -> list[Any]:
    """A request's input rows: dicts (named inputs) or lists (positional ones)."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(body, dict):
        return []
    if "instances" in body:
        rows = body["instances"]
        rows = rows if isinstance(rows, list) else [rows]
        if len(rows) == 1 and type(rows[0]) is dict:
            return rows
        return [r if isinstance(r, dict | list) else [r] for r in rows]
    data = body.get("data")
    if not isinstance(data, list):
        return []
    columns = body.get("columns")
    if isinstance(columns, list):
        return [dict(zip(map(str, columns), r, strict=False)) if isinstance(r, list) else [r] for r in data]
    return [r if isinstance(r, list) else [r] for r in data]


def _answers(entry: PredictionLog, orjson: Any) -> list[Any]:
    """A request's predictions, one per row; none for a failed request."""
    if entry.status != 200:
        return []
    try:
        value = orjson.loads(entry.outputs)
    except orjson.JSONDecodeError:
        return []
    return value if isinstance(value, list) else [value]


def _feature_columns(records: list[Any]) -> dict[str, tuple[pa.Array, bool]]:
    """One column per named input and per position, over every row (null where a row lacks it)."""
    uniform = _uniform(records)
    if uniform is not None:
        return uniform
    names: dict[str, None] = {}
    width = 0
    for record in records:
        if type(record) is dict:
            names.update(dict.fromkeys(record))
        elif type(record) is list:
            width = max(width, len(record))
    out: dict[str, tuple[pa.Array, bool]] = {}
    for name in names:
        out[INPUT + name] = _values([r.get(name) if type(r) is dict else None for r in records])
    for i in range(width):
        column = [r[i] if type(r) is list and i < len(r) else None for r in records]
        out[POSITION + str(i)] = _values(column)
    return out


def _uniform(records: list[Any]) -> dict[str, tuple[pa.Array, bool]] | None:
    """The columns of records that are all dicts with the same keys in the same order (what one
    client sends), taken in one pass; None for any other records."""
    first = records[0] if records else None
    if type(first) is not dict or not first:
        return None
    keys = tuple(first)
    if not all(type(r) is dict and len(r) == len(keys) for r in records):
        return None
    try:
        rows = list(map(itemgetter(*keys), records))
    except KeyError:
        return None
    columns = zip(*rows, strict=True) if len(keys) > 1 else [rows]
    return {INPUT + name: _values(list(values)) for name, values in zip(keys, columns, strict=True)}


def _values(values: list[Any]) -> tuple[pa.Array, bool]:
    """Values as a typed array, or as JSON text where they share no type; (array, is_json)."""
    import pyarrow as pa

    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError, TypeError):
        return _as_json(values), True
    if _nested_struct(array.type):
        return _as_json(values), True
    return _categories(array), False


def _array(values: Any) -> tuple[pa.Array, bool]:
    """Column values given as an array or list, typed where they share a type."""
    import pyarrow as pa

    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        if values.ndim == 2:
            return pa.array(list(values)), False
        return pa.array(values, from_pandas=True), False
    if isinstance(values, np.ndarray) and values.dtype.kind == "U":
        return _categories(pa.array(values)), False
    if hasattr(values, "to_numpy") and getattr(values, "dtype", None) is not None:
        dtype = values.dtype
        if getattr(dtype, "kind", "O") in "biuf":
            return pa.array(values.to_numpy(), from_pandas=True), False
        if str(dtype) == "category":
            return _values([None if _is_missing(v) else v for v in values.astype(object).tolist()])
        return _values([None if _is_missing(v) else v for v in values.tolist()])
    listed = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return _values([None if _is_missing(v) else _plain(v) for v in listed])


def _categories(array: pa.Array) -> pa.Array:
    """Text as a dictionary array: each distinct value stored once, read as pandas categories."""
    import pyarrow as pa

    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array.dictionary_encode()
    return array


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _nested_struct(kind: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_struct(kind) or pa.types.is_map(kind):
        return True
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _nested_struct(kind.value_type)
    return False


def _as_json(values: list[Any]) -> pa.Array:
    import orjson
    import pyarrow as pa

    return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], pa.string())


def json_values(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """The values of a JSON-marked column, parsed (None where null)."""
    import orjson

    return [None if v is None else orjson.loads(v) for v in column.to_pylist()]


def is_json(field: pa.Field) -> bool:
    """True for a column that holds its values as JSON text."""
    return bool(field.metadata and field.metadata.get(JSON_FIELD) == b"1")


# bytes ------------------------------------------------------------------------------------------


def to_bytes(table: pa.Table) -> bytes:
    """The segment as an Arrow IPC file (lz4-compressed buffers: read back at memory speed).

    Every file's bytes are unique (a random nonce in its metadata), so no two segments share a
    blob, and it holds no value its rows do not (dictionaries are built again from the rows).
    """
    import pyarrow as pa

    metadata = {**(table.schema.metadata or {}), b"plinth.nonce": secrets.token_hex(16).encode()}
    table = _own_dictionaries(table).replace_schema_metadata(metadata)
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="lz4", unify_dictionaries=True)
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=1 << 16)
    return bytes(sink.getvalue())


def _own_dictionaries(table: pa.Table) -> pa.Table:
    """`table` with each text column's dictionary holding only the values its rows use: a table
    filtered from another (requests removed from a segment) keeps the whole dictionary of the
    original, and so the removed values, until it is encoded again."""
    import pyarrow as pa

    for i, item in enumerate(table.schema):
        if pa.types.is_dictionary(item.type):
            fresh = table.column(i).cast(item.type.value_type).dictionary_encode()
            table = table.set_column(i, pa.field(item.name, fresh.type, metadata=item.metadata), fresh)
    return table


def from_bytes(data: bytes, columns: Sequence[str] | None = None, text: bool = False) -> pa.Table:
    """A segment read back: the named `columns`, or else every column but the text ones (those
    too when `text`)."""
    import pyarrow as pa

    reader = pa.ipc.open_file(pa.BufferReader(data))
    names = reader.schema.names
    wanted = [n for n in names if _wanted(n, columns, text)]
    if len(wanted) == len(names):
        return reader.read_all()
    options = pa.ipc.IpcReadOptions(included_fields=[names.index(n) for n in wanted])
    return pa.ipc.open_file(pa.BufferReader(data), options=options).read_all()


def _wanted(name: str, columns: Sequence[str] | None, text: bool) -> bool:
    if columns is not None:
        return name in columns
    return text or name not in TEXT_COLUMNS


# several segments as one table ------------------------------------------------------------------


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Segments (or parts of them) as one table, sorted by time; an input missing from some is
    null there, and an input typed differently in some is widened (to float64) or held as JSON."""
    import pyarrow as pa

    tables = [t for t in tables if t.num_rows] or list(tables[:1])
    if not tables:
        return empty()
    fields: dict[str, list[pa.Field]] = {}
    for table in tables:
        for item in table.schema:
            fields.setdefault(item.name, []).append(item)
    target = {name: _common(found) for name, found in fields.items()}
    schema = pa.schema(list(target.values()))
    aligned = [_align(t, schema) for t in tables]
    whole = pa.concat_tables(aligned) if len(aligned) > 1 else aligned[0]
    return sort_by_time(whole)


def empty() -> pa.Table:
    """A segment table with no rows (and no inputs)."""
    import pyarrow as pa

    types = {"route": pa.string(), "request_id": pa.string(), "subject_id": pa.string()}
    types |= {"latency_ms": pa.float64()}
    fields = [pa.field(n, types.get(n, pa.int64())) for n in SCAN_COLUMNS]
    fields += [pa.field(n, pa.string()) for n in TEXT_COLUMNS]
    return pa.schema(fields).empty_table()


def sort_by_time(table: pa.Table) -> pa.Table:
    """`table` in time order, each request's rows kept together and in order (a stable sort)."""
    import pyarrow.compute as pc

    if table.num_rows < 2:
        return table
    times = table.column("time_ms").to_numpy()
    if bool(np.all(times[1:] >= times[:-1])):
        return table
    order = pc.sort_indices(table, sort_keys=[("time_ms", "ascending")])
    return table.take(order)


def _common(found: list[pa.Field]) -> pa.Field:
    """The field every table's version of one column is brought to."""
    import pyarrow as pa

    name = found[0].name
    kinds = {_plain_type(f.type) for f in found if not pa.types.is_null(f.type)}
    if any(is_json(f) for f in found) or (len(kinds) > 1 and not _numeric(kinds)):
        return pa.field(name, pa.string(), metadata={JSON_FIELD: b"1"})
    if len(kinds) > 1:
        return pa.field(name, pa.float64())
    if not kinds:
        return pa.field(name, pa.null())
    coded = [f.type for f in found if pa.types.is_dictionary(f.type)]
    return pa.field(name, coded[0] if coded else next(iter(kinds)))


def _plain_type(kind: pa.DataType) -> pa.DataType:
    import pyarrow as pa

    return kind.value_type if pa.types.is_dictionary(kind) else kind


def _numeric(kinds: set[pa.DataType]) -> bool:
    import pyarrow as pa

    return all(pa.types.is_integer(k) or pa.types.is_floating(k) for k in kinds)


def _align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    import pyarrow as pa

    arrays = []
    for item in schema:
        if item.name not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, item.type))
            continue
        column = table.column(item.name)
        source = table.schema.field(item.name)
        if is_json(item) and not is_json(source):
            column = _as_json(column.to_pylist())
        elif pa.types.is_dictionary(item.type) and not pa.types.is_dictionary(column.type):
            column = column.cast(item.type.value_type).dictionary_encode()
        elif column.type != item.type:
            column = column.cast(item.type)
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=schema)


# back to prediction logs ------------------------------------------------------------------------


def decode_logs(table: pa.Table, model: str) -> list[PredictionLog]:
    """The requests of a segment table (with its text columns) as `PredictionLog`s, in table order.

    Requests logged as columns have no logged text; theirs is written from the columns, as an
    `{"instances": [...]}` body and a list of predictions.
    """
    import pyarrow.compute as pc

    firsts = table.filter(pc.equal(table.column("row"), 0))
    columns = {n: firsts.column(n).to_pylist() for n in (*REQUEST_COLUMNS, *TEXT_COLUMNS)}
    inputs, outputs = columns["inputs_text"], columns["outputs_text"]
    if any(text is None for text in inputs) or any(text is None for text in outputs):
        inputs, outputs = _written(table, inputs, outputs)
    return [
        PredictionLog(rid, model, version, route, time_ms, latency, subject, given, answer, status, n_rows)
        for rid, version, route, time_ms, latency, subject, given, answer, status, n_rows in zip(
            columns["request_id"],
            columns["version"],
            columns["route"],
            columns["time_ms"],
            columns["latency_ms"],
            columns["subject_id"],
            inputs,
            outputs,
            columns["status"],
            columns["n_rows"],
            strict=True,
        )
    ]


def _written(table: pa.Table, inputs: list[Any], outputs: list[Any]) -> tuple[list[str], list[str]]:
    """The logged text of each request, written from its columns where none was logged."""
    import orjson

    features = [f for f in table.schema if is_feature(f.name)]
    values = {f.name: json_values(table.column(f.name)) if is_json(f) else None for f in features}
    for f in features:
        if values[f.name] is None:
            values[f.name] = table.column(f.name).to_pylist()
    answers = table.column(OUTPUT) if OUTPUT in table.column_names else None
    predicted = json_values(answers) if answers is not None and is_json(table.schema.field(OUTPUT)) else None
    if predicted is None:
        predicted = answers.to_pylist() if answers is not None else [None] * table.num_rows
    rows = table.column("row").to_pylist()
    n_in, n_out = table.column("n_in").to_pylist(), table.column("n_out").to_pylist()
    given: list[list[Any]] = []
    answered: list[list[Any]] = []
    for i, r in enumerate(rows):
        if r == 0:
            given.append([])
            answered.append([])
        if r < n_in[i]:
            given[-1].append(_record(features, values, i))
        if r < n_out[i]:
            answered[-1].append(predicted[i])
    inputs = [
        text if text is not None else orjson.dumps({"instances": g}).decode()
        for text, g in zip(inputs, given, strict=True)
    ]
    outputs = [
        text if text is not None else orjson.dumps(a).decode()
        for text, a in zip(outputs, answered, strict=True)
    ]
    return inputs, outputs


def _record(features: list[pa.Field], values: dict[str, Any], i: int) -> Any:
    named = {f.name[len(INPUT) :]: values[f.name][i] for f in features if f.name.startswith(INPUT)}
    named = {k: v for k, v in named.items() if v is not None}
    if named or not any(f.name.startswith(POSITION) for f in features):
        return named
    return [values[f.name][i] for f in features if f.name.startswith(POSITION)]
