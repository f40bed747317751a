"""Data drift: compare a current frame with a reference, column by column, in a few vectorized passes.

The reference is either a raw frame (`reference_from_frame`) or a dataset profile as stored
with every DatasetVersion (`reference_from_profile`, see plinth.tracking.profiles), so a
training set's profile can serve as the reference without its rows.

Per column, `drift` reports:

- numeric: PSI and Jensen-Shannon distance over the reference's quantile bins, and the
  Kolmogorov-Smirnov statistic and p-value: exact two-sample KS when the reference kept a
  sample of its values (`reference_from_frame`), KS against the binned reference CDF
  otherwise (evaluated at the bin edges only, so a lower bound of the exact statistic).
- categorical (and boolean): PSI and Jensen-Shannon distance over the reference's
  categories plus one "other" bucket (values the reference does not list: its rare values
  beyond the profile's top_k, and values it never saw), and a chi-square test of
  homogeneity on the same buckets.

Missing values (None, NaN, pd.NA) are left out of the distributions and compared through
the missing rate alone. Bins are the profile's: the de-duplicated reference quantiles, each
half-open except the last, which includes the reference maximum; current values below the
reference minimum or above its maximum (infinities included) fall in two extra buckets that
are empty in the reference, so values out of the reference range count as drift. Infinite
reference values (which a profile counts without their sign) are left out of the reference.

The rule (`DriftThresholds`): a column has drifted when its PSI or its Jensen-Shannon
distance is over its threshold and its test's p-value is under `p_value`, or when its
missing rate moved by more than `missing_rate`. The effect sizes decide on large data, where
every p-value is tiny; the p-value keeps small samples' noise from being flagged.

Cost: each numeric column is copied into one reused float64 buffer and sorted in place
(NumPy's SIMD sort); bins, KS and the missing count are then binary searches of the reference's
few edges and sample values in the sorted column. Categorical columns are counted with one
np.bincount of their pandas codes (value_counts for other dtypes). Extra memory is about two
columns' worth (the float64 buffer, and a categorical's codes as np.bincount widens them),
whatever the number of columns.

pandas and SciPy (scipy.special only) are imported inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from plinth.core.errors import InvalidInput
from plinth.tracking.profiles import profile_frame

if TYPE_CHECKING:
    import pandas

PSI_EPSILON = 1e-4
"""Proportions below this are raised to it in PSI, so empty buckets give a finite value."""

_NUMERIC_KINDS = ("numeric",)
_CATEGORICAL_KINDS = ("categorical", "boolean")


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class DriftThresholds:
    """When a column counts as drifted.

    A column has drifted when (psi > `psi` or js_distance > `js`) and p_value < `p_value`,
    or when |current missing rate - reference missing rate| > `missing_rate`.

    Attributes:
        psi: Population stability index above which the distribution moved (0.2 is the
            usual "significant shift" level; 0.1 to 0.2 is "moderate").
        js: Jensen-Shannon distance (base 2, between 0 and 1) above which the distribution
            moved; 0.1 is Evidently's default.
        p_value: The test's p-value (KS for numeric, chi-square for categorical) must be below
            this for PSI or JS to count, so that small samples' noise is not flagged: below a
            few hundred rows, sampling noise alone puts JS over 0.1 for most columns.
        missing_rate: Absolute change of the missing rate above which the column drifted.

    With these defaults, 1,000 or more current rows from the reference's own distribution
    are not flagged, while a 0.5 sd mean shift, a 1.5x scale change or a categorical whose
    proportions moved by 0.1 to 0.3 per category is (see tests/monitoring/test_drift.py).
    """

    psi: float = 0.2
    js: float = 0.1
    p_value: float = 0.01
    missing_rate: float = 0.1

    def __post_init__(self) -> None:
        for name in ("psi", "js", "missing_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise InvalidInput(f"DriftThresholds.{name} must be a number >= 0, got {value!r}")
        p = self.p_value
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p <= 1:
            raise InvalidInput(f"DriftThresholds.p_value must be in (0, 1], got {p!r}")

    def to_dict(self) -> dict[str, float]:
        """The thresholds as a JSON-safe dict."""
        return {"psi": self.psi, "js": self.js, "p_value": self.p_value, "missing_rate": self.missing_rate}


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


@dataclass(frozen=True)
class FeatureDrift:
    """One column's comparison.

    Attributes:
        name: Column name.
        kind: "numeric" or "categorical" (booleans are categorical).
        test: "ks" (two-sample Kolmogorov-Smirnov against the reference's sample),
            "ks_binned" (KS against the reference's binned CDF) or "chi2" (chi-square test
            of homogeneity on the category buckets).
        reference_count: Present (non-missing, for numeric finite) reference values.
        current_count: Present current values.
        reference_missing_rate: Share of reference rows missing.
        current_missing_rate: Share of current rows missing.
        psi: Population stability index, or None when either side has no present value.
        js_distance: Jensen-Shannon distance, base 2, in [0, 1], or None likewise.
        statistic: The test's statistic (KS D, or chi-square), or None likewise.
        p_value: The test's p-value, or None likewise.
        unseen_rate: Categorical only: share of present current values that the reference
            does not list among its categories (new values, or its own rare ones).
        drifted: Whether the column drifted, per `DriftThresholds`.
        reasons: Which criteria fired: "psi", "js", "missing_rate".
    """

    name: str
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "ks_binned", "chi2"]
    reference_count: int
    current_count: int
    reference_missing_rate: float
    current_missing_rate: float
    psi: float | None
    js_distance: float | None
    statistic: float | None
    p_value: float | None
    unseen_rate: float | None
    drifted: bool
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """The comparison as a JSON-safe dict (NaN and infinities written as None)."""
        out: dict[str, object] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            out[item.name] = list(value) if isinstance(value, tuple) else _plain(value)
        return out


@dataclass(frozen=True)
class DriftReport:
    """The result of `drift`: one row per feature, and the predictions column if asked for.

    Attributes:
        features: One comparison per feature, in the order compared.
        prediction: The predictions column's comparison, or None.
        thresholds: The thresholds the flags were decided with.
        reference_rows: Rows of the reference.
        current_rows: Rows of the current frame.
    """

    features: tuple[FeatureDrift, ...]
    prediction: FeatureDrift | None
    thresholds: DriftThresholds
    reference_rows: int
    current_rows: int

    @property
    def drifted_features(self) -> list[str]:
        """Names of the drifted features (the predictions column is not among them)."""
        return [f.name for f in self.features if f.drifted]

    @property
    def drift_share(self) -> float:
        """Share of the features that drifted, 0.0 when there are none."""
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    def to_dict(self) -> dict[str, object]:
        """The report as a JSON-safe dict."""
        return {
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "thresholds": self.thresholds.to_dict(),
            "drifted_features": self.drifted_features,
            "drift_share": self.drift_share,
            "features": [f.to_dict() for f in self.features],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }

    def to_frame(self) -> pandas.DataFrame:
        """One row per feature (role "feature") and the predictions column (role "prediction").

        Columns are FeatureDrift's fields plus "role"; reasons are joined with ",";
        missing values are NaN.
        """
        pd = _pandas()
        rows = [(f, "feature") for f in self.features]
        if self.prediction is not None:
            rows.append((self.prediction, "prediction"))
        records = []
        for item, role in rows:
            record = {"role": role, **item.to_dict()}
            record["reasons"] = ",".join(item.reasons)
            records.append(record)
        columns = ["role"] + [f.name for f in dataclasses.fields(FeatureDrift)]
        frame = pd.DataFrame.from_records(records, columns=columns)
        for name in ("psi", "js_distance", "statistic", "p_value", "unseen_rate"):
            frame[name] = frame[name].astype("float64")
        return frame


# --------------------------------------------------------------------------- references


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
    if not isinstance(df, _pandas().DataFrame):
        raise InvalidInput(f"reference_from_frame needs a pandas DataFrame, got {type(df).__name__}")
    bad_sample = isinstance(max_sample, bool) or not isinstance(max_sample, int) or max_sample < 2
    if max_sample is not None and bad_sample:
        raise InvalidInput(f"max_sample must be an integer >= 2 or None, got {max_sample!r}")
    base = reference_from_profile(profile_frame(df, bins=bins, top_k=top_k))
    positions = _positions(df)
    columns: dict[str, ColumnReference] = {}
    for name, column in base.columns.items():
        if isinstance(column, NumericReference):
            sample, cdf = _sample_cdf(df.iloc[:, positions[name]], max_sample)
            column = dataclasses.replace(column, sample=sample, sample_cdf=cdf)
        columns[name] = column
    return dataclasses.replace(base, columns=columns)


# --------------------------------------------------------------------------- drift


def drift(
    reference: Reference,
    current: pandas.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    prediction: str | None = None,
    thresholds: DriftThresholds | None = None,
) -> DriftReport:
    """Compare each feature of `current` with the reference.

    Args:
        reference: From `reference_from_frame` or `reference_from_profile`.
        current: The frame to check, its columns matched to the reference's by name (as str,
            like the profile's); columns the reference lacks are ignored.
        columns: Features to compare; default every comparable reference column except
            `prediction`.
        prediction: Name of the predictions column, compared the same way and reported as
            `DriftReport.prediction`, apart from the features.
        thresholds: The drift rule; default `DriftThresholds()`.

    Returns:
        The report.
    """
    pd = _pandas()
    if not isinstance(reference, Reference):
        raise InvalidInput(f"drift needs a Reference, got {type(reference).__name__}")
    if not isinstance(current, pd.DataFrame):
        raise InvalidInput(
            f"drift needs the current data as a pandas DataFrame, got {type(current).__name__}"
        )
    thresholds = DriftThresholds() if thresholds is None else thresholds
    names = _feature_names(reference, columns, prediction)
    series = _current_columns(current, [*names, *([prediction] if prediction is not None else [])])
    buffer = np.empty(len(current), dtype=np.float64)
    features = tuple(_compare(reference.columns[n], series[n], buffer, thresholds) for n in names)
    predicted = None
    if prediction is not None:
        predicted = _compare(reference.columns[prediction], series[prediction], buffer, thresholds)
    return DriftReport(
        features=features,
        prediction=predicted,
        thresholds=thresholds,
        reference_rows=reference.rows,
        current_rows=len(current),
    )


def _feature_names(reference: Reference, columns: Sequence[str] | None, prediction: str | None) -> list[str]:
    """The features to compare, checked against the reference."""
    if prediction is not None and prediction not in reference.columns:
        raise InvalidInput(_unknown_message(reference, [prediction], "predictions column"))
    if columns is None:
        return [name for name in reference.columns if name != prediction]
    if isinstance(columns, str):
        raise InvalidInput("columns must be a list of column names, not one str")
    names = list(columns)
    unknown = [name for name in names if name not in reference.columns]
    if unknown:
        raise InvalidInput(_unknown_message(reference, unknown, "columns"))
    if prediction is not None and prediction in names:
        raise InvalidInput(f"{prediction!r} is the predictions column; leave it out of columns")
    return names


def _unknown_message(reference: Reference, unknown: list[str], what: str) -> str:
    """Say which names the reference cannot compare and which it can."""
    message = f"the reference has no comparable {what} {unknown}; it has {list(reference.columns)}"
    if reference.skipped:
        message += f" (not comparable: {list(reference.skipped)})"
    return message


def _positions(frame: pandas.DataFrame) -> dict[str, int]:
    """Column name as str (as profiles name columns) -> its position; -1 for a repeated name."""
    positions: dict[str, int] = {}
    for i, name in enumerate(frame.columns):
        positions[str(name)] = -1 if str(name) in positions else i
    return positions


def _current_columns(current: pandas.DataFrame, names: list[str]) -> dict[str, pandas.Series]:
    """The compared columns of the current frame, by the reference's (str) names."""
    positions = _positions(current)
    absent = [name for name in names if name not in positions]
    if absent:
        raise InvalidInput(f"the current data lacks the reference's columns {absent}")
    repeated = [name for name in names if positions[name] < 0]
    if repeated:
        raise InvalidInput(f"the current data has more than one column named each of {repeated}")
    return {name: current.iloc[:, positions[name]] for name in names}


def _compare(
    reference: ColumnReference, series: pandas.Series, buffer: np.ndarray, thresholds: DriftThresholds
) -> FeatureDrift:
    """Compare one column with its reference."""
    if isinstance(reference, NumericReference):
        return _compare_numeric(reference, series, buffer, thresholds)
    return _compare_categorical(reference, series, thresholds)


def _compare_numeric(
    reference: NumericReference, series: pandas.Series, buffer: np.ndarray, thresholds: DriftThresholds
) -> FeatureDrift:
    """PSI, JS and KS of a numeric column against its reference."""
    present = _sorted_present(series, buffer)
    rows = len(series)
    test: Literal["ks", "ks_binned"] = "ks" if reference.sample is not None else "ks_binned"
    psi = js = statistic = p_value = None
    if present.size and reference.count:
        counts = _bucket_counts(present, reference.edges)
        psi, js = _psi(reference.counts, counts), _js_distance(reference.counts, counts)
        statistic = _ks_statistic(reference, present, counts)
        p_value = _ks_p_value(statistic, reference.count, present.size)
    return _feature(
        reference,
        test,
        current_count=present.size,
        current_missing=rows - present.size,
        rows=rows,
        metrics=(psi, js, statistic, p_value, None),
        thresholds=thresholds,
    )


def _compare_categorical(
    reference: CategoricalReference, series: pandas.Series, thresholds: DriftThresholds
) -> FeatureDrift:
    """PSI, JS and chi-square of a categorical column against its reference."""
    counts, missing, unseen = _category_counts(reference, series)
    present = int(counts.sum())
    psi = js = statistic = p_value = unseen_rate = None
    if present:
        unseen_rate = unseen / present
    if present and reference.count:
        psi, js = _psi(reference.counts, counts), _js_distance(reference.counts, counts)
        statistic, p_value = _chi_square(reference.counts, counts)
    return _feature(
        reference,
        "chi2",
        current_count=present,
        current_missing=missing,
        rows=len(series),
        metrics=(psi, js, statistic, p_value, unseen_rate),
        thresholds=thresholds,
    )


def _feature(
    reference: ColumnReference,
    test: Literal["ks", "ks_binned", "chi2"],
    *,
    current_count: int,
    current_missing: int,
    rows: int,
    metrics: tuple[float | None, float | None, float | None, float | None, float | None],
    thresholds: DriftThresholds,
) -> FeatureDrift:
    """Assemble a FeatureDrift and decide its flag."""
    psi, js, statistic, p_value, unseen_rate = metrics
    missing_rate = current_missing / rows if rows else 0.0
    reasons = _reasons(psi, js, p_value, missing_rate - reference.missing_rate, thresholds) if rows else ()
    return FeatureDrift(
        name=reference.name,
        kind=reference.kind,  # type: ignore[arg-type]
        test=test,
        reference_count=reference.count,
        current_count=int(current_count),
        reference_missing_rate=float(reference.missing_rate),
        current_missing_rate=float(missing_rate),
        psi=psi,
        js_distance=js,
        statistic=statistic,
        p_value=p_value,
        unseen_rate=unseen_rate,
        drifted=bool(reasons),
        reasons=reasons,
    )


def _reasons(
    psi: float | None, js: float | None, p_value: float | None, missing_change: float, t: DriftThresholds
) -> tuple[str, ...]:
    """The criteria of the drift rule that fire."""
    reasons = []
    significant = p_value is not None and p_value < t.p_value
    if significant and psi is not None and psi > t.psi:
        reasons.append("psi")
    if significant and js is not None and js > t.js:
        reasons.append("js")
    if abs(missing_change) > t.missing_rate:
        reasons.append("missing_rate")
    return tuple(reasons)


# --------------------------------------------------------------------------- numeric columns


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


def _sorted_present(series: pandas.Series, buffer: np.ndarray) -> np.ndarray:
    """The column's non-missing values, sorted in `buffer` (returned as a view of it).

    The column is copied first, so the caller's frame is never reordered. NaN sorts last,
    so the present values are the prefix up to the last +inf.
    """
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
        values = series.to_numpy()
    else:
        try:
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"column {series.name!r} is numeric in the reference but holds {dtype} values "
                f"that are not numbers: {exc}"
            ) from exc
    np.copyto(buffer, values, casting="unsafe")
    buffer.sort()
    return buffer[: int(np.searchsorted(buffer, np.inf, side="right"))]


def _bucket_counts(present: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Count sorted values in the reference's buckets: below, each bin, above.

    Bins are [e_i, e_i+1) except the last, [e_k-1, e_k], as in the profile's histogram.
    """
    bins = edges.size - 1
    positions = np.empty(bins + 3, dtype=np.int64)
    positions[0] = 0
    positions[1 : bins + 1] = np.searchsorted(present, edges[:-1], side="left")
    positions[bins + 1] = np.searchsorted(present, edges[-1], side="right")
    positions[bins + 2] = present.size
    return np.diff(positions)


def _ks_statistic(reference: NumericReference, present: np.ndarray, counts: np.ndarray) -> float:
    """Kolmogorov-Smirnov D between the reference and the sorted current values.

    With a reference sample: exact two-sample D. Between two consecutive sample values the
    reference CDF is flat and the current one rises, so the largest gap on that stretch is
    at one of its ends: at the sample value itself (current CDF counting values <= it) or
    just before the next one (counting values < it). Without a sample: the largest gap
    between the two cumulative bucket distributions.
    """
    if reference.sample is None or reference.sample_cdf is None:
        ref_cdf = np.cumsum(reference.counts) / reference.count
        return float(np.max(np.abs(ref_cdf - np.cumsum(counts) / present.size)))
    values, cdf = reference.sample, reference.sample_cdf
    at = np.searchsorted(present, values, side="right") / present.size
    before = np.searchsorted(present, values, side="left") / present.size
    previous = np.concatenate(([0.0], cdf[:-1]))
    return float(max(np.max(np.abs(cdf - at)), np.max(np.abs(previous - before))))


def _ks_p_value(statistic: float, n_reference: int, n_current: int) -> float:
    """Asymptotic two-sample KS p-value, with Stephens' small-sample correction.

    p = Q_KS((sqrt(n_e) + 0.12 + 0.11 / sqrt(n_e)) * D), n_e = n m / (n + m), where Q_KS is
    the Kolmogorov distribution's survival function (scipy.special.kolmogorov).
    """
    from scipy.special import kolmogorov

    root = math.sqrt(n_reference * n_current / (n_reference + n_current))
    return float(np.clip(kolmogorov((root + 0.12 + 0.11 / root) * statistic), 0.0, 1.0))


# --------------------------------------------------------------------------- categorical columns


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


def _category_counts(reference: CategoricalReference, series: pandas.Series) -> tuple[np.ndarray, int, int]:
    """Count a column's values in the reference's buckets (categories, then "other").

    Returns:
        (counts per bucket, missing count, count of values the reference does not list).
    """
    labels, label_counts, missing = _value_counts(series)
    slot_of = {category: i for i, category in enumerate(reference.categories)}
    other = len(reference.categories)
    slots = np.fromiter((slot_of.get(label, other) for label in labels), dtype=np.intp, count=len(labels))
    counts = np.bincount(slots, weights=label_counts, minlength=other + 1).astype(np.int64)
    unseen = int(label_counts[slots == other].sum())
    return counts, missing, unseen


def _value_counts(series: pandas.Series) -> tuple[list[str], np.ndarray, int]:
    """Distinct present values as strings, their counts, and the missing count.

    A pandas categorical is counted with one bincount of its codes; other dtypes with
    value_counts (unhashable values by their text, as in the profile).
    """
    pd = _pandas()
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = series.cat.categories
        codes = series.cat.codes.to_numpy()
        per_code = np.bincount(codes + 1, minlength=len(categories) + 1)
        return [str(c) for c in categories], per_code[1:], int(per_code[0])
    try:
        counted = series.value_counts(dropna=True, sort=False)
    except TypeError:
        counted = series.dropna().astype(str).value_counts(sort=False)
    counts = counted.to_numpy(dtype=np.int64)
    return [str(value) for value in counted.index], counts, len(series) - int(counts.sum())


def _chi_square(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors (no continuity correction).

    Buckets empty on both sides are dropped; with fewer than two left the statistic is 0
    and the p-value 1. Same as scipy.stats.chi2_contingency(table, correction=False).
    """
    from scipy.special import chdtrc

    table = np.vstack((reference, current)).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, float(chdtrc(table.shape[1] - 1, statistic))


# --------------------------------------------------------------------------- distances


def _psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index, sum((c - r) * ln(c / r)), proportions floored at PSI_EPSILON."""
    r = np.maximum(reference / reference.sum(), PSI_EPSILON)
    c = np.maximum(current / current.sum(), PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def _js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2 (the square root of the divergence), in [0, 1]."""
    p = reference / reference.sum()
    q = current / current.sum()
    m = (p + q) / 2
    divergence = (_relative_entropy(p, m) + _relative_entropy(q, m)) / 2
    return float(math.sqrt(max(divergence, 0.0)))


def _relative_entropy(p: np.ndarray, m: np.ndarray) -> float:
    """sum(p * log2(p / m)) over p > 0 (where p > 0, m > 0 too)."""
    positive = p > 0
    return float(np.sum(p[positive] * np.log2(p[positive] / m[positive])))


# --------------------------------------------------------------------------- helpers


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


def _plain(value: object) -> object:
    """A JSON-safe Python value: numpy scalars unwrapped, NaN and infinities as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _pandas() -> Any:
    """Import pandas, saying how to install it when it is missing."""
    try:
        import pandas
    except ImportError as exc:  # pragma: no cover - pandas is in the test environment
        raise ImportError("drift needs pandas: pip install 'plinth[data]'") from exc
    return pandas
