"""Write an MLflow store with MLflow's own client; run by .venv-mlflow's python, never by plinth's.

    MLFLOW_TRACKING_URI=sqlite:///x.db python mlflow_fill.py ARTIFACT_ROOT FACTS_JSON

What it logs is what `test_mlflow_import.py` expects to find in plinth after `plinth import
mlflow`: a unicode experiment with a parent run (a 100,000-point metric, NaN and infinities, a
metric logged twice at one step, unicode params, artifacts, a dataset through `log_input`, a
scikit-learn model registered twice with aliases, tags and descriptions), two nested runs (one
FAILED), and a second experiment with a run left RUNNING and a deleted run. The ids MLflow gave
and every logged value are written to FACTS_JSON.
"""

from __future__ import annotations

import json
import math
import os
import sys

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric
from sklearn.linear_model import LogisticRegression

T0 = 1_700_000_000_000
BIG = 100_000
EXPERIMENT = "Ünïcode 実験 🚀"
OTHER = "other"


def curve(n: int) -> list[float]:
    """The 100,000-point metric: a decaying wave, exactly representable as float64."""
    return [float(np.float64(1.0 / (1 + i) + 0.001 * math.sin(i))) for i in range(n)]


def log_big(client: MlflowClient, run_id: str) -> list[list[float]]:
    """`loss` at steps 0..BIG-1, one millisecond apart, 1,000 points per `log_batch` (MLflow's limit)."""
    values = curve(BIG)
    points = [[i, T0 + i, values[i]] for i in range(BIG)]
    for start in range(0, BIG, 1000):
        batch = [Metric("loss", v, ts, step) for step, ts, v in points[start : start + 1000]]
        client.log_batch(run_id, metrics=batch)
    return points


def fill(root: str) -> dict[str, object]:
    """Log everything; the facts the test checks."""
    client = MlflowClient()
    exp_id = mlflow.create_experiment(EXPERIMENT, tags={"team": "ïnfra", "owner": "ana"})
    mlflow.set_experiment(experiment_id=exp_id)
    facts: dict[str, object] = {"experiment": EXPERIMENT, "experiment_id": exp_id}
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
    with mlflow.start_run(run_name="päränt ✓") as parent:
        pid = parent.info.run_id
        mlflow.log_params({"学习率": "0.01", "batch size": "32"})
        mlflow.set_tags({"stage": "dev", "ключ": "значение"})
        facts["loss"] = log_big(client, pid)
        odd = [[0, T0, float("nan")], [1, T0 + 1, float("inf")], [2, T0 + 2, float("-inf")], [3, T0 + 3, 0.5]]
        twice = [[5, T0 + 10, 1.0], [5, T0 + 20, 2.0]]
        client.log_batch(pid, metrics=[Metric("odd", v, ts, s) for s, ts, v in odd])
        client.log_batch(pid, metrics=[Metric("twice", v, ts, s) for s, ts, v in twice])
        facts["odd"], facts["twice"] = odd, twice
        mlflow.log_text("hello ü\n", "notes/readme.txt")
        blob = bytes(range(256)) * 400
        with open(os.path.join(root, "..", "weights.bin"), "wb") as f:
            f.write(blob)
        mlflow.log_artifact(os.path.join(root, "..", "weights.bin"), artifact_path="data")
        dataset = mlflow.data.from_pandas(
            frame, source="s3://bucket/iris.csv", name="iris-train", targets="y"
        )
        mlflow.log_input(dataset, context="training")
        facts["dataset"] = {"name": "iris-train", "digest": dataset.digest, "rows": len(frame)}
        model = LogisticRegression().fit(frame[["x"]], frame["y"])
        info = mlflow.sklearn.log_model(model, name="model", input_example=frame[["x"]].head(2))
        facts["model_id"] = info.model_id
        children = []
        for i, status in enumerate(["FINISHED", "FAILED"]):
            with mlflow.start_run(run_name=f"child {i}", nested=True) as child:
                mlflow.log_param("fold", str(i))
                mlflow.log_metric("acc", 0.5 + i / 10, step=0, timestamp=T0 + i)
                children.append({"id": child.info.run_id, "status": status})
                if status == "FAILED":
                    mlflow.end_run("FAILED")
        facts["children"] = children
    facts["parent"] = pid
    facts["parent_run"] = client.get_run(pid).to_dictionary()["info"]
    facts["artifacts"] = {"notes/readme.txt": "hello ü\n".encode().hex(), "data/weights.bin": blob.hex()}
    v1 = mlflow.register_model(info.model_uri, "iris-clf")
    v2 = mlflow.register_model(f"runs:/{pid}/model", "iris-clf")
    client.update_registered_model("iris-clf", description="Iris classifier ✓")
    client.set_registered_model_tag("iris-clf", "domain", "botany")
    client.set_model_version_tag("iris-clf", v1.version, "validated", "yes")
    client.update_model_version("iris-clf", v1.version, description="first ✓")
    client.set_registered_model_alias("iris-clf", "champion", v1.version)
    client.set_registered_model_alias("iris-clf", "challenger", v2.version)
    facts["versions"] = [int(v1.version), int(v2.version)]
    other = mlflow.create_experiment(OTHER)
    live = client.create_run(other, run_name="still running", start_time=T0)
    client.log_metric(live.info.run_id, "m", 1.0, timestamp=T0, step=0)
    gone = client.create_run(other, run_name="deleted")
    client.delete_run(gone.info.run_id)
    facts["live"], facts["deleted"], facts["other_id"] = live.info.run_id, gone.info.run_id, other
    return facts


def main() -> None:
    root, out = sys.argv[1], sys.argv[2]
    os.makedirs(root, exist_ok=True)
    facts = fill(root)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(facts, f)


if __name__ == "__main__":
    main()
