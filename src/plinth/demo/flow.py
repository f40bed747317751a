"""The demo's sweep as a flow: load → fan-out train → pick best → register (steps run in workers)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import plinth
from plinth.flows.flow import flow
from plinth.flows.step import step

MODEL_NAME = "digits-classifier"
GRID: list[dict[str, Any]] = [
    {"n_estimators": 10, "max_depth": 3},
    {"n_estimators": 30, "max_depth": 6},
    {"n_estimators": 60, "max_depth": 10},
    {"n_estimators": 100, "max_depth": None},
]


@step
def load_digits_split() -> tuple[Any, Any]:
    """scikit-learn's handwritten digits, split 70/30 (stratified, seeded)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    frame = load_digits(as_frame=True).frame
    return tuple(train_test_split(frame, test_size=0.3, random_state=0, stratify=frame["target"]))


@step
def train_forest(data: tuple[Any, Any], n_estimators: int, max_depth: int | None) -> dict[str, Any]:
    """Fit one random forest; log datasets, a per-tree learning curve, scores and a confusion matrix."""
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    train, test = data
    run = plinth.active_run()
    assert run is not None
    run.set_tags({"model": "random-forest"})
    run.log_dataset(train, name="digits-train", role="train", source="sklearn.datasets.load_digits")
    run.log_dataset(test, name="digits-test", role="test", source="sklearn.datasets.load_digits")
    x_train, y_train = train.drop(columns="target"), train["target"]
    x_test, y_test = test.drop(columns="target"), test["target"]
    model = RandomForestClassifier(random_state=0, n_estimators=n_estimators, max_depth=max_depth)
    model.fit(x_train, y_train)
    votes = np.zeros((len(x_test), len(model.classes_)))
    for i, tree in enumerate(model.estimators_):
        votes += tree.predict_proba(x_test.to_numpy())
        run.log_metric("test_accuracy_by_trees", accuracy_score(y_test, votes.argmax(axis=1)), step=i)
    predicted = model.predict(x_test)
    metrics = {
        "train_accuracy": accuracy_score(y_train, model.predict(x_train)),
        "test_accuracy": accuracy_score(y_test, predicted),
        "test_f1": f1_score(y_test, predicted, average="macro"),
    }
    run.log_metrics(metrics)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "confusion_matrix.csv")
        np.savetxt(path, confusion_matrix(y_test, predicted), fmt="%d", delimiter=",")
        run.log_artifact(path)
    return {
        "run_id": run.id,
        "model": model,
        "metrics": metrics,
        "params": {"n_estimators": n_estimators, "max_depth": max_depth},
    }


@step
def pick_best(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The result with the highest test F1."""
    return max(results, key=lambda r: r["metrics"]["test_f1"])


@step
def register_best(best: dict[str, Any], data: tuple[Any, Any]) -> str:
    """Register the best model (linked to its run) and make it champion; returns NAME/VERSION."""
    x_test = data[1].drop(columns="target")
    mv = plinth.register_model(
        MODEL_NAME,
        best["model"],
        input_example=x_test[:5],
        run_id=best["run_id"],
        description=f"random forest, test F1 {best['metrics']['test_f1']:.3f}",
    )
    plinth.set_alias(MODEL_NAME, "champion", version=mv.version)
    return mv.ref


@flow(name="demo-digits")
def digits_sweep(grid: list[dict[str, Any]] = GRID) -> dict[str, Any]:
    """The demo's flow: one training step per grid point, then the best one is registered."""
    data = load_digits_split()
    results = train_forest.map(
        [data] * len(grid),
        n_estimators=[g["n_estimators"] for g in grid],
        max_depth=[g["max_depth"] for g in grid],
    )
    best = pick_best(results)
    return {"model": register_best(best, data), "best": best, "results": results}
