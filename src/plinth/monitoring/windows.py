"""Prediction logs turned into frames of features and predictions.

`Window` and `Moment` live in `plinth.core.windows`; they are importable from here as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.core.windows import Moment as Moment
from plinth.core.windows import Window as Window

if TYPE_CHECKING:
    import pandas

    from plinth.core.entities import PredictionLog


def rows_of(logs: Sequence[PredictionLog], names: Sequence[str] | None = None) -> pandas.DataFrame:
    """The feature rows of logged requests as one frame (one row per predicted row).

    Records (`{"instances": [{...}]}`) give their keys as columns; lists and `columns`/`data`
    bodies use `names` (the signature's inputs) or their own column list.
    """
    import orjson
    import pandas as pd

    records: list[Any] = []
    for entry in logs:
        body = orjson.loads(entry.inputs)
        if "instances" in body:
            records.extend(body["instances"])
        else:
            columns = body.get("columns") or names
            records.extend(dict(zip(columns, row, strict=False)) for row in body.get("data") or [])
    if records and not isinstance(records[0], dict):
        if names is None or len(names) != len(records[0]):
            names = [str(i) for i in range(len(records[0]))]
        return pd.DataFrame.from_records(records, columns=list(names))
    return pd.DataFrame.from_records(records)


def predictions_of(logs: Sequence[PredictionLog]) -> list[Any]:
    """The predictions of logged requests, one per predicted row, in log order."""
    import orjson

    out: list[Any] = []
    for entry in logs:
        out.extend(orjson.loads(entry.outputs))
    return out


def prediction_column(values: list[Any]) -> Any:
    """Predictions as a 1-D array: the class or value, or the top class index of probability rows."""
    if values and isinstance(values[0], list):
        return np.asarray(values, dtype=np.float64).argmax(axis=1)
    return np.asarray(values)
