"""Tests for plinth.tracking.profiles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plinth.core.errors import InvalidInput
from plinth.tracking.profiles import profile_frame, schema_of, to_frame


@pytest.fixture
def frame() -> pd.DataFrame:
    """A seeded frame with numeric, categorical, boolean and datetime columns and gaps."""
    rng = np.random.default_rng(7)
    n = 2_000
    x = rng.normal(10.0, 3.0, n)
    x[rng.random(n) < 0.1] = np.nan
    colour = rng.choice(["red", "green", "blue", "grey"], n, p=[0.5, 0.3, 0.15, 0.05])
    colour = np.where(rng.random(n) < 0.05, None, colour)
    return pd.DataFrame(
        {
            "x": x,
            "count": rng.integers(0, 5, n),
            "colour": pd.Series(colour, dtype="object"),
            "flag": rng.random(n) < 0.3,
            "when": pd.date_range("2024-01-01", periods=n, freq="h"),
        }
    )


def _column(profile: dict[str, object], name: str) -> dict[str, object]:
    """The profile of one named column."""
    return next(c for c in profile["columns"] if c["name"] == name)


def test_profile_is_json_safe_and_lists_every_column(frame: pd.DataFrame) -> None:
    profile = profile_frame(frame)
    assert profile["rows"] == len(frame)
    assert [c["name"] for c in profile["columns"]] == list(frame.columns)
    assert json.loads(json.dumps(profile, allow_nan=False)) == profile


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        ("x", "numeric"),
        ("count", "numeric"),
        ("colour", "categorical"),
        ("flag", "boolean"),
        ("when", "datetime"),
    ],
)
def test_kinds(frame: pd.DataFrame, column: str, kind: str) -> None:
    profiled = _column(profile_frame(frame), column)
    assert profiled["kind"] == kind
    assert profiled["dtype"] == str(frame[column].dtype)


@pytest.mark.parametrize(
    ("series", "kind"),
    [
        (pd.Series([1, None, 3], dtype="Int64"), "numeric"),
        (pd.Series([0.5, None], dtype="Float32"), "numeric"),
        (pd.Series([True, None], dtype="boolean"), "boolean"),
        (pd.Series(["a", None], dtype="string"), "categorical"),
        (pd.Series(["a", "b"], dtype="category"), "categorical"),
        (pd.Series(pd.to_datetime(["2024-01-01"]).tz_localize("UTC")), "datetime"),
        (pd.Series(pd.to_timedelta([1, 2], unit="s")), "other"),
        (pd.Series([1 + 2j]), "other"),
    ],
)
def test_kind_follows_dtype(series: pd.Series, kind: str) -> None:
    assert profile_frame(series.to_frame("c"))["columns"][0]["kind"] == kind


@pytest.mark.parametrize("bins", [1, 4, 10, 25])
def test_numeric_stats_match_numpy(frame: pd.DataFrame, bins: int) -> None:
    x = frame["x"].to_numpy()
    present = x[~np.isnan(x)]
    profiled = _column(profile_frame(frame, bins=bins), "x")
    assert profiled["missing_rate"] == pytest.approx(np.isnan(x).mean())
    assert profiled["min"] == present.min() and profiled["max"] == present.max()
    assert profiled["mean"] == pytest.approx(present.mean())
    assert profiled["std"] == pytest.approx(present.std(ddof=1))
    quantiles = np.nanquantile(x, np.linspace(0, 1, bins + 1))
    assert profiled["quantiles"] == pytest.approx(quantiles.tolist())
    edges = np.unique(quantiles)
    counts, _ = np.histogram(present, bins=edges)
    assert profiled["histogram"]["edges"] == pytest.approx(edges.tolist())
    assert profiled["histogram"]["counts"] == counts.tolist()
    assert sum(profiled["histogram"]["counts"]) == present.size


def test_repeated_values_give_deduplicated_edges(frame: pd.DataFrame) -> None:
    profiled = _column(profile_frame(frame, bins=10), "count")  # only 0..4
    edges = profiled["histogram"]["edges"]
    assert len(profiled["quantiles"]) == 11
    assert edges == sorted(set(edges)) == [0.0, 1.0, 2.0, 3.0, 4.0]
    expected, _ = np.histogram(frame["count"].to_numpy(), bins=edges)
    assert profiled["histogram"]["counts"] == expected.tolist()


@pytest.mark.parametrize("values", [[np.nan] * 5, [], [None, None]])
def test_all_missing_numeric_does_not_crash(values: list[object]) -> None:
    profiled = profile_frame(pd.DataFrame({"x": pd.Series(values, dtype="float64")}))
    column = profiled["columns"][0]
    assert column["kind"] == "numeric"
    assert column["missing_rate"] == (1.0 if values else 0.0)
    assert column["min"] is column["mean"] is column["std"] is None
    assert column["quantiles"] == [] and column["histogram"] == {"edges": [], "counts": []}


def test_constant_and_single_value_columns() -> None:
    profiled = profile_frame(pd.DataFrame({"c": [3.0] * 4, "one": [np.nan, 2.0, np.nan, np.nan]}))
    constant, single = profiled["columns"]
    assert constant["histogram"] == {"edges": [3.0, 3.0], "counts": [4]}
    assert constant["std"] == 0.0
    assert single["std"] is None and single["mean"] == 2.0
    assert single["missing_rate"] == 0.75


def test_infinities_are_counted_apart() -> None:
    profiled = profile_frame(pd.DataFrame({"x": [np.inf, -np.inf, 1.0, 3.0, np.nan]}))
    column = profiled["columns"][0]
    assert column["infinite_count"] == 2
    assert (column["min"], column["max"], column["mean"]) == (1.0, 3.0, 2.0)
    assert column["missing_rate"] == 0.2
    json.dumps(profiled, allow_nan=False)


def test_categorical_top_values(frame: pd.DataFrame) -> None:
    profiled = _column(profile_frame(frame, top_k=2), "colour")
    counts = frame["colour"].value_counts()
    assert profiled["distinct"] == 4
    assert profiled["top"] == [["red", int(counts["red"])], ["green", int(counts["green"])]]
    assert profiled["other_count"] == int(counts["blue"] + counts["grey"])
    assert profiled["missing_rate"] == pytest.approx(frame["colour"].isna().mean())


@pytest.mark.parametrize("top_k", [0, 1, 3, 100])
def test_top_and_other_add_up(frame: pd.DataFrame, top_k: int) -> None:
    profiled = _column(profile_frame(frame, top_k=top_k), "colour")
    assert len(profiled["top"]) == min(top_k, 4)
    present = int(frame["colour"].notna().sum())
    assert sum(count for _, count in profiled["top"]) + profiled["other_count"] == present


def test_boolean_and_category_values_are_strings() -> None:
    df = pd.DataFrame(
        {
            "flag": [True, True, False],
            "grade": pd.Categorical([1, 1, None], categories=[1, 2, 3]),
        }
    )
    flag, grade = profile_frame(df)["columns"]
    assert flag["top"] == [["True", 2], ["False", 1]] and flag["distinct"] == 2
    assert grade["top"] == [["1", 2]] and grade["distinct"] == 1  # unused categories dropped
    assert grade["other_count"] == 0


def test_unhashable_objects_are_counted_as_text() -> None:
    profiled = profile_frame(pd.DataFrame({"tags": [["a"], ["a"], {"k": 1}, None]}))
    column = profiled["columns"][0]
    assert column["top"] == [["['a']", 2], ["{'k': 1}", 1]]


def test_datetime_range(frame: pd.DataFrame) -> None:
    profiled = _column(profile_frame(frame), "when")
    assert profiled["min"] == "2024-01-01T00:00:00"
    assert profiled["max"] == frame["when"].max().isoformat()


def test_duplicate_and_non_string_column_names() -> None:
    df = pd.DataFrame([[1, 2.0, "a"]], columns=[0, 0, ("t", 1)])
    assert [c["name"] for c in profile_frame(df)["columns"]] == ["0", "0", "('t', 1)"]


@pytest.mark.parametrize(
    "kwargs", [{"bins": 0}, {"bins": 2.5}, {"bins": True}, {"top_k": -1}, {"top_k": "3"}]
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        profile_frame(pd.DataFrame({"x": [1.0]}), **kwargs)


@pytest.mark.parametrize("not_a_frame", [np.zeros(3), [1, 2], pd.Series([1.0])])
def test_profile_needs_a_frame(not_a_frame: object) -> None:
    with pytest.raises(InvalidInput, match="DataFrame"):
        profile_frame(not_a_frame)
    with pytest.raises(InvalidInput, match="DataFrame"):
        schema_of(not_a_frame)


def test_schema_of(frame: pd.DataFrame) -> None:
    assert schema_of(frame) == [
        {"name": str(name), "dtype": str(dtype)} for name, dtype in frame.dtypes.items()
    ]
    assert schema_of(pd.DataFrame({1: [1]}))[0] == {"name": "1", "dtype": "int64"}


def test_to_frame_returns_string_named_frame_as_is(frame: pd.DataFrame) -> None:
    assert to_frame(frame) is frame


def test_to_frame_renames_without_touching_input() -> None:
    df = pd.DataFrame({0: [1], "b": [2]})
    converted = to_frame(df)
    assert list(converted.columns) == ["0", "b"]
    assert list(df.columns) == [0, "b"]


@pytest.mark.parametrize(("series", "name"), [(pd.Series([1, 2], name="y"), "y"), (pd.Series([1, 2]), "0")])
def test_to_frame_from_series(series: pd.Series, name: str) -> None:
    converted = to_frame(series)
    assert list(converted.columns) == [name] and converted[name].tolist() == [1, 2]


@pytest.mark.parametrize(("shape", "columns"), [((5,), ["0"]), ((5, 3), ["0", "1", "2"])])
def test_to_frame_from_array(shape: tuple[int, ...], columns: list[str]) -> None:
    array = np.random.default_rng(0).normal(size=shape)
    converted = to_frame(array)
    assert list(converted.columns) == columns
    assert np.array_equal(converted.to_numpy(), array.reshape(shape[0], -1))


@pytest.mark.parametrize("shape", [(2, 2, 2), ()])
def test_to_frame_rejects_other_dimensions(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInput, match="1-D or 2-D"):
        to_frame(np.zeros(shape))


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".pq"])
@pytest.mark.parametrize("as_str", [True, False])
def test_to_frame_reads_files(tmp_path: Path, suffix: str, as_str: bool) -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    converted = to_frame(str(path) if as_str else path)
    assert converted["a"].tolist() == [1, 2, 3] and converted["b"].tolist() == ["x", "y", "z"]


def test_to_frame_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.parquet"
    with pytest.raises(InvalidInput, match=re.escape(str(path))):
        to_frame(path)


@pytest.mark.parametrize(("name", "content"), [("bad.parquet", b"not parquet"), ("empty.csv", b"")])
def test_to_frame_unreadable_file(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=re.escape(name)):
        to_frame(path)


def test_to_frame_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text("{}")
    with pytest.raises(InvalidInput, match=r"\.parquet"):
        to_frame(path)


@pytest.mark.parametrize("data", [[1, 2], {"a": [1]}, 3.0, None, b"data.csv"])
def test_to_frame_unsupported_type_lists_accepted_types(data: object) -> None:
    with pytest.raises(InvalidInput, match=r"DataFrame or Series.*numpy array.*path"):
        to_frame(data)


def test_wide_frame_profiles_every_column() -> None:
    rng = np.random.default_rng(3)
    df = to_frame(rng.normal(size=(50_000, 10)))
    df.iloc[::7, 2] = np.nan
    profile = profile_frame(df, bins=20)
    assert profile["rows"] == 50_000 and len(profile["columns"]) == 10
    for column in profile["columns"]:
        assert sum(column["histogram"]["counts"]) == round(50_000 * (1 - column["missing_rate"]))
        assert len(column["quantiles"]) == 21
