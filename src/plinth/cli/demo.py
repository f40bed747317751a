"""`plinth demo`: a small real job on the embedded default, end to end."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import click

from plinth.cli.render import console, line, number, safe_url, say, table
from plinth.core.entities import Run
from plinth.core.errors import ConfigError

GRID: list[dict[str, Any]] = [
    {"n_estimators": 10, "max_depth": 3},
    {"n_estimators": 30, "max_depth": 6},
    {"n_estimators": 60, "max_depth": 10},
    {"n_estimators": 100, "max_depth": None},
]


@click.command("demo", short_help="Run a small real tracked job (digits, random forests).")
@click.option(
    "--experiment", default="demo-digits", show_default=True, help="Experiment to log the runs into."
)
def demo(experiment: str) -> None:
    """Train random forests on scikit-learn's handwritten digits over a small grid, tracked end to end.

    Logs the train and test datasets (with profiles), params, a per-tree learning curve,
    accuracy and F1, and a confusion-matrix artifact for each of 4 runs, then prints the
    best run, registers its model as digits-classifier@champion, loads it back and predicts.
    Needs scikit-learn (pip install 'plinth[demo]').
    """
    try:
        import pandas  # type: ignore[import-untyped]  # noqa: F401  (load_digits(as_frame=True) needs it)
        from sklearn.datasets import load_digits  # type: ignore[import-untyped]
        from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigError("The demo needs scikit-learn and pandas: pip install 'plinth[demo]'.") from exc

    import plinth

    frame = load_digits(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame["target"])
    started = time.perf_counter()
    trained = dict(_train_one(experiment, params, train, test) for params in GRID)
    runs = sorted((plinth.get_run(i) for i in trained), key=lambda r: -r.metrics["test_f1"])
    _report(experiment, runs, time.perf_counter() - started)
    _register_best(runs[0], trained[runs[0].id], test)


MODEL_NAME = "digits-classifier"


def _register_best(best: Run, model: Any, test: Any) -> None:
    """Register the best run's model, make it champion, load it back and predict."""
    import plinth

    x_test, y_test = test.drop(columns="target"), test["target"]
    mv = plinth.register_model(
        MODEL_NAME,
        model,
        input_example=x_test[:5],
        run_id=best.id,
        description=f"random forest, test F1 {best.metrics['test_f1']:.3f}",
    )
    plinth.set_alias(MODEL_NAME, "champion", version=mv.version)
    champion = plinth.load_model(f"{MODEL_NAME}@champion")
    predicted = champion.predict(x_test[:10])
    say(line(("Registered ", "bold green"), f"{mv.ref} as {MODEL_NAME}@champion ({mv.flavor})"))
    say(f"{MODEL_NAME}@champion predicts {list(map(int, predicted))} for 10 test digits")
    say(f"                          actual {list(map(int, y_test[:10]))}")


def _train_one(experiment: str, params: dict[str, Any], train: Any, test: Any) -> tuple[str, Any]:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier  # type: ignore[import-untyped]
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score  # type: ignore[import-untyped]

    import plinth

    x_train, y_train = train.drop(columns="target"), train["target"]
    x_test, y_test = test.drop(columns="target"), test["target"]
    with plinth.start_run(experiment=experiment, params=params, tags={"model": "random-forest"}) as run:
        run.log_dataset(train, name="digits-train", role="train", source="sklearn.datasets.load_digits")
        run.log_dataset(test, name="digits-test", role="test", source="sklearn.datasets.load_digits")
        model = RandomForestClassifier(random_state=0, **params).fit(x_train, y_train)
        votes = np.zeros((len(x_test), len(model.classes_)))
        for step, tree in enumerate(model.estimators_):
            votes += tree.predict_proba(x_test.to_numpy())
            run.log_metric("test_accuracy_by_trees", accuracy_score(y_test, votes.argmax(axis=1)), step=step)
        predicted = model.predict(x_test)
        run.log_metrics(
            {
                "train_accuracy": accuracy_score(y_train, model.predict(x_train)),
                "test_accuracy": accuracy_score(y_test, predicted),
                "test_f1": f1_score(y_test, predicted, average="macro"),
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "confusion_matrix.csv")
            np.savetxt(path, confusion_matrix(y_test, predicted), fmt="%d", delimiter=",")
            run.log_artifact(path)
    return run.id, model


def _report(experiment: str, runs: list[Run], seconds: float) -> None:
    from plinth.tracking.context import backend

    rows = [
        (
            r.id,
            r.params.get("n_estimators"),
            r.params.get("max_depth"),
            number(r.metrics.get("test_accuracy")),
            number(r.metrics.get("test_f1")),
        )
        for r in runs
    ]
    console.print(
        table(
            f"{len(runs)} runs of {experiment!r}, best first",
            ["run", "n_estimators", "max_depth", "test acc", "test F1"],
            rows,
        )
    )
    best = runs[0]
    say(line(("Best run ", "bold green"), best.id, f": test F1 {number(best.metrics['test_f1'])}"))
    settings = backend().settings
    say(f"{len(runs)} runs in {seconds:.1f}s, tracked in {safe_url(settings.resolved_store_url)}")
    say(f"artifacts and datasets in {settings.resolved_artifacts_url}")
    say("Where to look next:")
    for command in (
        f"plinth runs show {best.id}",
        f"plinth runs list -e {experiment} -o -metrics.test_f1",
        "plinth datasets show digits-train",
        f"plinth artifacts get {best.id} confusion_matrix.csv .",
        f"plinth models show {MODEL_NAME}@champion",
    ):
        say(f"  {command}")
