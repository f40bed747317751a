"""`search_runs` returns `Runs`: a read-only sequence of runs that becomes a DataFrame on request."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pytest

import plinth
from plinth.tracking.context import Backend
from plinth.tracking.results import REPR_ROWS


def _log_runs(count: int, experiment: str = "sweep") -> list[str]:
    ids = []
    for i in range(count):
        with plinth.start_run(experiment=experiment, name=f"trial-{i}", params={"lr": i / 10}) as run:
            run.log_metric("acc", i / 100)
        ids.append(run.id)
    return ids


def test_runs_is_a_sequence_of_run(tracking: Backend) -> None:
    ids = _log_runs(3)
    runs = plinth.search_runs(experiment="sweep", order_by="metrics.acc")
    assert isinstance(runs, plinth.Runs) and isinstance(runs, Sequence)
    assert len(runs) == 3 and runs.ids == ids
    assert [run.id for run in runs] == ids
    assert runs[0].id == ids[0] and runs[-1].id == ids[-1]
    assert isinstance(runs[1:], plinth.Runs) and runs[1:].ids == ids[1:]
    assert runs[0] in runs and runs.index(runs[2]) == 2
    with pytest.raises(IndexError):
        runs[3]


def test_runs_equal_the_same_runs_in_the_same_order(tracking: Backend) -> None:
    _log_runs(2)
    runs = plinth.search_runs(experiment="sweep")
    assert runs == list(runs) and list(runs) == runs and runs == tuple(runs)
    assert runs == plinth.search_runs(experiment="sweep")
    assert runs != list(reversed(runs)) and runs != runs[:1]
    assert plinth.search_runs(where="metrics.acc > 5") == []


def test_runs_cannot_be_changed(tracking: Backend) -> None:
    _log_runs(1)
    runs = plinth.search_runs(experiment="sweep")
    with pytest.raises(TypeError):
        runs[0] = runs[0]  # type: ignore[index]
    with pytest.raises(AttributeError):
        runs.append(runs[0])  # type: ignore[attr-defined]


def test_to_frame_is_what_as_frame_gives(tracking: Backend) -> None:
    _log_runs(2)
    runs = plinth.search_runs(experiment="sweep", order_by="metrics.acc")
    frame = runs.to_frame()
    assert list(frame.columns) == [
        "run_id",
        "experiment",
        "name",
        "status",
        "user",
        "start_time",
        "end_time",
        "params.lr",
        "metrics.acc",
    ]
    assert list(frame["run_id"]) == runs.ids and list(frame["params.lr"]) == ["0.0", "0.1"]
    assert str(frame["start_time"].dt.tz) == "UTC"
    pd.testing.assert_frame_equal(
        frame, plinth.search_runs(experiment="sweep", order_by="metrics.acc", as_frame=True)
    )


def test_repr_is_a_short_table(tracking: Backend) -> None:
    _log_runs(REPR_ROWS + 3)
    text = repr(plinth.search_runs(experiment="sweep", order_by="start_time"))
    lines = text.splitlines()
    assert lines[0] == f"<Runs: {REPR_ROWS + 3} runs>"
    assert lines[1].split() == ["run_id", "experiment", "name", "status", "started", "(UTC)", "duration"]
    assert len(lines) == 1 + 1 + REPR_ROWS + 1
    assert lines[2].split()[1:4] == ["sweep", "trial-0", "FINISHED"]
    assert lines[-1].startswith("... 3 more;")


def test_repr_of_one_run_and_of_none(tracking: Backend) -> None:
    [run_id] = _log_runs(1)
    lines = repr(plinth.search_runs(experiment="sweep")).splitlines()
    assert lines[0] == "<Runs: 1 run>" and len(lines) == 3 and lines[2].startswith(run_id)
    assert repr(plinth.search_runs(where="metrics.acc > 5")) == "<Runs: no runs>"


def test_repr_clips_long_names(tracking: Backend) -> None:
    with plinth.start_run(experiment="sweep", name="trial-" + "x" * 60):
        pass
    row = repr(plinth.search_runs(experiment="sweep")).splitlines()[2]
    assert "trial-xxx" in row and "x" * 40 not in row and "…" in row


def test_an_empty_runs_makes_an_empty_frame() -> None:
    assert len(plinth.Runs()) == 0 and plinth.Runs().to_frame().empty
