"""MLflow's tracking quickstart and the rest of its tracking API, as its documentation shows them.

Args: {"experiment": name, "t0": epoch ms for the timestamps it chooses}. Writes, then reads back
through the client: experiments and their tags, runs (a nested one, resumed after it ended, a
failed one, one made with MlflowClient and log_batch and written to after it ended), params,
metrics with steps and timestamps (NaN and infinities, asynchronous logging, a history longer
than one page), tags (one deleted), artifacts (files, folders, dicts, text, a figure, an image),
datasets (log_input with mlflow.data.from_pandas), searches and the errors MLflow users catch.
"""

from __future__ import annotations

import os
from typing import Any

from _common import args, emit, error_of, sha256_file, tree_digests

LONG_HISTORY = 30_000


def write_files(root: str) -> dict[str, str]:
    """Local files to log (relative path under `root` -> sha256)."""
    files = {
        "hello.txt": b"hello, plinth\n",
        "data/a.csv": b"x,y\n1,2\n3,4\n",
        "data/sub/b.bin": bytes(range(256)) * 40,
        "data/sub/empty.txt": b"",
    }
    for rel, content in files.items():
        path = os.path.join(root, "local", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(content)
    return {rel: sha256_file(os.path.join(root, "local", rel)) for rel in files}


def frame() -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "sepal": [5.1 + 0.1 * i for i in range(20)],
            "petal": [1.4 + 0.05 * i for i in range(20)],
            "label": [i % 3 for i in range(20)],
        }
    )


def log_quickstart(t0: int, local: str) -> dict[str, str]:
    """The documented fluent API inside one run with a nested child; returns the run ids."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    import numpy as np

    ids = {}
    with mlflow.start_run(run_name="quickstart", tags={"stage": "dev"}, description="first run") as run:
        ids["quickstart"] = run.info.run_id
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"epochs": 3, "optimizer": "adam", "layers": [64, 32], "title": "résumé ✓"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=t0 + step * 1000)
        mlflow.log_metrics({"acc": 0.875, "f1": 0.8125}, step=4, timestamp=t0 + 4000)
        mlflow.log_metric("acc", 0.9, step=5, timestamp=t0 + 5000)
        mlflow.log_metric("no_step", 2.5)
        mlflow.log_metric("nan_metric", float("nan"), step=0, timestamp=t0)
        mlflow.log_metric("inf_metric", float("inf"), step=0, timestamp=t0)
        mlflow.log_metric("neg_inf_metric", float("-inf"), step=0, timestamp=t0)
        mlflow.log_metric("big_step", 1.5, step=2**40, timestamp=t0)
        mlflow.set_tag("team", "vision")
        mlflow.set_tags({"priority": "high", "ünïcode": "✓ ok"})
        mlflow.set_tag("to_delete", "soon gone")
        mlflow.MlflowClient().delete_tag(run.info.run_id, "to_delete")

        with mlflow.start_run(run_name="child", nested=True) as child:
            ids["child"] = child.info.run_id
            mlflow.log_param("fold", 1)
            mlflow.log_metric("child_loss", 0.5, step=0, timestamp=t0)

        mlflow.log_artifact(os.path.join(local, "hello.txt"))
        mlflow.log_artifact(os.path.join(local, "hello.txt"), artifact_path="copies")
        mlflow.log_artifacts(os.path.join(local, "data"), artifact_path="data")
        mlflow.log_dict({"lr": 0.01, "layers": [64, 32]}, "config.json")
        mlflow.log_dict({"lr": 0.01, "name": "yaml"}, "config.yaml")
        mlflow.log_text("hello from mlflow ✓\n", "notes/readme.txt")
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1, 2], [2, 1, 0])
        mlflow.log_figure(fig, "plots/curve.png")
        plt.close(fig)
        image = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
        mlflow.log_image(image, artifact_file="images/square.png")

        train = mlflow.data.from_pandas(
            frame(), source="https://example.com/data/train.csv", name="compat-train", targets="label"
        )
        mlflow.log_input(train, context="training", tags={"split": "train"})
        evaluation = mlflow.data.from_pandas(frame().iloc[:5], name="compat-eval", targets="label")
        mlflow.log_input(evaluation, context="evaluation")
    return ids


def log_failed() -> str:
    """A run whose body raises: MLflow ends it FAILED."""
    import mlflow

    run_id = ""
    try:
        with mlflow.start_run(run_name="crashes") as run:
            run_id = run.info.run_id
            mlflow.log_metric("before_crash", 1.0)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    return run_id


def log_with_client(experiment_id: str, t0: int) -> tuple[str, dict[str, Any]]:
    """MlflowClient: create_run with a start time, log_batch, a clashing param, set_terminated."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient()
    run = client.create_run(experiment_id, start_time=t0 + 50_000, run_name="batch", tags={"kind": "batch"})
    run_id = run.info.run_id
    metrics = [Metric("m", i * 0.5, t0 + i, i) for i in range(100)]
    metrics += [Metric("m2", -i * 1.25, t0 + 1000 + i, i * 10) for i in range(10)]
    client.log_batch(
        run_id,
        metrics=metrics,
        params=[Param("p1", "v1"), Param("p2", "2")],
        tags=[RunTag("t1", "x"), RunTag("t2", "")],
    )
    client.log_batch(run_id, metrics=[Metric("m", 99.0, t0 + 500, 5)])  # a second point at step 5
    client.log_param(run_id, "p1", "v1")  # the same value again is allowed
    errors = {"param_changed": error_of(lambda: client.log_param(run_id, "p1", "other"))}
    for start in range(0, LONG_HISTORY, 1000):  # more points than one page of get_metric_history
        steps = range(start, min(start + 1000, LONG_HISTORY))
        client.log_batch(run_id, metrics=[Metric("long", s * 1e-4, t0 + s, s) for s in steps])
    client.set_terminated(run_id, status="KILLED", end_time=t0 + 60_000)
    # MLflow takes writes to an ended run (evaluations logged after training, for instance)
    client.log_metric(run_id, "after_end", 1.0, timestamp=t0 + 70_000, step=0)
    client.set_tag(run_id, "reviewed", "yes")
    return run_id, errors


def resume(run_id: str, t0: int) -> None:
    """Resume an ended run with start_run(run_id=...), log to it asynchronously, end it again."""
    import mlflow

    with mlflow.start_run(run_id=run_id):
        mlflow.log_metric("resumed", 1.0, step=0, timestamp=t0)
        mlflow.log_metric("async_metric", 3.0, step=1, timestamp=t0, synchronous=False)
        mlflow.flush_async_logging()


def run_view(run: Any) -> dict[str, Any]:
    """What the client reads back of a run."""
    info = run.info
    return {
        "info": {
            "run_id": info.run_id,
            "run_name": info.run_name,
            "experiment_id": info.experiment_id,
            "user_id": info.user_id,
            "status": info.status,
            "start_time": info.start_time,
            "end_time": info.end_time,
            "artifact_uri": info.artifact_uri,
            "lifecycle_stage": info.lifecycle_stage,
        },
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": dict(run.data.tags),
        "inputs": [
            {
                "name": d.dataset.name,
                "digest": d.dataset.digest,
                "source_type": d.dataset.source_type,
                "source": d.dataset.source,
                "schema": d.dataset.schema,
                "profile": d.dataset.profile,
                "tags": {t.key: t.value for t in d.tags},
            }
            for d in (run.inputs.dataset_inputs if run.inputs else [])
        ],
    }


def artifacts_of(run_id: str, workdir: str) -> dict[str, Any]:
    """The run's artifacts as the client lists them, and the sha256 of each downloaded file."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    listed: dict[str, int | None] = {}
    todo = [""]
    while todo:
        folder = todo.pop()
        for item in client.list_artifacts(run_id, folder or None):
            if item.is_dir:
                todo.append(item.path)
            else:
                listed[item.path] = item.file_size
    dest = os.path.join(workdir, "downloaded", run_id)
    os.makedirs(dest, exist_ok=True)
    mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="", dst_path=dest)
    one = mlflow.artifacts.load_text(f"runs:/{run_id}/notes/readme.txt")
    return {"listed": listed, "downloaded": tree_digests(dest), "readme": one}


def searches(experiment_id: str, name: str) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    frame_ = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string="params.optimizer = 'adam' and metrics.loss < 1",
        order_by=["metrics.loss ASC"],
    )
    by_name = mlflow.search_runs(
        experiment_names=[name], filter_string="tags.kind = 'batch'", output_format="list"
    )
    ordered = client.search_runs([experiment_id], order_by=["attributes.start_time ASC"])
    everywhere = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.kind = 'batch'", output_format="list"
    )
    experiments = client.search_experiments(filter_string=f"name = '{name}'")
    tagged = mlflow.search_experiments(filter_string="tags.project = 'compat'")
    return {
        "adam_runs": [str(v) for v in frame_["tags.mlflow.runName"]],
        "batch_runs": [r.info.run_name for r in by_name],
        "all_experiments": [r.info.run_name for r in everywhere],
        "by_start_time": [r.info.run_name for r in ordered],
        "experiments": [e.name for e in experiments],
        "tagged_experiments": [e.name for e in tagged],
    }


def main() -> None:
    a = args()
    import mlflow
    from mlflow import MlflowClient

    workdir, t0 = os.getcwd(), int(a["t0"])
    client = MlflowClient()
    experiment = mlflow.set_experiment(a["experiment"])
    mlflow.set_experiment_tags({"project": "compat", "owner": "tests"})
    local = write_files(workdir)
    ids = log_quickstart(t0, os.path.join(workdir, "local"))
    ids["crashes"] = log_failed()
    ids["batch"], errors = log_with_client(experiment.experiment_id, t0)
    errors["resume"] = error_of(lambda: resume(ids["child"], t0))

    histories = {}
    for run_name, key in [
        ("quickstart", "loss"),
        ("quickstart", "acc"),
        ("quickstart", "f1"),
        ("quickstart", "no_step"),
        ("quickstart", "nan_metric"),
        ("quickstart", "inf_metric"),
        ("quickstart", "neg_inf_metric"),
        ("quickstart", "big_step"),
        ("child", "child_loss"),
        ("crashes", "before_crash"),
        ("batch", "m"),
        ("batch", "m2"),
        ("batch", "long"),
        ("batch", "after_end"),
        ("child", "resumed"),
        ("child", "async_metric"),
    ]:
        points = client.get_metric_history(ids[run_name], key)
        histories[f"{run_name}/{key}"] = [[p.step, p.timestamp, p.value] for p in points]

    errors["missing_run"] = error_of(lambda: client.get_run("0123456789abcdef0123456789abcdef"))
    errors["missing_experiment"] = error_of(lambda: client.get_experiment("987654321"))
    errors["missing_experiment_by_name"] = {
        "returned": None if client.get_experiment_by_name("no such experiment") is None else "something"
    }
    errors["duplicate_experiment"] = error_of(lambda: client.create_experiment(a["experiment"]))
    errors["bad_filter"] = error_of(
        lambda: client.search_runs([experiment.experiment_id], "metrics.loss >>> 1")
    )

    got = client.get_experiment(experiment.experiment_id)
    emit(
        {
            "experiment_id": experiment.experiment_id,
            "experiment": {
                "name": got.name,
                "tags": dict(got.tags),
                "artifact_location": got.artifact_location,
                "lifecycle_stage": got.lifecycle_stage,
            },
            "runs": ids,
            "views": {name: run_view(client.get_run(run_id)) for name, run_id in ids.items()},
            "histories": histories,
            "local_files": local,
            "artifacts": artifacts_of(ids["quickstart"], workdir),
            "searches": searches(experiment.experiment_id, a["experiment"]),
            "errors": errors,
        }
    )


if __name__ == "__main__":
    main()
