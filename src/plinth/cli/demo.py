"""`plinth demo`: a small real job on the embedded default, end to end."""

from __future__ import annotations

import os
import tempfile
import time

import click

from plinth.cli.render import console, number, table

GRID = [
    {"n_estimators": 10, "max_depth": 3},
    {"n_estimators": 30, "max_depth": 6},
    {"n_estimators": 60, "max_depth": 10},
    {"n_estimators": 100, "max_depth": None},
]


@click.command("demo")
@click.option("--experiment", default="demo-digits", show_default=True, help="Experiment to log into.")
def demo(experiment: str) -> None:
    """Train a random forest on scikit-learn's handwritten digits over a small grid, tracked end to end.

    Logs the train and test datasets (with profiles), params, per-tree learning curves,
    accuracy and F1, a confusion-matrix artifact, then prints the best run and where to look.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise click.ClickException("The demo needs scikit-learn: pip install 'plinth[demo]'.") from exc

    import plinth

    data = load_digits(as_frame=True)
    frame = data.frame
    train, test = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame["target"])
    started = time.perf_counter()
    for params in GRID:
        _train_one(experiment, params, train, test)
    best = plinth.search_runs(
        experiment=experiment, where="status = 'FINISHED'", order_by=["-metrics.test_f1"], limit=1
    )[0]
    _report(experiment, best, time.perf_counter() - started)


def _train_one(experiment: str, params: dict[str, object], train: object, test: object) -> None:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    import plinth

    x_train, y_train = train.drop(columns="target"), train["target"]  # type: ignore[attr-defined]
    x_test, y_test = test.drop(columns="target"), test["target"]  # type: ignore[attr-defined]
    with plinth.start_run(experiment=experiment, params=params, tags={"model": "random-forest"}) as run:
        run.log_dataset(train, name="digits-train", role="train")
        run.log_dataset(test, name="digits-test", role="test")
        model = RandomForestClassifier(random_state=0, **params).fit(x_train, y_train)  # type: ignore[arg-type]
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


def _report(experiment: str, best: object, seconds: float) -> None:
    import plinth

    runs = plinth.search_runs(experiment=experiment, order_by=["-metrics.test_f1"], limit=len(GRID))
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
            f"Latest runs of {experiment!r}",
            ["run", "n_estimators", "max_depth", "test acc", "test F1"],
            rows,
        )
    )
    run_id = best.id  # type: ignore[attr-defined]
    console.print(
        f"[bold green]Best run[/] {run_id}: test F1 {number(best.metrics['test_f1'])}"  # type: ignore[attr-defined]
        f"  ({len(GRID)} runs in {seconds:.1f}s)",
        highlight=False,
    )
    console.print("Where to look next:", highlight=False)
    for line in (
        f"plinth runs show {run_id}",
        f"plinth runs list -e {experiment} -o -metrics.test_f1",
        "plinth datasets show digits-train",
        f"plinth artifacts get {run_id} confusion_matrix.csv /tmp/",
    ):
        console.print(f"  {line}", highlight=False)
