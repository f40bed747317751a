"""Monitoring of a served model from its logs: drift against the training profile, delayed labels,
performance against scikit-learn's metrics, operations, and labels in erasure and retention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn import metrics
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

import plinth
from plinth.cli.main import main
from plinth.core.entities import PredictionLog
from plinth.core.errors import InvalidInput, NotFound
from plinth.core.ids import new_id, now_ms
from plinth.tracking.context import Backend

pytestmark = pytest.mark.usefixtures("logs_in")

HOUR = 3_600_000


def iris_model(be: Backend) -> tuple[pd.DataFrame, LogisticRegression]:
    frame = load_iris(as_frame=True).frame
    features = frame.drop(columns="target")
    model = LogisticRegression(max_iter=500).fit(features, frame["target"])
    with plinth.start_run(experiment="iris") as run:
        run.log_dataset(frame, name="iris-train", role="train")
        run.log_model(model, name="iris-clf", input_example=features.head(3))
    return features, model


def serve_logs(
    be: Backend,
    model: LogisticRegression,
    rows: pd.DataFrame,
    *,
    at_ms: int,
    per_request: int = 1,
    proba: bool = False,
    subject: str | None = None,
    version: int = 1,
) -> list[str]:
    """Log what the server would have logged for `rows`, `per_request` rows per request."""
    ids: list[str] = []
    logs = []
    for start in range(0, len(rows), per_request):
        part = rows.iloc[start : start + per_request]
        out = model.predict_proba(part) if proba else model.predict(part)
        request_id = new_id()
        ids.append(request_id)
        records = part.to_dict(orient="records")
        logs.append(
            PredictionLog(
                request_id,
                "iris-clf",
                version,
                "primary",
                at_ms + start,
                2.0 + start % 7,
                subject,
                orjson.dumps({"instances": records}).decode(),
                orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
                200,
                len(part),
            )
        )
    be.store.write_prediction_logs(logs)
    return ids


def test_drift_flags_a_shifted_feature_against_the_training_profile(tracking: Backend) -> None:
    features, model = iris_model(tracking)
    rng = np.random.default_rng(7)
    calm = features.sample(300, replace=True, random_state=1).reset_index(drop=True)
    shifted = features.sample(300, replace=True, random_state=2).reset_index(drop=True)
    shifted["petal length (cm)"] = shifted["petal length (cm)"] + 2.5 + rng.normal(0, 0.1, len(shifted))
    base = now_ms() - 5 * HOUR
    serve_logs(tracking, model, calm, at_ms=base)
    serve_logs(tracking, model, shifted, at_ms=base + 3 * HOUR)

    before = plinth.drift("iris-clf", start=base, end=base + 2 * HOUR)
    assert before.reference == "iris-train/1" and before.reference_source == "lineage"
    assert before.drifted_features == [] and before.requests == 300
    after = plinth.drift("iris-clf", since="3h")
    assert after.drifted_features == ["petal length (cm)"]
    assert after.report.prediction is not None and after.report.prediction.name == "target"
    over_time = plinth.drift_over_time("iris-clf", every="1h", since="6h")
    assert [bool(d.drifted_features) for d in over_time] == [False, True]
    assert json.dumps(after.to_dict())  # JSON-safe

    with pytest.raises(InvalidInput, match="widen the window"):
        plinth.drift("iris-clf", since="1m")
    with pytest.raises(InvalidInput, match="either since"):
        plinth.drift("iris-clf", since="1h", start=base)


def test_one_window_value_serves_every_monitoring_function(tracking: Backend) -> None:
    features, model = iris_model(tracking)
    base = now_ms() - 5 * HOUR
    serve_logs(tracking, model, features.head(60), at_ms=base)
    serve_logs(tracking, model, features.tail(60), at_ms=base + 2 * HOUR)
    window = plinth.Window.parse(start=base - HOUR, end=base + 4 * HOUR, every="1h")

    assert plinth.drift("iris-clf", window=window).requests == 120
    assert len(plinth.drift_over_time("iris-clf", window=window)) == 2
    assert plinth.performance("iris-clf", window=window).windows != ()
    hourly = plinth.operations("iris-clf", window=window).windows
    assert [w.requests for w in hourly if w.requests] == [60, 60]
    same = plinth.operations("iris-clf", start=base - HOUR, end=base + 4 * HOUR, every=3600)
    assert plinth.operations("iris-clf", window=window) == same
    with pytest.raises(InvalidInput, match="window= or since="):
        plinth.drift("iris-clf", window=window, since="1h")


def test_set_reference_overrides_the_training_profile_and_is_audited(tracking: Backend) -> None:
    features, model = iris_model(tracking)
    shifted = features.copy()
    shifted["petal length (cm)"] += 2.5
    with plinth.start_run(experiment="iris") as run:
        ref = run.log_dataset(shifted, name="iris-recent")
    serve_logs(tracking, model, shifted.sample(200, replace=True, random_state=3), at_ms=now_ms() - 1000)
    assert plinth.drift("iris-clf").drifted_features == ["petal length (cm)"]
    plinth.set_reference("iris-clf", ref.ref)
    now = plinth.drift("iris-clf")
    assert (now.reference, now.reference_source, now.drifted_features) == (
        "iris-recent/1",
        "set_reference",
        [],
    )
    [event] = [e for e in tracking.store.audit_events(entity_id="iris-clf") if "reference" in e.action]
    assert event.after == ref.id
    with pytest.raises(NotFound):
        plinth.set_reference("no-such-model", ref.ref)


def test_no_reference_is_a_clear_error(tracking: Backend) -> None:
    frame = load_iris(as_frame=True).frame
    features = frame.drop(columns="target")
    model = LogisticRegression(max_iter=300).fit(features, frame["target"])
    with plinth.start_run(experiment="iris") as run:
        run.log_model(model, name="iris-clf", input_example=features.head(3))
    serve_logs(tracking, model, features.head(5), at_ms=now_ms() - 1000)
    with pytest.raises(NotFound, match="set_reference"):
        plinth.drift("iris-clf")


def test_performance_matches_scikit_learn_on_the_joined_labels(tracking: Backend) -> None:
    features, model = iris_model(tracking)
    truth = load_iris(as_frame=True).frame["target"]
    base = now_ms() - 2 * HOUR
    ids = serve_logs(tracking, model, features, at_ms=base, per_request=1, proba=True)
    rng = np.random.default_rng(0)
    noisy = truth.to_numpy().copy()
    flip = rng.choice(len(noisy), 30, replace=False)
    noisy[flip] = (noisy[flip] + 1) % 3
    labeled = rng.choice(len(ids), 120, replace=False)  # 80 % coverage
    assert plinth.log_labels("iris-clf", [(ids[i], int(noisy[i])) for i in labeled]) == 120

    report = plinth.performance("iris-clf", since="3h", every="1h")
    assert report.task == "classification"
    assert (report.overall.predictions, report.overall.labeled) == (150, 120)
    assert report.overall.coverage == pytest.approx(0.8)
    chosen = np.sort(labeled)
    y_true = noisy[chosen]
    proba = model.predict_proba(features.iloc[chosen])
    y_pred = proba.argmax(axis=1)
    m = report.overall.metrics
    assert m["accuracy"] == pytest.approx(metrics.accuracy_score(y_true, y_pred))
    assert m["precision"] == pytest.approx(metrics.precision_score(y_true, y_pred, average="macro"))
    assert m["recall"] == pytest.approx(metrics.recall_score(y_true, y_pred, average="macro"))
    assert m["f1"] == pytest.approx(metrics.f1_score(y_true, y_pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(metrics.roc_auc_score(y_true, proba, multi_class="ovr"))
    assert sum(w.predictions for w in report.windows) == 150

    # a later label for the same request replaces the earlier one, and both writes are audited
    first = ids[int(labeled[0])]
    plinth.log_labels("iris-clf", {first: int((noisy[labeled[0]] + 1) % 3)})
    assert plinth.performance("iris-clf").overall.labeled == 120
    actions = [e.action for e in tracking.store.audit_events(entity_id="iris-clf")]
    assert actions.count("labels.log") == 2


def test_multi_row_requests_take_one_label_per_row(tracking: Backend) -> None:
    features, model = iris_model(tracking)
    truth = load_iris(as_frame=True).frame["target"].to_numpy()
    ids = serve_logs(tracking, model, features, at_ms=now_ms() - 1000, per_request=50)
    plinth.log_labels("iris-clf", [(rid, truth[i * 50 : (i + 1) * 50].tolist()) for i, rid in enumerate(ids)])
    report = plinth.performance("iris-clf")
    assert report.overall.labeled == 150
    assert report.overall.metrics["accuracy"] == pytest.approx(
        metrics.accuracy_score(truth, model.predict(features))
    )
    plinth.log_labels("iris-clf", [(ids[0], [1, 2])])
    with pytest.raises(InvalidInput, match="one label per row"):
        plinth.performance("iris-clf")


def test_regression_performance(tracking: Backend) -> None:
    data = load_diabetes(as_frame=True)
    x, y = data.data.iloc[:200], data.target.iloc[:200]
    model = LinearRegression().fit(x, y)
    with plinth.start_run(experiment="reg") as run:
        run.log_model(model, name="iris-clf", input_example=x.head(2))  # the helper logs under this name
    ids = serve_logs(tracking, model, x, at_ms=now_ms() - 1000)
    plinth.log_labels("iris-clf", list(zip(ids, y.tolist(), strict=True)))
    m = plinth.performance("iris-clf").overall.metrics
    predicted = model.predict(x)
    assert m["mae"] == pytest.approx(metrics.mean_absolute_error(y, predicted))
    assert m["rmse"] == pytest.approx(np.sqrt(metrics.mean_squared_error(y, predicted)))
    assert m["r2"] == pytest.approx(metrics.r2_score(y, predicted))


def test_bad_labels_are_refused_whole(tracking: Backend) -> None:
    iris_model(tracking)
    with pytest.raises(InvalidInput) as caught:
        plinth.log_labels("iris-clf", [("ok", 1), ("", 2), ("x", None), ("y", {"a": 1})])
    assert "3 of 4 labels" in str(caught.value)
    assert plinth.performance("iris-clf").overall.labeled == 0
    with pytest.raises(NotFound):
        plinth.log_labels("nope", [("a", 1)])
    with pytest.raises(InvalidInput):
        plinth.log_labels("iris-clf", "abc")


def test_operations_from_the_logs(tracking: Backend) -> None:
    features, model = iris_model(tracking)
    base = now_ms() - 2 * HOUR
    serve_logs(tracking, model, features.head(40), at_ms=base, per_request=4)
    error = PredictionLog(new_id(), "iris-clf", 1, "primary", base + 100, 1.0, None, "{}", "boom", 500, 0)
    tracking.store.write_prediction_logs([error])
    ops = plinth.operations("iris-clf", since="3h", every="1h")
    assert (ops.overall.requests, ops.overall.errors, ops.overall.rows) == (11, 1, 40)
    assert ops.overall.error_rate == pytest.approx(1 / 11)
    assert ops.overall.mean_batch_rows == pytest.approx(4.0)
    assert ops.overall.latency_p50_ms is not None and ops.overall.latency_p99_ms >= ops.overall.latency_p50_ms
    assert [v.version for v in ops.versions] == [1]
    assert sum(w.requests for w in ops.windows) == 11


def test_erasure_and_retention_remove_labels_too(tracking: Backend) -> None:
    features, model = iris_model(tracking)
    alice = serve_logs(tracking, model, features.head(3), at_ms=now_ms() - 1000, subject="alice")
    bob = serve_logs(tracking, model, features.head(2), at_ms=now_ms() - 1000, subject="bob")
    old = serve_logs(tracking, model, features.head(2), at_ms=now_ms() - 100 * 86_400_000, subject="carol")
    plinth.log_labels("iris-clf", [(r, 0) for r in alice + bob + old] + [("orphan", 1, "alice")])
    receipt = plinth.erase_subject("alice")
    assert (receipt.prediction_logs, receipt.labels) == (3, 4)
    store = tracking.store
    assert (
        store.count_labels(subject_id="alice") == 0 and store.count_prediction_logs(subject_id="alice") == 0
    )
    assert plinth.performance("iris-clf").overall.labeled == 4  # bob's 2 and carol's 2 remain
    kept = plinth.apply_retention("90d")
    assert (kept.prediction_logs, kept.labels) == (2, 2)
    assert plinth.performance("iris-clf").overall.labeled == 2


def test_labels_cli(tracking: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    features, model = iris_model(tracking)
    ids = serve_logs(tracking, model, features.head(4), at_ms=now_ms() - 1000)
    path = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ids, "label": [0, 0, 0, 1]}).to_csv(path, index=False)
    assert main(["labels", "log", "iris-clf", "--file", str(path)]) == 0
    assert "4 labels" in capsys.readouterr().out
    assert plinth.performance("iris-clf").overall.metrics["accuracy"] == pytest.approx(0.75)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"id": ids}).to_csv(bad, index=False)
    assert main(["labels", "log", "iris-clf", "--file", str(bad)]) != 0
    assert "request_id" in capsys.readouterr().err


def test_monitor_cli_drift_performance_and_ops(tracking: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    features, model = iris_model(tracking)
    shifted = features.copy()
    shifted["petal length (cm)"] += 2.5
    ids = serve_logs(tracking, model, shifted, at_ms=now_ms() - 1000, per_request=5, proba=True)
    truth = load_iris(as_frame=True).frame["target"].to_numpy()
    kept = [(i, rid) for i, rid in enumerate(ids) if i % 3]  # 20 of 30 requests, every class among them
    plinth.log_labels("iris-clf", [(rid, truth[i * 5 : (i + 1) * 5].tolist()) for i, rid in kept])

    assert main(["monitor", "drift", "iris-clf", "--since", "1h"]) == 0
    out = capsys.readouterr().out
    assert "1 of 4 features drifted: petal length (cm)" in out
    assert main(["monitor", "drift", "iris-clf", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["drifted_features"] == ["petal length (cm)"] and doc["reference"] == "iris-train/1"

    assert main(["monitor", "performance", "iris-clf", "--every", "1h"]) == 0
    out = capsys.readouterr().out
    assert "Performance of iris-clf (classification)" in out  # the table folds to the terminal's width
    assert main(["monitor", "performance", "iris-clf", "--json"]) == 0
    perf = json.loads(capsys.readouterr().out)
    assert perf["overall"]["labeled"] == 100 and perf["overall"]["coverage"] == pytest.approx(100 / 150)
    assert perf["overall"]["metrics"]["roc_auc"] is not None

    assert main(["monitor", "ops", "iris-clf", "--json"]) == 0
    ops = json.loads(capsys.readouterr().out)
    assert ops["overall"]["requests"] == 30 and ops["overall"]["mean_batch_rows"] == 5.0
    assert main(["monitor", "ops", "iris-clf", "--every", "10m"]) == 0
    assert "p99 ms" in capsys.readouterr().out

    assert main(["monitor", "drift", "no-such-model"]) != 0
    assert "no-such-model" in capsys.readouterr().err
