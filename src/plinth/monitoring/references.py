"""Drift references: what current data is compared with, one distribution per column.

A reference is made either from a raw frame (`reference_from_frame`) or from a dataset profile as
stored with every DatasetVersion (`reference_from_profile`, see plinth.tracking.profiles), so a
training set's profile can serve as the reference without its rows.

Numeric columns keep the profile's bins: the de-duplicated reference quantiles, each half-open
except the last, which includes the reference maximum, between two buckets (below the minimum,
above the maximum) that are empty in the reference. Infinite reference values (which a profile
counts without their sign) are left out. A reference made from a frame also keeps a sorted sample
of each numeric column, so that the KS test is exact two-sample. Categorical and boolean columns
keep the profile's top values and the count of the rest, one "other" bucket. Missing values
(None, NaN, pd.NA) are left out of the distributions and kept as the missing rate alone.

pandas is imported inside the functions that need it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.core.errors import InvalidInput
from plinth.tracking.profiles import profile_frame

if TYPE_CHECKING:
    import pandas

_NUMERIC_KINDS = ("numeric",)
_CATEGORICAL_KINDS = ("categorical", "boolean")


@dataclass(frozen=True, eq=False)
class NumericReference:
    """A numeric column's reference distribution.

    Attributes:
        name: Column name.
        edges: De-duplicated quantile edges, ascending; empty when the reference had no
            finite value.
        counts: Reference counts per bucket: below the first edge (0), one per bin, above the
            last edge (0); empty with `edges`.
        missing_rate: Share of the reference's rows that were missing.
        sample: Distinct values of the reference's sorted sample, or None (profile reference).
        sample_cdf: The reference's empirical CDF at each of `sample`, or None.
    """

    name: str
    edges: np.ndarray
    counts: np.ndarray
    missing_rate: float
    sample: np.ndarray | None = None
    sample_cdf: np.ndarray | None = None

    kind = "numeric"

    @property
    def count(self) -> int:
        """Number of finite reference values."""
        return int(self.counts.sum())


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """A categorical (or boolean) column's reference distribution.

    Attributes:
        name: Column name.
        categories: The reference's listed values, as strings.
        counts: Reference counts of each category, then of "other" (the values beyond the
            profile's top_k).
        missing_rate: Share of the reference's rows that were missing.
    """

    name: str
    categories: tuple[str, ...]
    counts: np.ndarray
    missing_rate: float

    kind = "categorical"

    @property
    def count(self) -> int:
        """Number of present reference values."""
        return int(self.counts.sum())


ColumnReference = NumericReference | CategoricalReference


@dataclass(frozen=True, eq=False)
class Reference:
    """What current data is compared with: one distribution per comparable column.

    Attributes:
        rows: Number of rows the reference was made from.
        columns: Column name -> its reference, in the reference's column order.
        skipped: Columns of the reference that cannot be compared (datetime, other kinds).
    """

    rows: int
    columns: Mapping[str, ColumnReference]
    skipped: tuple[str, ...] = ()


def reference_from_profile(profile: Mapping[str, Any]) -> Reference:
    """Make a reference from a dataset profile (`plinth.tracking.profiles.profile_frame`).

    Numeric columns keep the profile's histogram (quantile bins); categorical and boolean
    columns its top values and the count of the rest. Datetime and other columns are listed
    in `Reference.skipped`. Numeric columns have no sample, so KS is against the binned CDF.

    Args:
        profile: {"rows": int, "columns": [column profiles]}, as stored with a DatasetVersion.

    Returns:
        The reference.
    """
    if not isinstance(profile, Mapping) or not isinstance(profile.get("columns"), list):
        raise InvalidInput("a profile must be a dict with a 'columns' list, as made by profile_frame")
    rows = _count_field(profile, "rows", "the profile")
    columns: dict[str, ColumnReference] = {}
    skipped: list[str] = []
    for column in profile["columns"]:
        if not isinstance(column, Mapping) or not isinstance(column.get("name"), str):
            raise InvalidInput(f"a profile column must be a dict with a 'name', got {column!r:.200}")
        kind = column.get("kind")
        if kind in _NUMERIC_KINDS:
            columns[column["name"]] = _numeric_from_profile(column)
        elif kind in _CATEGORICAL_KINDS:
            columns[column["name"]] = _categorical_from_profile(column)
        else:
            skipped.append(column["name"])
    return Reference(rows=rows, columns=columns, skipped=tuple(skipped))


def reference_from_frame(
    df: pandas.DataFrame, *, bins: int = 10, top_k: int = 20, max_sample: int | None = 100_000
) -> Reference:
    """Make a reference from a raw frame: its profile, plus a sorted sample per numeric column.

    The bins and categories are those of `profile_frame(df, bins=bins, top_k=top_k)`, so
    PSI, JS and the flags match a reference made from that profile; the sample makes the KS
    test exact two-sample.

    Args:
        df: The reference frame, typically the training data.
        bins: Quantile bins per numeric column.
        top_k: Categories kept per categorical column; the rest share one "other" bucket.
        max_sample: Most values kept per numeric column for KS; a longer column keeps this
            many evenly spaced order statistics (its CDF stays within 1/max_sample of the
            full one). None keeps every value.

    Returns:
        The reference.
    """
    if not isinstance(df, import_pandas().DataFrame):
        raise InvalidInput(f"reference_from_frame needs a pandas DataFrame, got {type(df).__name__}")
    bad_sample = isinstance(max_sample, bool) or not isinstance(max_sample, int) or max_sample < 2
    if max_sample is not None and bad_sample:
        raise InvalidInput(f"max_sample must be an integer >= 2 or None, got {max_sample!r}")
    base = reference_from_profile(profile_frame(df, bins=bins, top_k=top_k))
    positions = column_positions(df)
    columns: dict[str, ColumnReference] = {}
    for name, column in base.columns.items():
        if isinstance(column, NumericReference):
            sample, cdf = _sample_cdf(df.iloc[:, positions[name]], max_sample)
            column = dataclasses.replace(column, sample=sample, sample_cdf=cdf)
        columns[name] = column
    return dataclasses.replace(base, columns=columns)


def _numeric_from_profile(column: Mapping[str, Any]) -> NumericReference:
    """A numeric column's reference from its profile's histogram."""
    name = column["name"]
    histogram = column.get("histogram")
    if not isinstance(histogram, Mapping):
        raise InvalidInput(f"profile column {name!r} has no 'histogram'")
    try:
        edges = np.asarray(histogram.get("edges"), dtype=np.float64)
        counts = np.asarray(histogram.get("counts"), dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"profile column {name!r} has a malformed histogram: {exc}") from exc
    valid = edges.ndim == counts.ndim == 1 and (
        (edges.size == counts.size == 0)
        or (counts.size == edges.size - 1 and np.all(np.diff(edges) >= 0) and np.all(counts >= 0))
    )
    if not valid or not np.all(np.isfinite(edges)):
        raise InvalidInput(f"profile column {name!r} has a malformed histogram: {dict(histogram)!r:.200}")
    if edges.size:
        counts = np.concatenate(([0], counts, [0]))
    return NumericReference(name=name, edges=edges, counts=counts, missing_rate=_missing_rate(column))


def _categorical_from_profile(column: Mapping[str, Any]) -> CategoricalReference:
    """A categorical column's reference from its profile's top values and other count."""
    name = column["name"]
    top = column.get("top")
    if not isinstance(top, list) or not all(
        isinstance(item, list | tuple) and len(item) == 2 for item in top
    ):
        raise InvalidInput(f"profile column {name!r} needs 'top' as [[value, count], ...]")
    other = column.get("other_count", 0)
    try:
        counts = np.asarray([*(count for _, count in top), other], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"profile column {name!r} has malformed counts: {exc}") from exc
    if np.any(counts < 0):
        raise InvalidInput(f"profile column {name!r} has negative counts")
    categories = tuple(str(value) for value, _ in top)
    return CategoricalReference(
        name=name, categories=categories, counts=counts, missing_rate=_missing_rate(column)
    )


def _sample_cdf(series: pandas.Series, max_sample: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sorted finite values of a column (evenly thinned) and the ECDF at each."""
    values = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    values = values[np.isfinite(values)]
    values.sort()
    if max_sample is not None and values.size > max_sample:
        values = values[np.round(np.linspace(0, values.size - 1, max_sample)).astype(np.intp)]
    if values.size == 0:
        return values, values.copy()
    last_of_run = np.empty(values.size, dtype=bool)
    last_of_run[-1] = True
    np.not_equal(values[1:], values[:-1], out=last_of_run[:-1])
    positions = np.flatnonzero(last_of_run)
    return values[positions], (positions + 1) / values.size


def _missing_rate(column: Mapping[str, Any]) -> float:
    """A profile column's missing rate, checked."""
    rate = column.get("missing_rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise InvalidInput(f"profile column {column['name']!r} has missing_rate {rate!r}; expected 0..1")
    return float(rate)


def _count_field(mapping: Mapping[str, Any], key: str, what: str) -> int:
    """A non-negative integer field of a profile."""
    value = mapping.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{what} needs {key!r} as an integer >= 0, got {value!r}")
    return value


def column_positions(frame: pandas.DataFrame) -> dict[str, int]:
    """Column name as str (as profiles name columns) -> its position; -1 for a repeated name."""
    positions: dict[str, int] = {}
    for i, name in enumerate(frame.columns):
        positions[str(name)] = -1 if str(name) in positions else i
    return positions


def import_pandas() -> Any:
    """Import pandas, saying how to install it when it is missing."""
    try:
        import pandas
    except ImportError as exc:  # pragma: no cover - pandas is in the test environment
        raise ImportError("drift needs pandas: pip install 'plinth[data]'") from exc
    return pandas
