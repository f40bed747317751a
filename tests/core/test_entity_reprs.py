"""The plain-text reprs of the entities users get back stay one short line (notebooks and REPLs
show the HTML view or this, never a screenful of environment and profile)."""

from __future__ import annotations

from plinth.core.entities import DatasetVersion, FlowRun, ModelVersion, Run, RunStatus, StepRun, StepStatus


def test_a_run_is_one_short_line() -> None:
    env = {"packages": {f"pkg{i}": "1.0" for i in range(300)}}
    run = Run("01ABC", "e1", "iris", "baseline", RunStatus.FINISHED, "ana", 0, 1, None, 10.0, environment=env)
    assert repr(run) == "<Run 01ABC 'baseline' in iris FINISHED>"


def test_model_dataset_flow_and_step_reprs() -> None:
    mv = ModelVersion("m1", "churn", 3, "sklearn", "d", None, {}, None, "", "ana", 0, aliases=("champion",))
    assert repr(mv) == "<ModelVersion churn/3 sklearn @champion>"
    profile = {"columns": {f"c{i}": {"mean": 1.0} for i in range(100)}}
    schema = [{"name": "a", "type": "float"}, {"name": "b", "type": "int"}]
    ds = DatasetVersion("d1", "iris-train", 1, "x", 150, schema, profile, "df", 0)
    assert repr(ds) == "<DatasetVersion iris-train/1: 150 rows, 2 columns>"
    flow_run = FlowRun("f1", "train", RunStatus.RUNNING, {}, "mod:train", 0, None)
    assert repr(flow_run) == "<FlowRun train f1 RUNNING>"
    step_run = StepRun("s1", "f1", "fit#0", "fit", StepStatus.FINISHED, 1, 1000, 3500, "in")
    assert repr(step_run) == "<StepRun fit#0 FINISHED 2.5 s>"


def test_a_drift_report_says_how_many_features_drifted() -> None:
    import numpy as np
    import pandas as pd

    from plinth.monitoring.drift import drift
    from plinth.monitoring.references import reference_from_frame

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(0, 1, 500), "b": rng.normal(0, 1, 500)})
    current = pd.DataFrame({"a": rng.normal(3, 1, 500), "b": rng.normal(0, 1, 500)})
    assert repr(drift(reference_from_frame(reference), current)) == "<DriftReport: 1 of 2 features drifted>"
