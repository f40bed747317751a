"""Data drift: compare a current frame with a reference, column by column, in a few vectorized passes.

The reference is made by plinth.monitoring.references, from a raw frame or from a stored dataset
profile; the distances and tests come from plinth.monitoring.statistics. Per column, `drift` reports
PSI, Jensen-Shannon distance and a test: Kolmogorov-Smirnov for numeric columns, chi-square for
categorical and boolean ones. Missing values (None, NaN, pd.NA) are compared through the missing
rate alone.

The rule (`DriftThresholds`): a column has drifted when its PSI or its Jensen-Shannon
distance is over its threshold and its test's p-value is under `p_value`, or when its
missing rate moved by more than `missing_rate`. The effect sizes decide on large data, where
every p-value is tiny; the p-value keeps small samples' noise from being flagged.

Cost: every numeric column is sorted in one reused float64 buffer, so extra memory is about two
columns' worth (the float64 buffer, and a categorical's codes as np.bincount widens them),
whatever the number of columns.

pandas is imported inside the functions that need it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from plinth.core.errors import InvalidInput
from plinth.monitoring import statistics
from plinth.monitoring.references import (
    CategoricalReference,
    ColumnReference,
    NumericReference,
    Reference,
    column_positions,
    import_pandas,
    reference_from_frame,
    reference_from_profile,
)
from plinth.monitoring.statistics import PSI_EPSILON

if TYPE_CHECKING:
    import pandas

__all__ = [
    "PSI_EPSILON",
    "CategoricalReference",
    "ColumnReference",
    "DriftReport",
    "DriftThresholds",
    "FeatureDrift",
    "NumericReference",
    "Reference",
    "drift",
    "reference_from_frame",
    "reference_from_profile",
]


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


@dataclass(frozen=True, repr=False)
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

    def __repr__(self) -> str:
        return f"<DriftReport: {len(self.drifted_features)} of {len(self.features)} features drifted>"

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
        pd = import_pandas()
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
    pd = import_pandas()
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


def _current_columns(current: pandas.DataFrame, names: list[str]) -> dict[str, pandas.Series]:
    """The compared columns of the current frame, by the reference's (str) names."""
    positions = column_positions(current)
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
    present = statistics.sorted_present(series, buffer)
    rows = len(series)
    test: Literal["ks", "ks_binned"] = "ks" if reference.sample is not None else "ks_binned"
    psi = js = statistic = p_value = None
    if present.size and reference.count:
        counts = statistics.bucket_counts(present, reference.edges)
        psi, js = statistics.psi(reference.counts, counts), statistics.js_distance(reference.counts, counts)
        statistic = statistics.ks_statistic(reference, present, counts)
        p_value = statistics.ks_p_value(statistic, reference.count, present.size)
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
    counts, missing, unseen = statistics.category_counts(reference, series)
    present = int(counts.sum())
    psi = js = statistic = p_value = unseen_rate = None
    if present:
        unseen_rate = unseen / present
    if present and reference.count:
        psi, js = statistics.psi(reference.counts, counts), statistics.js_distance(reference.counts, counts)
        statistic, p_value = statistics.chi_square(reference.counts, counts)
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


def _plain(value: object) -> object:
    """A JSON-safe Python value: numpy scalars unwrapped, NaN and infinities as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
