"""Model signatures: inferred from examples, enforced on every predict.

A frame signature lists columns and dtypes; a tensor signature gives shape and dtype.
Validation is O(columns): names and dtypes are compared, safe casts (int -> float, column
order) are applied, anything else is refused with one problem per column.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from plinth.core.errors import InvalidInput

Signature = dict[str, Any]
# how pandas names a column of strings: its default string dtype (3.x), the nullable one, object (2.x)
TEXT_DTYPES = frozenset({"str", "string", "object"})


def infer_signature(input_example: Any, output_example: Any = None) -> Signature | None:
    """Describe the inputs (and outputs) of `input_example`; None when no example is given."""
    if input_example is None:
        return None
    signature: Signature = {"inputs": describe(input_example)}
    if output_example is not None:
        signature["outputs"] = describe(output_example)
    return signature


def describe(example: Any) -> dict[str, Any]:
    """A frame or tensor spec for a DataFrame, Series, ndarray, list or dict of columns."""
    import pandas as pd

    if isinstance(example, dict):
        example = pd.DataFrame(example)
    if isinstance(example, pd.DataFrame):
        return {
            "type": "frame",
            "columns": [
                {"name": str(n), "dtype": str(d)}
                for n, d in zip(example.columns, example.dtypes, strict=True)
            ],
        }
    array = np.asarray(example.to_numpy() if isinstance(example, pd.Series) else example)
    if array.dtype == object:
        raise InvalidInput(
            "An example of object dtype cannot define a signature; pass a DataFrame with typed columns."
        )
    return {"type": "tensor", "shape": [-1, *array.shape[1:]], "dtype": str(array.dtype)}


class InputSpec:
    """A compiled signature input: checks and converts one batch in O(columns)."""

    def __init__(self, spec: dict[str, Any] | None) -> None:
        self.spec = spec
        self.kind = spec["type"] if spec else None
        if self.kind == "frame":
            self.names = [c["name"] for c in spec["columns"]]  # type: ignore[index]
            self.dtypes = [_column_dtype(c["dtype"]) for c in spec["columns"]]  # type: ignore[index]
        elif self.kind == "tensor":
            self.shape = spec["shape"]  # type: ignore[index]
            self.dtype = np.dtype(spec["dtype"])  # type: ignore[index]

    def prepare(self, data: Any) -> Any:
        """Return `data` ready for the model, or raise InvalidInput listing every problem."""
        if self.kind is None:
            return data
        if self.kind == "frame":
            return self._frame(data)
        return self._tensor(data)

    def _frame(self, data: Any) -> Any:
        import pandas as pd

        if not isinstance(data, pd.DataFrame):
            data = self._to_frame(data)
        columns = data.columns.tolist()
        if columns != self.names:
            missing = [n for n in self.names if n not in set(columns)]
            extra = [c for c in columns if c not in set(self.names)]
            if missing or extra:
                raise _column_problems(missing, extra, self)
            data = data[self.names]
        casts, problems = {}, []
        for name, want, got in zip(self.names, self.dtypes, data.dtypes.tolist(), strict=True):
            if got == want:
                continue
            if isinstance(want, np.dtype) and isinstance(got, np.dtype) and np.can_cast(got, want, "safe"):
                casts[name] = want
            elif isinstance(want, np.dtype) and want.kind == "f" and got.kind in "iub":
                casts[name] = want  # int -> float may round past 2**53: accepted as scikit-learn does
            elif want in TEXT_DTYPES and _holds_text(data[name]):
                casts[name] = want  # strings as object or as either pandas string dtype
            else:
                problems.append({"field": name, "expected": str(want), "got": str(got)})
        if problems:
            raise InvalidInput(_message(problems), problems)
        return data.astype(casts) if casts else data

    def _to_frame(self, data: Any) -> Any:
        import pandas as pd

        if isinstance(data, dict) or (isinstance(data, list) and data and isinstance(data[0], dict)):
            return pd.DataFrame(data)
        array = np.asarray(data)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2 or array.shape[1] != len(self.names):
            problem = {
                "field": "<input>",
                "expected": f"{len(self.names)} features",
                "got": f"shape {array.shape}",
            }
            raise InvalidInput(_message([problem]), [problem])
        return pd.DataFrame(array, columns=self.names)

    def _tensor(self, data: Any) -> Any:
        import pandas as pd

        array = data.to_numpy() if isinstance(data, pd.DataFrame) else np.asarray(data)
        problems = []
        expected = self.shape
        if array.ndim != len(expected) or any(
            w not in (-1, g) for w, g in zip(expected, array.shape, strict=False)
        ):
            problems.append(
                {"field": "<input>", "expected": f"shape {_shape(expected)}", "got": f"shape {array.shape}"}
            )
        elif array.dtype != self.dtype:
            if np.can_cast(array.dtype, self.dtype, "same_kind") or (
                self.dtype.kind == "f" and array.dtype.kind in "iub"
            ):
                array = array.astype(self.dtype)
            else:
                problems.append({"field": "<input>", "expected": str(self.dtype), "got": str(array.dtype)})
        if problems:
            raise InvalidInput(_message(problems), problems)
        return array


def _column_dtype(name: str) -> Any:
    """A signature's column dtype: a NumPy dtype, or its name for pandas' own (text, category...)."""
    if name in TEXT_DTYPES:
        return name  # NumPy reads "str" as a zero-width unicode dtype; pandas means its string dtype
    try:
        dtype = np.dtype(name)
    except TypeError:
        return name
    return dtype if dtype.kind in "biufcmMUS" else name


def _holds_text(column: Any) -> bool:
    """True when every value of `column` is a string or missing (a text column in any dtype)."""
    import pandas as pd

    return pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty")


def _shape(shape: list[int]) -> str:
    return "(" + ", ".join("n" if d == -1 else str(d) for d in shape) + ")"


def _column_problems(missing: list[str], extra: list[str], spec: InputSpec) -> InvalidInput:
    expected = dict(zip(spec.names, spec.dtypes, strict=True))
    problems = [{"field": n, "expected": str(expected[n]), "got": "missing"} for n in missing]
    problems += [{"field": str(c), "expected": "no such column", "got": "present"} for c in extra]
    return InvalidInput(_message(problems), problems)


def _message(problems: list[dict[str, str]]) -> str:
    lines = [f"  {p['field']}: expected {p['expected']}, got {p['got']}" for p in problems]
    return "Input does not match the model's signature:\n" + "\n".join(lines)
