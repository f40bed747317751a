"""Request bodies to model input: parse, check against the signature, collect every problem."""

from __future__ import annotations

from typing import Any

import numpy as np

from plinth.core.errors import InvalidInput
from plinth.registry.signature import InputSpec

_NUMERIC = "biuf"


class RequestError(InvalidInput):
    """A request the server refuses with a 4xx; `status` says which."""

    def __init__(self, message: str, status: int = 422, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message, problems)
        self.status = status

    def __reduce__(self) -> tuple[type, tuple[str, int, list[dict[str, str]]]]:
        return (type(self), (str(self), self.status, self.problems))


class RequestParser:
    """Turns {"instances": [...]} or {"columns": [...], "data": [[...]]} into a batch for the model."""

    def __init__(self, spec: dict[str, Any] | None, *, max_rows: int, allow_nan: bool) -> None:
        self.input = InputSpec(spec)
        self.max_rows = max_rows
        self.allow_nan = allow_nan
        columns = spec.get("columns") if spec and spec["type"] == "frame" else None
        self.names: list[str] | None = [c["name"] for c in columns] if columns else None
        self.numeric = bool(columns) and all(_is_numeric(c["dtype"]) for c in columns or [])

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
            if columns is None:
                columns = self.names
            if not isinstance(columns, list) or sorted(map(str, columns)) != sorted(self.names):
                raise RequestError(
                    f'"columns" must name exactly {self.names}.',
                    422,
                    [
                        {
                            "field": "columns",
                            "expected": ", ".join(self.names),
                            "got": ", ".join(map(str, columns or [])),
                        }
                    ],
                )
            if columns != self.names:
                order = [columns.index(n) for n in self.names]
                data = [[row[j] for j in order] if isinstance(row, list) else row for row in data]
        bad = [
            i for i, row in enumerate(data) if not isinstance(row, list) or len(row) != len(columns or row)
        ]
        if bad:
            problem = {
                "field": f"data[{bad[0]}]",
                "expected": f"a list of {len(columns or [])} values",
                "got": "other",
            }
            raise RequestError(_message([problem]), 422, [problem])
        return self._finish(data) if self.names is not None else self._tensor(data)

    def _finish(self, table: list[list[Any]]) -> Any:
        if self.numeric:
            array = _numbers(table, self.names or [])
            self._check_finite(array, self.names or [])
            self._check_integral(array)
            return array
        import pandas as pd

        frame = pd.DataFrame(table, columns=self.names)
        return _prepared(self.input, frame)

    def _tensor(self, rows: Any) -> Any:
        try:
            array = np.asarray(rows)
        except ValueError as exc:
            raise RequestError(f"The rows are ragged or nested too deep: {exc}", 422) from exc
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
        array = np.array(table, dtype=np.float64)
    except (TypeError, ValueError):
        problems = []
        for i, row in enumerate(table):
            for name, value in zip(names, row, strict=True):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    problems.append(
                        {"field": name, "expected": "a number", "got": f"{value!r:.40} in row {i}"}
                    )
        raise RequestError(_message(problems[:50]), 422, problems[:50]) from None
    return array


def _key_problems(i: int, record: dict[str, Any], names: list[str]) -> list[dict[str, str]]:
    problems = [
        {"field": n, "expected": "a value", "got": f"missing in instances[{i}]"}
        for n in names
        if n not in record
    ]
    problems += [
        {"field": str(k), "expected": "no such column", "got": f"present in instances[{i}]"}
        for k in record
        if k not in set(names)
    ]
    return problems


def _is_numeric(dtype: str) -> bool:
    try:
        return np.dtype(dtype).kind in _NUMERIC
    except TypeError:
        return False


def _message(problems: list[dict[str, str]]) -> str:
    return "The input does not match the model's signature: " + "; ".join(
        f"{p['field']}: expected {p['expected']}, got {p['got']}" for p in problems[:10]
    )
