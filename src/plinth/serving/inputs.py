"""Request bodies to model input: parse, check against the signature, collect every problem."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from plinth.core.errors import InvalidInput
from plinth.core.http import RequestError as RequestError
from plinth.registry.signature import InputSpec

_NUMERIC = "biuf"
_FLOAT_MAX = sys.float_info.max


class RequestParser:
    """Turns {"instances": [...]} or {"columns": [...], "data": [[...]]} into a batch for the model."""

    def __init__(self, spec: dict[str, Any] | None, *, max_rows: int, allow_nan: bool) -> None:
        self.input = InputSpec(spec)
        self.max_rows = max_rows
        self.allow_nan = allow_nan
        columns = spec.get("columns") if spec and spec["type"] == "frame" else None
        self.names: list[str] | None = [c["name"] for c in columns] if columns else None
        self.numeric = bool(columns) and all(_is_numeric(c["dtype"]) for c in columns or [])
        # columns where a JSON true/false is refused: numbers are expected there, not booleans
        self.numbers = [j for j, c in enumerate(columns or []) if _is_numeric(c["dtype"], "iuf")]
        self.tensor_bools = spec is not None and spec["type"] == "tensor" and _is_numeric(spec["dtype"], "b")

    def rows(self, body: Any) -> Any:
        """The model input for a parsed JSON body (a float array on the fast path, else a DataFrame)."""
        if not isinstance(body, dict):
            raise RequestError('The body must be a JSON object like {"instances": [...]}.', 400)
        if "instances" in body:
            records = body["instances"]
            rows = self._records(records)
        elif "data" in body:
            rows = self._table(body.get("columns"), body["data"])
        else:
            raise RequestError('The body needs "instances" (a list of records) or "columns" and "data".', 400)
        return rows

    def _check_count(self, items: Any, what: str) -> int:
        if not isinstance(items, list):
            raise RequestError(f'"{what}" must be a list.', 400)
        if not items:
            raise RequestError(f'"{what}" is empty: send at least one row.', 400)
        if len(items) > self.max_rows:
            raise RequestError(f"{len(items)} rows is more than this server takes ({self.max_rows}).", 413)
        return len(items)

    def _records(self, records: Any) -> Any:
        self._check_count(records, "instances")
        if self.names is None:
            return self._tensor(records)
        problems: list[dict[str, str]] = []
        wanted = set(self.names)
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                problems.append(
                    {
                        "field": f"instances[{i}]",
                        "expected": "an object of column values",
                        "got": type(record).__name__,
                    }
                )
                continue
            if record.keys() != wanted:
                problems += _key_problems(i, record, self.names)
        if problems:
            raise RequestError(_message(problems), 422, problems)
        table = [[record[n] for n in self.names] for record in records]
        return self._finish(table)

    def _table(self, columns: Any, data: Any) -> Any:
        self._check_count(data, "data")
        if self.names is not None:
            columns = self._columns(self.names if columns is None else columns)
        width = len(columns) if isinstance(columns, list) else None
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != (len(row) if width is None else width):
                got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
                problem = {
                    "field": f"data[{i}]",
                    "expected": f"a list of {width or 'the'} values",
                    "got": got,
                }
                raise RequestError(_message([problem]), 422, [problem])
        if self.names is None:
            return self._tensor(data)
        if columns != self.names:
            order = [columns.index(n) for n in self.names]
            data = [[row[j] for j in order] for row in data]
        return self._finish(data)

    def _columns(self, columns: Any) -> list[str]:
        """`columns` when it names each column of the signature once, in any order."""
        names = self.names or []
        if (
            not isinstance(columns, list)
            or not all(isinstance(c, str) for c in columns)
            or sorted(columns) != sorted(names)
        ):
            got = ", ".join(map(str, columns))[:200] if isinstance(columns, list) else type(columns).__name__
            raise RequestError(
                f'"columns" must name exactly {names}.',
                422,
                [{"field": "columns", "expected": ", ".join(names), "got": got}],
            )
        return columns

    def _finish(self, table: list[list[Any]]) -> Any:
        self._check_bools(table)
        if self.numeric:
            array = _numbers(table, self.names or [])
            self._check_finite(array, self.names or [])
            self._check_integral(array)
            return array
        import pandas as pd

        frame = pd.DataFrame(table, columns=self.names)
        return _prepared(self.input, frame)

    def _check_bools(self, table: list[list[Any]]) -> None:
        """Refuse true/false where the signature expects a number (NumPy would read them as 1/0)."""
        problems = []
        for i, row in enumerate(table):
            if bool in map(type, row):
                problems += [
                    {"field": self.names[j], "expected": "a number", "got": f"{row[j]!r} in row {i}".lower()}  # type: ignore[index]
                    for j in self.numbers
                    if type(row[j]) is bool
                ]
            if len(problems) >= 50:
                break
        if problems:
            raise RequestError(_message(problems), 422, problems[:50])

    def _tensor(self, rows: Any) -> Any:
        try:
            array = np.asarray(rows)
        except (ValueError, OverflowError) as exc:
            raise RequestError(f"The rows are ragged or nested too deep: {exc}", 422) from exc
        if not self.tensor_bools and (
            array.dtype.kind == "b" or (array.dtype.kind in "iuf" and _holds_bool(rows))
        ):
            problem = {"field": "<input>", "expected": "numbers", "got": "true or false"}
            raise RequestError(_message([problem]), 422, [problem])
        if array.dtype == object or array.dtype.kind not in _NUMERIC:
            raise RequestError(
                "Every value must be a number.",
                422,
                [{"field": "<input>", "expected": "numbers", "got": str(array.dtype)}],
            )
        self._check_finite(array.astype(float, copy=False), [])
        return _prepared(self.input, array)

    def _check_integral(self, array: np.ndarray) -> None:
        for j, dtype in enumerate(self.input.dtypes):
            if isinstance(dtype, np.dtype) and dtype.kind in "iub":
                column = array[:, j]
                if not np.array_equal(column, np.floor(column)):
                    problem = {"field": self.names[j], "expected": str(dtype), "got": "a fraction"}  # type: ignore[index]
                    raise RequestError(_message([problem]), 422, [problem])

    def model_input(self, parts: list[Any]) -> Any:
        """One model input from the parts of several requests (as `rows` returned them)."""
        if isinstance(parts[0], np.ndarray) and self.numeric:
            import pandas as pd

            array = parts[0] if len(parts) == 1 else np.concatenate(parts)
            frame = pd.DataFrame(array, columns=self.names, copy=False)
            casts = {
                n: d for n, d in zip(self.names or [], self.input.dtypes, strict=True) if d != np.float64
            }
            return frame.astype(casts) if casts else frame
        if isinstance(parts[0], np.ndarray):
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        import pandas as pd

        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)

    def _check_finite(self, array: np.ndarray, names: list[str]) -> None:
        if self.allow_nan or array.dtype.kind != "f" or np.isfinite(array).all():
            return
        rows, cols = np.nonzero(~np.isfinite(array))
        problems = [
            {
                "field": names[c] if names else f"[{r}][{c}]",
                "expected": "a finite number",
                "got": str(array[r, c]),
            }
            for r, c in zip(rows[:20], cols[:20], strict=True)
        ]
        raise RequestError(_message(problems), 422, problems)


def _prepared(spec: InputSpec, data: Any) -> Any:
    try:
        return spec.prepare(data)
    except RequestError:
        raise
    except InvalidInput as exc:
        raise RequestError(str(exc), 422, exc.problems) from exc


def _numbers(table: list[list[Any]], names: list[str]) -> np.ndarray:
    try:
        return np.array(table, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        problems = []
        for i, row in enumerate(table):
            for name, value in zip(names, row, strict=True):
                expected = _number_problem(value)
                if expected is not None:
                    problems.append(
                        {"field": name, "expected": expected, "got": f"{_shown(value)} in row {i}"}
                    )
        raise RequestError(_message(problems[:50]), 422, problems[:50]) from None


def _number_problem(value: Any) -> str | None:
    """What a value should have been to fit a float column, or None when it fits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, int) and not -_FLOAT_MAX <= value <= _FLOAT_MAX:
        return "a number within the float range (about ±1.8e308)"
    return None


def _shown(value: Any) -> str:
    if isinstance(value, int) and value.bit_length() > 256:
        return f"an integer of about {value.bit_length() * 0.30103:.0f} digits"
    return f"{value!r:.40}"


def _holds_bool(rows: Any) -> bool:
    """True when nested lists of numbers hold a true or false somewhere."""
    stack = [rows]
    while stack:
        items = stack.pop()
        if bool in map(type, items):
            return True
        stack.extend(item for item in items if isinstance(item, list))
    return False


def _key_problems(i: int, record: dict[str, Any], names: list[str]) -> list[dict[str, str]]:
    problems = [
        {"field": n, "expected": "a value", "got": f"missing in instances[{i}]"}
        for n in names
        if n not in record
    ]
    problems += [
        {"field": str(k)[:100], "expected": "no such column", "got": f"present in instances[{i}]"}
        for k in record
        if k not in set(names)
    ]
    return problems


def _is_numeric(dtype: str, kinds: str = _NUMERIC) -> bool:
    try:
        return np.dtype(dtype).kind in kinds
    except TypeError:
        return False


def _message(problems: list[dict[str, str]]) -> str:
    return "The input does not match the model's signature: " + "; ".join(
        f"{p['field']}: expected {p['expected']}, got {p['got']}" for p in problems[:10]
    )
