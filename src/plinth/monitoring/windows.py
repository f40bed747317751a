"""Time windows over prediction logs, and logs turned into frames of features and predictions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.core.errors import InvalidInput
from plinth.core.ids import now_ms
from plinth.core.units import parse_duration

if TYPE_CHECKING:
    import pandas

    from plinth.core.entities import PredictionLog

Moment = str | int | float | dt.datetime | None


@dataclass(frozen=True)
class Window:
    """A half-open time range [start_ms, end_ms); either end may be open (None)."""

    start_ms: int | None
    end_ms: int | None

    def describe(self) -> str:
        """Human form, e.g. '2026-11-23 10:00 → now'."""
        return f"{_fmt(self.start_ms) if self.start_ms else 'the start'} → {_fmt(self.end_ms) or 'now'}"


def window(since: str | float | None = None, start: Moment = None, end: Moment = None) -> Window:
    """The window `since` ago until now, or from `start` to `end` (ISO text, datetime or epoch ms).

    Raises:
        InvalidInput: both `since` and `start` given, an unreadable time, or an empty range.
    """
    if since is not None and start is not None:
        raise InvalidInput("Give either since= (e.g. '1h') or start=/end=, not both.")
    end_ms = _moment(end, "end")
    if since is not None:
        seconds = parse_duration(since)
        if not seconds:
            raise InvalidInput(f"since={since!r} must be a period such as 1h or 7d.")
        start_ms: int | None = (end_ms if end_ms is not None else now_ms()) - int(seconds * 1000)
    else:
        start_ms = _moment(start, "start")
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise InvalidInput(f"The window ends ({_fmt(end_ms)}) before it starts ({_fmt(start_ms)}).")
    return Window(start_ms, end_ms)


def buckets(span: Window, every: str | float, first_ms: int, last_ms: int) -> list[Window]:
    """Consecutive windows of length `every` covering `span` (or the data's own range where open)."""
    seconds = parse_duration(every)
    if not seconds:
        raise InvalidInput(f"every={every!r} must be a period such as 10m or 1h.")
    step = int(seconds * 1000)
    start = span.start_ms if span.start_ms is not None else first_ms - first_ms % step
    end = span.end_ms if span.end_ms is not None else last_ms + 1
    if (end - start) / step > 10_000:
        raise InvalidInput(f"every={every!r} would make more than 10,000 windows; use a longer period.")
    edges = list(range(start, end, step))
    return [Window(a, min(a + step, end)) for a in edges]


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


def _moment(value: Moment, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{what}= must be a time, not {value!r}.")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, str):
        try:
            return _moment(dt.datetime.fromisoformat(value), what)
        except ValueError:
            pass
    raise InvalidInput(f"{what}={value!r} is not a time; use ISO text (2026-11-23T10:00), a datetime or ms.")


def _fmt(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
