"""Drift statistics: bucket counts, distances and tests between a reference and a current column.

- numeric: PSI and Jensen-Shannon distance over the reference's quantile bins, and the
  Kolmogorov-Smirnov statistic and p-value: exact two-sample KS when the reference kept a
  sample of its values (`reference_from_frame`), KS against the binned reference CDF
  otherwise (evaluated at the bin edges only, so a lower bound of the exact statistic).
- categorical (and boolean): PSI and Jensen-Shannon distance over the reference's
  categories plus one "other" bucket (values the reference does not list: its rare values
  beyond the profile's top_k, and values it never saw), and a chi-square test of
  homogeneity on the same buckets.

Missing values (None, NaN, pd.NA) are left out of the counts. Current values below the
reference minimum or above its maximum (infinities included) fall in two extra buckets that
are empty in the reference, so values out of the reference range count as drift.

Cost: a numeric column is copied into the caller's float64 buffer and sorted in place (NumPy's
SIMD sort); bins, KS and the missing count are then binary searches of the reference's few
edges and sample values in the sorted column. Categorical columns are counted with one
np.bincount of their pandas codes (value_counts for other dtypes).

SciPy (scipy.special only) is imported inside the functions that need it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from plinth.core.errors import InvalidInput
from plinth.monitoring.references import import_pandas

if TYPE_CHECKING:
    import pandas

    from plinth.monitoring.references import CategoricalReference, NumericReference

PSI_EPSILON = 1e-4
"""Proportions below this are raised to it in PSI, so empty buckets give a finite value."""


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index, sum((c - r) * ln(c / r)), proportions floored at PSI_EPSILON."""
    r = np.maximum(reference / reference.sum(), PSI_EPSILON)
    c = np.maximum(current / current.sum(), PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
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


def sorted_present(series: pandas.Series, buffer: np.ndarray) -> np.ndarray:
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


def bucket_counts(present: np.ndarray, edges: np.ndarray) -> np.ndarray:
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


def ks_statistic(reference: NumericReference, present: np.ndarray, counts: np.ndarray) -> float:
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


def ks_p_value(statistic: float, n_reference: int, n_current: int) -> float:
    """Asymptotic two-sample KS p-value, with Stephens' small-sample correction.

    p = Q_KS((sqrt(n_e) + 0.12 + 0.11 / sqrt(n_e)) * D), n_e = n m / (n + m), where Q_KS is
    the Kolmogorov distribution's survival function (scipy.special.kolmogorov).
    """
    from scipy.special import kolmogorov

    root = math.sqrt(n_reference * n_current / (n_reference + n_current))
    return float(np.clip(kolmogorov((root + 0.12 + 0.11 / root) * statistic), 0.0, 1.0))


def category_counts(reference: CategoricalReference, series: pandas.Series) -> tuple[np.ndarray, int, int]:
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
    pd = import_pandas()
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


def chi_square(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
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
