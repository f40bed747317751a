"""Profile datasets: a compact, JSON-safe summary used later as a drift reference.

pandas and numpy are imported inside the functions so that `import plinth` stays light;
pandas comes with the `plinth[data]` extra.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from plinth.core.errors import InvalidInput

if TYPE_CHECKING:
    import numpy
    import pandas

_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip", ".csv.zst")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_ACCEPTED = (
    "a pandas DataFrame or Series, a 1-D or 2-D numpy array, or a path to a .csv, .parquet or .pq file"
)


def profile_frame(df: pandas.DataFrame, *, bins: int = 10, top_k: int = 20) -> dict[str, object]:
    """Summarize every column of a frame: kind, missing rate and a distribution.

    Numeric columns get min, max, mean, std (ddof=1; None below two values), bins+1
    quantile edges and a histogram over the de-duplicated edges; these describe the
    finite values, and +/-inf are counted in "infinite_count". Categorical and boolean
    columns get the distinct count, the top_k most frequent values (as strings) and
    the count of the rest. Datetime columns get min and max as ISO strings.

    Args:
        df: The frame to profile.
        bins: Number of quantile bins for numeric columns, at least 1.
        top_k: Number of most frequent values kept for categorical columns, at least 0.

    Returns:
        {"rows": int, "columns": [one dict per column]}; only plain Python values,
        with NaN written as None, so the result is JSON-safe.
    """
    pd = _pandas()
    if not isinstance(df, pd.DataFrame):
        raise InvalidInput(
            f"profile_frame needs a pandas DataFrame, got {type(df).__name__}; "
            "convert it with plinth.tracking.profiles.to_frame first"
        )
    _check_count("bins", bins, minimum=1)
    _check_count("top_k", top_k, minimum=0)
    columns = [_profile_column(str(name), df.iloc[:, i], bins, top_k) for i, name in enumerate(df.columns)]
    return {"rows": len(df), "columns": columns}


def schema_of(df: pandas.DataFrame) -> list[dict[str, str]]:
    """List column names and pandas dtypes.

    Args:
        df: The frame to describe.

    Returns:
        [{"name": str, "dtype": str}] in column order.
    """
    pd = _pandas()
    if not isinstance(df, pd.DataFrame):
        raise InvalidInput(f"schema_of needs a pandas DataFrame, got {type(df).__name__}")
    return [{"name": str(name), "dtype": str(dtype)} for name, dtype in df.dtypes.items()]


def to_frame(data: object) -> pandas.DataFrame:
    """Turn a frame, series, array or csv/parquet path into a DataFrame with str column names.

    Args:
        data: A pandas DataFrame (returned as is when its column names are all str),
            a pandas Series, a 1-D or 2-D numpy array (columns "0", "1", ...), or a
            str or os.PathLike path to a .csv, .parquet or .pq file.

    Returns:
        A DataFrame whose column names are all str.
    """
    import numpy as np

    pd = _pandas()
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, pd.Series):
        frame = data.to_frame()
    elif isinstance(data, np.ndarray):
        frame = _array_frame(pd, data)
    elif isinstance(data, str | os.PathLike):
        frame = _read_file(pd, os.fspath(data))
    else:
        raise InvalidInput(f"cannot make a data frame from {type(data).__name__}; expected {_ACCEPTED}")
    if all(isinstance(name, str) for name in frame.columns):
        return frame
    return frame.set_axis([str(name) for name in frame.columns], axis=1)


def _pandas() -> Any:
    """Import pandas, saying how to install it when it is missing."""
    try:
        import pandas
    except ImportError as exc:  # pragma: no cover - pandas is in the test environment
        raise ImportError("dataset profiles need pandas: pip install 'plinth[data]'") from exc
    return pandas


def _check_count(name: str, value: object, *, minimum: int) -> None:
    """Reject a non-integer or too small count argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(f"{name} must be an integer >= {minimum}, got {value!r}")


def _array_frame(pd: Any, array: numpy.ndarray) -> pandas.DataFrame:
    """Wrap a 1-D or 2-D array (or a 1-D structured array) in a DataFrame."""
    if array.ndim == 1 and array.dtype.names:
        return pd.DataFrame(array)
    if array.ndim == 1:
        return pd.DataFrame({"0": array})
    if array.ndim == 2:
        return pd.DataFrame(array, columns=[str(i) for i in range(array.shape[1])])
    raise InvalidInput(f"cannot make a data frame from a {array.ndim}-D array; pass a 1-D or 2-D array")


def _read_file(pd: Any, path: str) -> pandas.DataFrame:
    """Read a csv or parquet file, turning read failures into InvalidInput."""
    lower = path.lower()
    if not lower.endswith(_CSV_SUFFIXES + _PARQUET_SUFFIXES):
        raise InvalidInput(
            f"cannot read {path!r}: expected a file ending in {', '.join(_CSV_SUFFIXES + _PARQUET_SUFFIXES)}"
        )
    if not os.path.exists(path):
        raise InvalidInput(f"data file {path!r} does not exist")
    try:
        if lower.endswith(_CSV_SUFFIXES):
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (ValueError, OSError, ImportError) as exc:
        raise InvalidInput(f"cannot read data file {path!r}: {exc}") from exc


def _kind(series: pandas.Series) -> str:
    """Classify a column as numeric, categorical, datetime, boolean or other by its dtype."""
    from pandas.api import types

    dtype = series.dtype
    if types.is_bool_dtype(dtype):
        return "boolean"
    if types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if types.is_numeric_dtype(dtype) and not types.is_complex_dtype(dtype):
        return "numeric"
    if isinstance(dtype, types.CategoricalDtype) or types.is_string_dtype(dtype):
        return "categorical"
    if types.is_object_dtype(dtype):
        return "categorical"
    return "other"


def _profile_column(name: str, series: pandas.Series, bins: int, top_k: int) -> dict[str, object]:
    """Profile one column."""
    kind = _kind(series)
    missing = int(series.isna().sum())
    profile: dict[str, object] = {
        "name": name,
        "dtype": str(series.dtype),
        "kind": kind,
        "missing_rate": missing / len(series) if len(series) else 0.0,
    }
    if kind == "numeric":
        profile.update(_numeric_stats(series, bins))
    elif kind in ("categorical", "boolean"):
        profile.update(_top_values(series, top_k))
    elif kind == "datetime":
        profile.update(_datetime_range(series))
    return profile


def _numeric_stats(series: pandas.Series, bins: int) -> dict[str, object]:
    """Min, max, mean, std, quantile edges and histogram of the finite values."""
    import numpy as np

    values = series.to_numpy(dtype="float64", na_value=np.nan)
    finite_mask = np.isfinite(values)
    finite = values[finite_mask]
    infinite = int(np.count_nonzero(np.isinf(values)))
    if finite.size == 0:
        return {
            "min": None,
            "max": None,
            "mean": None,
            "std": None,
            "infinite_count": infinite,
            "quantiles": [],
            "histogram": {"edges": [], "counts": []},
        }
    with np.errstate(all="ignore"):  # overflow of huge values gives inf, reported as None
        mean = float(np.mean(finite))
        std = float(np.std(finite, ddof=1)) if finite.size > 1 else None
    ordered = np.sort(finite)  # one fast sort makes quantiles and histogram cheap
    quantiles = _quantiles(ordered, bins)
    edges, counts = _histogram(ordered, quantiles)
    return {
        "min": float(quantiles[0]),
        "max": float(quantiles[-1]),
        "mean": _finite_or_none(mean),
        "std": _finite_or_none(std),
        "infinite_count": infinite,
        "quantiles": [float(q) for q in quantiles],
        "histogram": {"edges": edges, "counts": counts},
    }


def _quantiles(ordered: numpy.ndarray, bins: int) -> numpy.ndarray:
    """Quantile edges at linspace(0, 1, bins + 1), linearly interpolated.

    Where interpolating between values near the float64 limits overflows, the edges are
    taken as the lower neighbouring values instead, so every edge is finite.
    """
    import numpy as np

    levels = np.linspace(0.0, 1.0, bins + 1)
    with np.errstate(all="ignore"):
        quantiles = np.quantile(ordered, levels)
    if not np.all(np.isfinite(quantiles)):
        quantiles = np.quantile(ordered, levels, method="lower")
    return quantiles


def _histogram(ordered: numpy.ndarray, quantiles: numpy.ndarray) -> tuple[list[float], list[int]]:
    """Count sorted values in the bins between de-duplicated quantile edges.

    Same result as np.histogram(ordered, edges), found by binary search in the sorted
    values: bins are half-open except the last, which ends at the maximum and includes
    it. A constant column gets edges [c, c] and one bin.
    """
    import numpy as np

    edges = np.unique(quantiles)
    if edges.size == 1:
        edges = np.repeat(edges, 2)
    starts = np.searchsorted(ordered, edges[:-1], side="left")
    counts = np.diff(np.append(starts, ordered.size))
    return [float(e) for e in edges], [int(c) for c in counts]


def _top_values(series: pandas.Series, top_k: int) -> dict[str, object]:
    """Distinct count, top_k most frequent values as [str, count], and the rest's count."""
    try:
        counts = series.value_counts(dropna=True, sort=True)
    except TypeError:  # unhashable objects (lists, dicts): count their text
        counts = series.dropna().astype(str).value_counts(sort=True)
    counts = counts[counts > 0]  # a categorical lists unused categories with count 0
    top = counts.iloc[:top_k]
    return {
        "distinct": len(counts),
        "top": [[str(value), int(count)] for value, count in top.items()],
        "other_count": int(counts.sum() - top.sum()),
    }


def _datetime_range(series: pandas.Series) -> dict[str, object]:
    """Earliest and latest timestamp as ISO strings, None when all are missing."""
    pd = _pandas()
    low, high = series.min(), series.max()
    return {
        "min": None if pd.isna(low) else low.isoformat(),
        "max": None if pd.isna(high) else high.isoformat(),
    }


def _finite_or_none(value: float | None) -> float | None:
    """Return value, or None when it is missing, NaN or infinite."""
    return value if value is not None and math.isfinite(value) else None
