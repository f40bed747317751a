"""The demo's tour: train, register, serve, score a file and monitor, printing each result.

`run_demo` is what `plinth demo` runs; the flow is in `flow.py`, serving in `serving.py`,
monitoring in `monitoring.py`.
"""

from __future__ import annotations

import time
from typing import Any

from plinth.cli.render import console, duration, line, number, safe_url, say, table
from plinth.core.entities import Run
from plinth.core.errors import ConfigError

EXPERIMENT = "demo-digits"


def run_demo(experiment: str = EXPERIMENT) -> None:
    """Train random forests on scikit-learn's handwritten digits, then serve and monitor the best.

    Runs the digits flow, prints the runs best first, registers and loads the champion, serves it
    and queries it, scores a Parquet file with it and shows its drift and performance.

    Args:
        experiment: experiment to log the runs into.

    Raises:
        ConfigError: scikit-learn or pandas is missing.
    """
    try:
        import pandas  # noqa: F401  (load_digits(as_frame=True) needs it)
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise ConfigError("The demo needs scikit-learn and pandas: pip install 'plinth[demo]'.") from exc

    import plinth
    from plinth.cli.progress import flow_progress
    from plinth.demo.flow import MODEL_NAME, digits_sweep
    from plinth.flows.flow import Flow

    sweep = (
        digits_sweep if experiment == digits_sweep.name else Flow(digits_sweep.fn, experiment, None, "local")
    )
    started = time.perf_counter()
    with flow_progress(f"flow {sweep.name}") as observer:
        outcome = sweep.run(observer=observer)
    value = outcome.result
    runs = sorted(
        (plinth.get_run(r["run_id"]) for r in value["results"]), key=lambda r: -r.metrics["test_f1"]
    )
    _report(experiment, runs, time.perf_counter() - started)
    _show_champion(MODEL_NAME, value["model"], outcome.id, {**value["best"], "experiment": experiment})
    _serve(MODEL_NAME)


def _serve(name: str) -> None:
    """Serve the champion on a free port, query it, show metrics and logged predictions."""
    from sklearn.datasets import load_digits

    from plinth.demo.monitoring import monitor_demo, shift
    from plinth.demo.serving import serve_and_query

    frame = load_digits(as_frame=True).frame
    recent = frame.sample(300, random_state=1).reset_index(drop=True)
    features = recent.drop(columns="target")
    sent = serve_and_query(
        f"{name}@champion", features.to_dict("records"), shifted=shift(features).to_dict("records")
    )
    _score_file(name, frame)
    monitor_demo(name, sent, recent["target"].tolist())


def _score_file(name: str, frame: Any) -> None:
    """Score a Parquet file of digits in chunks with the champion (batch inference)."""
    import os

    import pandas as pd

    from plinth.serving.batch import batch_predict
    from plinth.tracking.context import backend

    folder = os.path.join(backend().settings.home, "demo")
    os.makedirs(folder, exist_ok=True)
    source = os.path.join(folder, "digits.parquet")
    big = pd.concat([frame] * 20, ignore_index=True).reset_index(names="digit_id").drop(columns="target")
    big.to_parquet(source, index=False)
    target = os.path.join(folder, "digits-predictions.parquet")
    result = batch_predict(f"{name}@champion", source, target, batch_size=5_000, id_columns="digit_id")
    say(
        f"Scored {result.rows} rows of {source} in {result.chunks} chunks ({result.rows_per_s:,.0f} rows/s) "
        f"with {result.model_version}; predictions in {target} (run {result.run_id})"
    )


def _show_champion(name: str, ref: str, flow_run_id: str, best: dict[str, Any]) -> None:
    """Load the champion back and predict a few test digits."""
    from sklearn.datasets import load_digits

    import plinth

    champion = plinth.load_model(f"{name}@champion")
    digits = load_digits(as_frame=True).frame.tail(10)
    predicted = champion.predict(digits.drop(columns="target"))
    say(
        line(
            ("Registered ", "bold green"),
            f"{ref} as {name}@champion ({champion.flavor.name}), from run {best['run_id']}",
        )
    )
    say(f"{name}@champion predicts {list(map(int, predicted))} for 10 digits")
    say(f"                         actual {list(map(int, digits['target']))}")
    say("Where to look next:")
    for command in (
        f"plinth runs show {best['run_id']}",
        f"plinth runs list -e {best['experiment']} -w \"tags.plinth.step = 'train_forest'\" "
        "-o -metrics.test_f1",
        f"plinth flows show {flow_run_id}",
        "plinth datasets show digits-train",
        f"plinth artifacts get {best['run_id']} confusion_matrix.csv .",
        f"plinth models show {name}@champion",
    ):
        say(f"  {command}")


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
    say(f"{len(runs)} runs in {duration(seconds)}, tracked in {safe_url(settings.resolved_store_url)}")
    say(f"artifacts and datasets in {settings.resolved_artifacts_url}")
