"""The tracking API as users call it, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import plinth
from plinth.core.errors import ConflictError, InvalidInput, NotFound, RunNotActive
from plinth.tracking.context import Backend


def test_issue_example(tracking: Backend, tmp_path: Path) -> None:
    (tmp_path / "confusion.png").write_bytes(b"\x89PNG fake")
    df = pd.DataFrame({"x": np.arange(10.0), "y": list("ababababab")})
    with plinth.start_run(experiment="iris", params={"lr": 0.1}, tags={"team": "vision"}) as run:
        run.log_params({"depth": 3})
        run.set_tags({"stage": "dev"})
        for step in range(1000):
            run.log_metric("loss", 1 / (step + 1), step=step)
        run.log_metrics({"acc": 0.93, "f1": 0.91})
        run.log_artifact(str(tmp_path / "confusion.png"))
        ds = run.log_dataset(df, name="iris-train", role="train")
    got = plinth.get_run(run.id)
    assert got.status is plinth.RunStatus.FINISHED
    assert got.params == {"lr": "0.1", "depth": "3"}
    assert got.tags == {"team": "vision", "stage": "dev"}
    assert got.metrics == {"loss": 1 / 1000, "acc": 0.93, "f1": 0.91}
    assert [a.path for a in got.artifacts] == ["confusion.png"]
    assert got.environment is not None and "packages" in got.environment
    assert got.end_ms is not None and got.end_ms >= got.start_ms
    assert (ds.name, ds.version, ds.rows) == ("iris-train", 1, 10)
    found = plinth.search_runs(
        experiment="iris",
        where="metrics.acc > 0.9 and params.lr = 0.1 and tags.team = 'vision'",
        order_by=["-metrics.acc"],
        limit=10,
    )
    assert [r.id for r in found] == [run.id]
    history = plinth.metric_history(run.id, "loss")
    assert len(history) == 1000
    assert history[0].step == 0 and history[-1].value == pytest.approx(0.001)
    frame = plinth.metric_history(run.id, "loss", as_frame=True)
    assert list(frame.columns) == ["step", "timestamp", "value"] and len(frame) == 1000


def test_search_as_frame(tracking: Backend) -> None:
    for lr in (0.1, 0.2):
        with plinth.start_run(experiment="e", params={"lr": lr}) as run:
            run.log_metric("acc", lr * 4)
    frame = plinth.search_runs(experiment="e", order_by="metrics.acc", as_frame=True)
    assert list(frame["params.lr"]) == ["0.1", "0.2"]
    assert list(frame["metrics.acc"]) == pytest.approx([0.4, 0.8])


def test_default_steps_count_up_per_key(tracking: Backend) -> None:
    with plinth.start_run() as run:
        for v in (3.0, 2.0, 1.0):
            run.log_metric("a", v)
        run.log_metric_points("a", [0.5, 0.25])
    assert list(plinth.metric_history(run.id, "a").steps) == [0, 1, 2, 3, 4]


def test_batch_path_with_steps_and_numpy_values(tracking: Backend) -> None:
    values = np.linspace(0, 1, 10_000, dtype=np.float32)
    with plinth.start_run() as run:
        run.log_metric_points("s", values, steps=np.arange(10_000) * 2)
        run.flush()
        assert len(plinth.metric_history(run.id, "s")) == 10_000
    history = plinth.metric_history(run.id, "s")
    assert history.steps[-1] == 19_998
    assert history.values == pytest.approx(values.astype(float))


def test_exception_marks_failed_with_error(tracking: Backend) -> None:
    with pytest.raises(ZeroDivisionError), plinth.start_run() as run:
        run.log_metric("x", 1.0)
        _ = 1 / 0
    got = plinth.get_run(run.id)
    assert got.status is plinth.RunStatus.FAILED
    assert got.error is not None and got.error.startswith("ZeroDivisionError")
    assert got.metrics == {"x": 1.0}


def test_keyboard_interrupt_marks_killed(tracking: Backend) -> None:
    with pytest.raises(KeyboardInterrupt), plinth.start_run() as run:
        raise KeyboardInterrupt
    assert plinth.get_run(run.id).status is plinth.RunStatus.KILLED


def test_sigterm_marks_killed(tracking: Backend) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit), plinth.start_run() as run:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.0) if hasattr(signal, "sigtimedwait") else None
            for _ in range(1000):
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert plinth.get_run(run.id).status is plinth.RunStatus.KILLED


def test_sigterm_with_another_handler_installed_is_chained_and_marks_killed(tracking: Backend) -> None:
    """A process where something else (Ray's driver, a web framework) already handles SIGTERM."""
    previous = signal.getsignal(signal.SIGTERM)
    called: list[int] = []

    def theirs(signum: int, frame: object) -> None:
        called.append(signum)
        raise SystemExit(3)

    signal.signal(signal.SIGTERM, theirs)
    try:
        with pytest.raises(SystemExit) as exited, plinth.start_run() as run:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert called == [signal.SIGTERM] and exited.value.code == 3
    assert plinth.get_run(run.id).status is plinth.RunStatus.KILLED


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda r: r.log_metric("acc", "high"), InvalidInput, "must be a number"),
        (lambda r: r.log_metric("acc", None), InvalidInput, "must be a number"),
        (lambda r: r.log_metric("a/../b", 1.0), InvalidInput, "looks like a file path"),
        (lambda r: r.log_metric("/abs", 1.0), InvalidInput, "looks like a file path"),
        (lambda r: r.log_metric("bad\x00key", 1.0), InvalidInput, "control character"),
        (lambda r: r.log_metric("", 1.0), InvalidInput, "non-empty"),
        (lambda r: r.log_metric("a", 1.0, step=-1), InvalidInput, ">= 0"),
        (lambda r: r.log_metric("a", 1.0, step=1.5), InvalidInput, "integer"),
        (lambda r: r.log_params({"lr": 0.5}), ConflictError, "already logged"),
        (lambda r: r.set_tags({"a\\b": 1}), InvalidInput, "file path"),
        (lambda r: r.log_metric_points("a", ["x", "y"]), InvalidInput, "real numbers"),
        (lambda r: r.log_metric_points("a", [1.0, 2.0], steps=[1]), InvalidInput, "2 non-negative"),
        (lambda r: r.log_artifact("/no/such/file"), InvalidInput, "no such file"),
        (lambda r: r.log_dataset(object(), name="d"), InvalidInput, "DataFrame"),
    ],
)
def test_bad_input_is_refused_and_nothing_half_written(
    tracking: Backend, call: Callable[[plinth.ActiveRun], object], error: type[Exception], match: str
) -> None:
    with plinth.start_run(params={"lr": 0.1}) as run:
        with pytest.raises(error, match=match):
            call(run)
    got = plinth.get_run(run.id)
    assert got.status is plinth.RunStatus.FINISHED
    assert got.params == {"lr": "0.1"}
    assert got.metrics == {} and got.tags == {} and got.artifacts == []


def test_logging_to_finished_run_is_refused(tracking: Backend) -> None:
    with plinth.start_run() as run:
        pass
    for call in (
        lambda: run.log_metric("a", 1.0),
        lambda: run.log_params({"a": 1}),
        lambda: run.set_tags({"a": 1}),
    ):
        with pytest.raises(RunNotActive, match="has ended"):
            call()


def test_bad_filter_points_at_position(tracking: Backend) -> None:
    with pytest.raises(InvalidInput) as info:
        plinth.search_runs(where="metrics.acc > and")
    assert info.value.position == 14  # type: ignore[attr-defined]


def test_unknown_run_is_not_found(tracking: Backend) -> None:
    with pytest.raises(NotFound, match="plinth runs list"):
        plinth.get_run("01NOPE")


def test_active_run(tracking: Backend) -> None:
    assert plinth.active_run() is None
    with plinth.start_run() as outer:
        assert plinth.active_run() is outer
    assert plinth.active_run() is None


def test_run_left_open_is_finished_when_backend_closes(tracking: Backend) -> None:
    run = plinth.start_run()
    run.log_metric("a", 1.0)
    plinth.configure(tracking.settings)  # closes the old backend
    got = plinth.get_run(run.id)
    assert got.status is plinth.RunStatus.FINISHED and got.metrics == {"a": 1.0}


def test_slashed_dataset_names_and_their_references(
    tracking: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    from plinth.cli.main import main

    with plinth.start_run(experiment="e") as run:
        run.log_dataset(pd.DataFrame({"a": [1]}), name="org/churn")
        run.log_dataset(pd.DataFrame({"a": [1, 2]}), name="org/churn")
    assert plinth.get_dataset("org/churn/1").rows == 1
    assert plinth.get_dataset("org/churn", 1).rows == 1
    assert plinth.get_dataset("org/churn").version == 2
    assert plinth.get_dataset("org/churn@latest").version == 2
    assert len(plinth.load_dataset("org/churn/2")) == 2
    with pytest.raises(InvalidInput, match="already names a version"):
        plinth.get_dataset("org/churn/1", 2)
    with pytest.raises(NotFound):
        plinth.get_dataset("org/churn/3")
    assert main(["datasets", "show", "org/churn/1"]) == 0
    assert "Dataset org/churn/1" in capsys.readouterr().out


def test_a_reference_to_a_version_never_names_a_dataset(
    tracking: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ds/1` is version 1 of `ds`: no dataset can be named `ds/1`, so none is shadowed."""
    from plinth.cli.main import main

    with plinth.start_run(experiment="e") as run:
        run.log_dataset(pd.DataFrame({"a": [1]}), name="ds")
        with pytest.raises(InvalidInput, match="would be read as a reference NAME/VERSION"):
            run.log_dataset(pd.DataFrame({"a": [1, 2]}), name="ds/1")
    assert [d.name for d in plinth.list_datasets()] == ["ds"]
    assert main(["datasets", "show", "ds/1"]) == 0
    assert "Dataset ds/1" in capsys.readouterr().out
