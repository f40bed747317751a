"""Tests for plinth.monitoring.drift: flags on seeded shifted and unshifted data, against both references."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from plinth.core.errors import InvalidInput
from plinth.monitoring.drift import (
    CategoricalReference,
    DriftReport,
    DriftThresholds,
    FeatureDrift,
    NumericReference,
    Reference,
    drift,
    reference_from_frame,
    reference_from_profile,
)
from plinth.tracking.profiles import profile_frame

COLOURS = ["red", "green", "blue", "grey"]
BASE_P = [0.4, 0.3, 0.2, 0.1]
SHIFTED = {"mean_shift", "scale_change", "colour_shift", "size_shift"}


def make_frame(n: int, seed: int, *, shifted: bool = False) -> pd.DataFrame:
    """Seeded data: numeric (normal, lognormal, integer, with gaps) and categorical columns.

    With shifted=True, four columns move: a mean shift (+0.5 sd), a scale change (x1.5) and
    two categorical proportion changes (object strings and a pandas categorical).
    """
    rng = np.random.default_rng(seed)
    with_gaps = rng.normal(5.0, 2.0, n)
    with_gaps[rng.random(n) < 0.05] = np.nan
    colour_p = [0.15, 0.15, 0.3, 0.4] if shifted else BASE_P
    size_p = [0.6, 0.3, 0.1] if shifted else [0.2, 0.3, 0.5]
    colour = rng.choice(COLOURS, n, p=colour_p).astype(object)
    colour[rng.random(n) < 0.02] = None
    return pd.DataFrame(
        {
            "mean_shift": rng.normal(0.5 if shifted else 0.0, 1.0, n),
            "scale_change": rng.normal(10.0, 3.0 * (1.5 if shifted else 1.0), n),
            "steady_normal": rng.normal(-3.0, 0.5, n),
            "steady_lognormal": rng.lognormal(0.0, 1.0, n),
            "steady_count": rng.poisson(3.0, n),
            "steady_gaps": with_gaps,
            "colour_shift": pd.Series(colour, dtype=object),
            "size_shift": pd.Categorical.from_codes(rng.choice(3, n, p=size_p), ["S", "M", "L"]),
            "steady_flag": rng.random(n) < 0.3,
            "steady_city": pd.Categorical.from_codes(rng.choice(4, n, p=BASE_P), ["a", "b", "c", "d"]),
        }
    )


def from_frame(df: pd.DataFrame) -> Reference:
    """A frame-based reference."""
    return reference_from_frame(df)


def from_profile(df: pd.DataFrame) -> Reference:
    """A profile-based reference, the profile round-tripped through JSON as it is stored."""
    return reference_from_profile(json.loads(json.dumps(profile_frame(df))))


BUILDERS: list[Callable[[pd.DataFrame], Reference]] = [from_frame, from_profile]


def _row(report: DriftReport, name: str) -> FeatureDrift:
    """One feature's comparison."""
    return next(f for f in report.features if f.name == name)


@pytest.fixture(scope="module")
def reference_df() -> pd.DataFrame:
    return make_frame(20_000, seed=1)


@pytest.mark.parametrize("build", BUILDERS, ids=["frame", "profile"])
def test_shifted_columns_are_flagged_and_steady_ones_are_not(
    reference_df: pd.DataFrame, build: Callable[[pd.DataFrame], Reference]
) -> None:
    reference = build(reference_df)
    shifted = drift(reference, make_frame(30_000, seed=2, shifted=True))
    assert set(shifted.drifted_features) == SHIFTED
    steady = drift(reference, make_frame(30_000, seed=3))
    assert steady.drifted_features == []
    assert all(f.reasons == () for f in steady.features)


def test_flags_hold_at_a_million_rows() -> None:
    reference_df = make_frame(100_000, seed=11)
    for build in BUILDERS:
        reference = build(reference_df)
        steady = drift(reference, make_frame(1_000_000, seed=12))
        assert steady.drifted_features == []
        assert all(f.p_value is not None for f in steady.features)
        shifted = drift(reference, make_frame(1_000_000, seed=13, shifted=True))
        assert set(shifted.drifted_features) == SHIFTED
        assert all(_row(shifted, name).p_value < 1e-12 for name in SHIFTED)


def test_profile_reference_matches_frame_reference(reference_df: pd.DataFrame) -> None:
    current = make_frame(30_000, seed=4, shifted=True)
    by_frame = drift(from_frame(reference_df), current)
    by_profile = drift(from_profile(reference_df), current)
    assert by_frame.drifted_features == by_profile.drifted_features
    for a, b in zip(by_frame.features, by_profile.features, strict=True):
        assert (a.name, a.kind, a.drifted, a.reasons) == (b.name, b.kind, b.drifted, b.reasons)
        assert a.psi == pytest.approx(b.psi, rel=1e-9)
        assert a.js_distance == pytest.approx(b.js_distance, rel=1e-9)
        assert a.reference_count == b.reference_count
        if a.kind == "numeric":
            assert (a.test, b.test) == ("ks", "ks_binned")
            assert b.statistic <= a.statistic + 1e-12  # the binned D is a lower bound
        else:
            assert a.statistic == pytest.approx(b.statistic) and a.test == b.test == "chi2"


@pytest.mark.parametrize("column", ["mean_shift", "steady_count", "steady_gaps", "steady_lognormal"])
def test_ks_is_the_exact_two_sample_statistic(reference_df: pd.DataFrame, column: str) -> None:
    current = make_frame(30_000, seed=5, shifted=True)
    row = _row(drift(reference_from_frame(reference_df), current), column)
    expected = stats.ks_2samp(reference_df[column].dropna(), current[column].dropna(), method="asymp")
    assert row.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert row.p_value == pytest.approx(expected.pvalue, abs=0.01)


def test_ks_p_value_is_close_to_scipy_on_small_samples() -> None:
    rng = np.random.default_rng(6)
    for shift in (0.0, 0.3, 0.6):
        ref = pd.DataFrame({"x": rng.normal(0, 1, 80)})
        cur = pd.DataFrame({"x": rng.normal(shift, 1, 60)})
        row = drift(reference_from_frame(ref), cur).features[0]
        expected = stats.ks_2samp(ref["x"], cur["x"], method="asymp")
        assert row.statistic == pytest.approx(expected.statistic)
        assert row.p_value == pytest.approx(expected.pvalue, abs=0.02)


def test_chi_square_psi_and_js_match_their_definitions(reference_df: pd.DataFrame) -> None:
    current = make_frame(30_000, seed=7, shifted=True)
    row = _row(drift(reference_from_frame(reference_df), current), "colour_shift")
    ref_counts = reference_df["colour_shift"].value_counts().reindex(COLOURS).to_numpy()
    cur_counts = current["colour_shift"].value_counts().reindex(COLOURS).to_numpy()
    chi2, p, _, _ = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False)
    assert row.statistic == pytest.approx(chi2) and row.p_value == pytest.approx(p, abs=1e-12)
    p_ref, p_cur = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    assert row.js_distance == pytest.approx(jensenshannon(p_ref, p_cur, base=2))
    assert row.psi == pytest.approx(np.sum((p_cur - p_ref) * np.log(p_cur / p_ref)))


def test_numeric_psi_uses_the_reference_deciles() -> None:
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 10_000)})
    cur = pd.DataFrame({"x": rng.normal(0.3, 1, 10_000)})
    row = drift(reference_from_frame(ref), cur).features[0]
    edges = np.quantile(ref["x"], np.linspace(0, 1, 11))
    inner = np.searchsorted(np.sort(cur["x"]), edges[1:-1])
    below, above = np.sum(cur["x"] < edges[0]), np.sum(cur["x"] > edges[-1])
    cur_bins = np.diff(np.concatenate(([below], inner, [len(cur) - above])))
    p_cur = np.concatenate(([below], cur_bins, [above])) / len(cur)
    p_ref = np.concatenate(([0], np.full(10, 0.1), [0]))
    eps_ref, eps_cur = np.maximum(p_ref, 1e-4), np.maximum(p_cur, 1e-4)
    assert row.psi == pytest.approx(np.sum((eps_cur - eps_ref) * np.log(eps_cur / eps_ref)), rel=1e-3)
    assert row.js_distance == pytest.approx(jensenshannon(p_ref, p_cur, base=2), rel=1e-3)


def test_missing_values_are_left_out_and_their_rate_compared() -> None:
    rng = np.random.default_rng(9)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 5_000), "c": rng.choice(["a", "b"], 5_000).astype(object)})
    cur = pd.DataFrame({"x": rng.normal(0, 1, 5_000), "c": rng.choice(["a", "b"], 5_000).astype(object)})
    cur.loc[:2_000, "x"] = np.nan
    cur.loc[:2_000, "c"] = None
    report = drift(reference_from_frame(ref), cur)
    for row in report.features:
        assert row.current_count == 5_000 - 2_001
        assert row.current_missing_rate == pytest.approx(2_001 / 5_000)
        assert row.reasons == ("missing_rate",)
    relaxed = drift(reference_from_frame(ref), cur, thresholds=DriftThresholds(missing_rate=0.5))
    assert relaxed.drifted_features == []


def test_nullable_and_all_missing_columns() -> None:
    rng = np.random.default_rng(10)
    ref = pd.DataFrame({"x": pd.array(rng.integers(0, 10, 1_000), dtype="Int64"), "c": ["a", "b"] * 500})
    cur = pd.DataFrame(
        {"x": pd.array([None] * 1_000, dtype="Int64"), "c": pd.Series([None] * 1_000, dtype=object)}
    )
    report = drift(reference_from_frame(ref), cur)
    for row in report.features:
        assert (row.psi, row.js_distance, row.statistic, row.p_value) == (None, None, None, None)
        assert row.current_missing_rate == 1.0 and row.reasons == ("missing_rate",)
    json.dumps(report.to_dict(), allow_nan=False)
    nullable_cur = pd.DataFrame(
        {"x": pd.array(rng.integers(0, 10, 1_000), dtype="Int64"), "c": ["b", "a"] * 500}
    )
    assert drift(reference_from_frame(ref), nullable_cur).drifted_features == []


def test_unseen_categories_count_as_drift_when_frequent() -> None:
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({"c": rng.choice(COLOURS, 20_000, p=BASE_P)})
    rare = rng.choice(COLOURS, 20_000, p=BASE_P).astype(object)
    rare[:20] = "purple"
    frequent = rng.choice([*COLOURS, "purple"], 20_000, p=[0.3, 0.2, 0.15, 0.05, 0.3])
    for build in BUILDERS:
        reference = build(ref)
        quiet = drift(reference, pd.DataFrame({"c": rare})).features[0]
        assert quiet.unseen_rate == pytest.approx(20 / 20_000) and not quiet.drifted
        loud = drift(reference, pd.DataFrame({"c": frequent})).features[0]
        assert loud.unseen_rate == pytest.approx(0.3, abs=0.02) and loud.drifted


def test_categories_beyond_top_k_share_the_other_bucket() -> None:
    rng = np.random.default_rng(12)
    labels = [f"v{i}" for i in range(40)]
    ref = pd.DataFrame({"c": rng.choice(labels, 20_000)})
    cur = pd.DataFrame({"c": rng.choice(labels, 20_000)})
    reference = reference_from_frame(ref, top_k=10)
    column = reference.columns["c"]
    assert isinstance(column, CategoricalReference) and len(column.categories) == 10
    row = drift(reference, cur).features[0]
    assert not row.drifted and row.unseen_rate == pytest.approx(0.75, abs=0.02)


def test_constant_columns() -> None:
    ref = pd.DataFrame({"x": np.full(1_000, 7.0), "c": ["only"] * 1_000})
    reference = reference_from_frame(ref)
    same = drift(reference, pd.DataFrame({"x": np.full(500, 7.0), "c": ["only"] * 500}))
    for row in same.features:
        assert row.psi == pytest.approx(0.0) and row.js_distance == 0.0 and row.p_value == 1.0
        assert not row.drifted
    moved = drift(reference, pd.DataFrame({"x": np.full(500, 8.0), "c": ["other"] * 500}))
    assert set(moved.drifted_features) == {"x", "c"}
    assert _row(moved, "x").statistic == 1.0
    by_profile = drift(from_profile(ref), pd.DataFrame({"x": np.full(500, 8.0), "c": ["other"] * 500}))
    assert set(by_profile.drifted_features) == {"x", "c"}


def test_values_out_of_the_reference_range_count_as_drift() -> None:
    rng = np.random.default_rng(13)
    ref = pd.DataFrame({"x": rng.uniform(0, 1, 10_000)})
    cur = pd.DataFrame(
        {"x": np.concatenate([rng.uniform(0, 1, 7_000), rng.uniform(1, 2, 2_990), [np.inf] * 10])}
    )
    row = drift(reference_from_profile(profile_frame(ref)), cur).features[0]
    assert row.drifted and row.current_count == 10_000


def test_the_p_value_keeps_small_samples_noise_from_being_flagged(reference_df: pd.DataFrame) -> None:
    reference = reference_from_frame(reference_df)
    unguarded = DriftThresholds(p_value=1.0)
    for rows in (40, 100):
        samples = [make_frame(rows, seed=100 + seed) for seed in range(20)]  # 200 steady columns
        guarded_flags = sum(len(drift(reference, s).drifted_features) for s in samples)
        noisy_flags = sum(len(drift(reference, s, thresholds=unguarded).drifted_features) for s in samples)
        assert guarded_flags <= 4 < 50 < noisy_flags, (rows, guarded_flags, noisy_flags)
    assert drift(reference, make_frame(1_000, seed=99), thresholds=unguarded).drifted_features == []


def test_boolean_and_integer_columns() -> None:
    rng = np.random.default_rng(14)
    ref = pd.DataFrame({"flag": rng.random(10_000) < 0.3, "n": rng.integers(0, 3, 10_000)})
    steady = pd.DataFrame({"flag": rng.random(10_000) < 0.3, "n": rng.integers(0, 3, 10_000)})
    moved = pd.DataFrame({"flag": rng.random(10_000) < 0.7, "n": rng.integers(1, 4, 10_000)})
    for build in BUILDERS:
        reference = build(ref)
        assert drift(reference, steady).drifted_features == []
        assert drift(reference, moved).drifted_features == ["flag", "n"]
        assert _row(drift(reference, moved), "flag").kind == "categorical"


def test_prediction_column_is_reported_apart(reference_df: pd.DataFrame) -> None:
    ref = reference_df.assign(score=np.linspace(0, 1, len(reference_df)))
    cur = make_frame(5_000, seed=15).assign(score=np.linspace(0.5, 1.5, 5_000))
    report = drift(reference_from_frame(ref), cur, prediction="score")
    assert report.prediction is not None and report.prediction.drifted
    assert "score" not in [f.name for f in report.features]
    assert report.drifted_features == []
    frame = report.to_frame()
    assert list(frame["role"]) == ["feature"] * 10 + ["prediction"]
    only = drift(reference_from_frame(ref), cur, columns=["mean_shift"], prediction="score")
    assert [f.name for f in only.features] == ["mean_shift"]


def test_report_is_json_safe_and_frames(reference_df: pd.DataFrame) -> None:
    report = drift(from_profile(reference_df), make_frame(3_000, seed=16, shifted=True))
    data = report.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["drifted_features"] == report.drifted_features
    assert data["drift_share"] == pytest.approx(0.4)
    assert data["thresholds"] == {"psi": 0.2, "js": 0.1, "p_value": 0.01, "missing_rate": 0.1}
    assert set(data["features"][0]) >= {"name", "psi", "js_distance", "statistic", "p_value", "drifted"}
    frame = report.to_frame()
    assert len(frame) == 10 and frame["psi"].dtype == np.float64
    assert set(frame.loc[frame["drifted"], "name"]) == SHIFTED


def test_current_frame_is_left_untouched(reference_df: pd.DataFrame) -> None:
    current = make_frame(2_000, seed=17)
    before = current.copy()
    drift(reference_from_frame(reference_df), current)
    pd.testing.assert_frame_equal(current, before)


def test_working_memory_is_a_small_fraction_of_the_data() -> None:
    reference = reference_from_frame(make_frame(20_000, seed=18))
    current = make_frame(300_000, seed=19)
    data_bytes = int(current.memory_usage(deep=True).sum())
    tracemalloc.start()
    try:
        drift(reference, current)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < data_bytes


def test_thinned_sample_keeps_ks_close() -> None:
    rng = np.random.default_rng(20)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 50_000)})
    cur = pd.DataFrame({"x": rng.normal(0.05, 1, 20_000)})
    exact = drift(reference_from_frame(ref, max_sample=None), cur).features[0]
    thinned_ref = reference_from_frame(ref, max_sample=1_000)
    column = thinned_ref.columns["x"]
    assert isinstance(column, NumericReference) and column.sample is not None and column.sample.size == 1_000
    thinned = drift(thinned_ref, cur).features[0]
    assert thinned.statistic == pytest.approx(exact.statistic, abs=2e-3)
    assert thinned.reference_count == 50_000


def test_columns_are_matched_by_their_names_as_str() -> None:
    rng = np.random.default_rng(21)
    ref = pd.DataFrame({0: rng.normal(0, 1, 2_000), 1: rng.choice(["a", "b"], 2_000)})
    cur = pd.DataFrame({1: rng.choice(["a", "b"], 2_000), 0: rng.normal(2, 1, 2_000)})
    for build in BUILDERS:
        report = drift(build(ref), cur)
        assert [f.name for f in report.features] == ["0", "1"] and report.drifted_features == ["0"]
    twice = pd.concat([cur, cur[[0]]], axis=1)
    with pytest.raises(InvalidInput, match="more than one column"):
        drift(reference_from_frame(ref), twice)


def test_columns_that_cannot_be_compared_are_skipped() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0], "when": pd.date_range("2024-01-01", periods=3)})
    reference = reference_from_frame(ref)
    assert list(reference.columns) == ["x"] and reference.skipped == ("when",)
    with pytest.raises(InvalidInput, match="not comparable"):
        drift(reference, ref, columns=["when"])


def test_bad_input_is_refused(reference_df: pd.DataFrame) -> None:
    reference = reference_from_frame(reference_df)
    with pytest.raises(InvalidInput, match="lacks"):
        drift(reference, reference_df.drop(columns=["mean_shift"]))
    with pytest.raises(InvalidInput, match="no comparable"):
        drift(reference, reference_df, columns=["nope"])
    with pytest.raises(InvalidInput, match="no comparable"):
        drift(reference, reference_df, prediction="nope")
    with pytest.raises(InvalidInput, match="DataFrame"):
        drift(reference, reference_df.to_numpy())
    with pytest.raises(InvalidInput, match="not numbers"):
        drift(reference, reference_df.assign(mean_shift="text"))
    with pytest.raises(InvalidInput, match="p_value"):
        DriftThresholds(p_value=0.0)
    with pytest.raises(InvalidInput, match="psi"):
        DriftThresholds(psi=-1.0)
    with pytest.raises(InvalidInput, match="columns"):
        reference_from_profile({"rows": 3})
    with pytest.raises(InvalidInput, match="histogram"):
        reference_from_profile({"rows": 3, "columns": [{"name": "x", "kind": "numeric"}]})
    with pytest.raises(InvalidInput, match="max_sample"):
        reference_from_frame(reference_df, max_sample=1)
