"""`plinth.log_predictions`: predictions made elsewhere are monitored like served ones."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.core.errors import InvalidInput, NotFound
from plinth.core.ids import now_ms
from plinth.tracking.context import Backend

HOUR = 3_600_000


@pytest.fixture
def iris(tracking: Backend) -> tuple[pd.DataFrame, pd.Series, LogisticRegression]:
    frame = load_iris(as_frame=True).frame
    features, target = frame.drop(columns="target"), frame["target"]
    model = LogisticRegression(max_iter=500).fit(features, target)
    with plinth.start_run(experiment="iris") as run:
        run.log_dataset(frame, name="iris-train", role="train")
        run.log_model(model, name="iris-clf", input_example=features.head(3))
    return features, target, model


def test_a_batch_jobs_predictions_are_monitored_like_served_ones(
    tracking: Backend, iris: tuple[pd.DataFrame, pd.Series, LogisticRegression]
) -> None:
    features, target, model = iris
    base = now_ms() - 5 * HOUR
    calm = features.sample(300, replace=True, random_state=1).reset_index(drop=True)
    shifted = features.sample(300, replace=True, random_state=2).reset_index(drop=True)
    shifted["petal length (cm)"] += 2.5
    ids = plinth.log_predictions(
        "iris-clf/1", calm, model.predict(calm), timestamps=[base + i for i in range(300)]
    )
    plinth.log_predictions("iris-clf", shifted, model.predict(shifted), timestamps=[base + 3 * HOUR] * 300)

    assert plinth.drift("iris-clf", start=base, end=base + HOUR).drifted_features == []
    after = plinth.drift("iris-clf", since="3h")
    assert after.drifted_features == ["petal length (cm)"] and after.requests == 300
    truth = target.sample(300, replace=True, random_state=1).to_numpy()
    plinth.log_labels("iris-clf", dict(zip(ids, truth.tolist(), strict=True)))
    measured = plinth.performance("iris-clf", start=base, end=base + HOUR).overall
    assert measured.labeled == 300
    assert measured.metrics["accuracy"] == pytest.approx(metrics.accuracy_score(truth, model.predict(calm)))
    ops = plinth.operations("iris-clf").overall
    assert ops.requests == 600 and ops.latency_p50_ms is None  # not measured: not made by plinth
    assert plinth.monitoring_report("iris-clf").drift is not None
    logged = tracking.store.find_prediction(ids[0])
    assert logged is not None and (logged.version, logged.route, logged.status) == (1, "external", 200)


def test_records_and_arrays_log_the_same_features_as_a_frame(
    tracking: Backend, iris: tuple[pd.DataFrame, pd.Series, LogisticRegression]
) -> None:
    features, _, model = iris
    rows = features.sample(200, replace=True, random_state=3).reset_index(drop=True)
    predicted = model.predict(rows)
    at = [now_ms() - 3 * HOUR] * 200
    plinth.log_predictions("iris-clf", rows, predicted, timestamps=at)
    plinth.log_predictions("iris-clf", rows.to_dict(orient="records"), predicted.tolist(), timestamps=at)
    plinth.log_predictions("iris-clf", rows.to_numpy(), model.predict_proba(rows), timestamps=at)
    table = tracking.store.prediction_table("iris-clf")
    for name in rows.columns:
        assert table.column(f"in:{name}").to_pylist() == rows[name].tolist() * 3
    scores = plinth.drift("iris-clf", since="4h").report.to_dict()
    assert scores["current_rows"] == 600 and scores["prediction"] is not None


def test_a_reference_names_the_version_the_predictions_are_logged_for(
    tracking: Backend, iris: tuple[pd.DataFrame, pd.Series, LogisticRegression]
) -> None:
    features, _, model = iris
    plinth.register_model("iris-clf", model, input_example=features.head(3))
    plinth.set_alias("iris-clf", "champion", 1)
    rows = features.head(2)
    [by_alias, _] = plinth.log_predictions("iris-clf@champion", rows, model.predict(rows))
    [newest, _] = plinth.log_predictions("iris-clf", rows, model.predict(rows))
    found = [tracking.store.find_prediction(i) for i in (by_alias, newest)]
    assert [x.version for x in found if x is not None] == [1, 2]


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"outputs": [0, 1]}, InvalidInput, "outputs has 2 predictions for 3 rows"),
        ({"outputs": "0 1 2"}, InvalidInput, "one prediction per row"),
        ({"inputs": [1.0, 2.0, 3.0]}, InvalidInput, "one row per prediction"),
        ({"inputs": np.ones((3, 2))}, InvalidInput, "inputs has 2 columns but the model takes 4"),
        ({"inputs": "drop:petal width (cm)"}, InvalidInput, "lack the model's inputs"),
        ({"request_ids": ["a", "b"]}, InvalidInput, "request_ids has 2 entries for 3 rows"),
        ({"request_ids": ["a", "a", "b"]}, InvalidInput, "repeats an id"),
        ({"request_ids": ["a", " ", "b"]}, InvalidInput, r"request_ids\[1\]"),
        ({"request_ids": ["a", "r" * 129, "b"]}, InvalidInput, "at most 128 characters"),
        ({"subject_ids": ["s", "t\n", None]}, InvalidInput, r"subject_ids\[1\]"),
        ({"timestamps": [1.5, 2.5, 3.5]}, InvalidInput, "epoch milliseconds"),
        ({"timestamps": ["2026-01-01"] * 3}, InvalidInput, r"timestamps\[0\]"),
        ({"model_ref": "nope/1"}, NotFound, "nope"),
        ({"model_ref": "iris-clf/7"}, NotFound, "7"),
        ({"model_ref": "iris-clf@gone"}, NotFound, "gone"),
        ({"model_ref": " "}, InvalidInput, "model reference"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_logged(
    tracking: Backend,
    iris: tuple[pd.DataFrame, pd.Series, LogisticRegression],
    change: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    features = iris[0]
    args: dict[str, Any] = {"model_ref": "iris-clf/1", "inputs": features.head(3), "outputs": [0, 1, 2]}
    if isinstance(change.get("inputs"), str):  # a frame without one of the model's inputs
        change = {"inputs": features.head(3).drop(columns=change["inputs"].removeprefix("drop:"))}
    with pytest.raises(error, match=message):
        plinth.log_predictions(**{**args, **change})
    assert tracking.store.prediction_logs("iris-clf") == []


def test_datetimes_and_subjects_are_kept_and_erasure_reaches_them(
    tracking: Backend, iris: tuple[pd.DataFrame, pd.Series, LogisticRegression]
) -> None:
    features, _, model = iris
    rows = features.head(4)
    when = [dt.datetime(2026, 1, 1, 12, 0, i) for i in range(3)] + [
        dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    ]
    ids = plinth.log_predictions(
        "iris-clf/1", rows, model.predict(rows), subject_ids=["alice", 42, None, "alice"], timestamps=when
    )
    logged = {x.request_id: x for x in tracking.store.prediction_logs("iris-clf")}
    assert [logged[i].time_ms for i in ids] == [1_767_268_800_000 + 1000 * i for i in range(3)] + [
        1_767_268_800_000
    ]
    assert [logged[i].subject_id for i in ids] == ["alice", "42", None, "alice"]
    assert plinth.erase_subject("alice").prediction_logs == 2
    assert {x.subject_id for x in tracking.store.prediction_logs("iris-clf")} == {"42", None}
