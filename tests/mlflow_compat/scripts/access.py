"""Tokens, roles and workspaces as the MLflow client meets them (MLFLOW_TRACKING_TOKEN).

Args: {"viewer": token, "workspace_editor": token, "run_id": a run made with plinth's own API,
"experiment": that run's experiment name, "workspace_experiments": [names]}. A viewer reads the
run and is refused every write; no token and a wrong token are refused; the workspace editor
creates its experiments and logs a run into them.
"""

from __future__ import annotations

import os
from typing import Any

from _common import args, emit, error_of


def use_token(token: str) -> None:
    """The token the next requests send (the client reads MLFLOW_TRACKING_TOKEN per request)."""
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    else:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)


def as_viewer(a: dict[str, Any]) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient()
    use_token(a["viewer"])
    run = client.get_run(a["run_id"])
    experiment = client.get_experiment_by_name(a["experiment"])
    return {
        "run": {
            "name": run.info.run_name,
            "status": run.info.status,
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
            "experiment_id": run.info.experiment_id,
        },
        "experiment_id": experiment.experiment_id if experiment else None,
        "history": [[p.step, p.value] for p in client.get_metric_history(a["run_id"], "loss")],
        "found": [r.info.run_id for r in client.search_runs([run.info.experiment_id], "params.lr = '0.1'")],
        "create_experiment": error_of(lambda: client.create_experiment("made-by-a-viewer")),
        "create_run": error_of(lambda: client.create_run(run.info.experiment_id)),
        "log_metric": error_of(lambda: client.log_metric(a["run_id"], "x", 1.0)),
        "log_param": error_of(lambda: client.log_param(a["run_id"], "y", "1")),
        "set_tag": error_of(lambda: client.set_tag(a["run_id"], "z", "1")),
        "register": error_of(lambda: client.create_registered_model("made-by-a-viewer")),
    }


def without_a_good_token(a: dict[str, Any]) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient()
    use_token("")
    anonymous = error_of(lambda: client.search_experiments())
    use_token("plt_not-a-token-of-this-server")
    wrong = error_of(lambda: client.get_run(a["run_id"]))
    return {"anonymous": anonymous, "wrong_token": wrong}


def in_workspace(a: dict[str, Any]) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    use_token(a["workspace_editor"])
    client = MlflowClient()
    out: dict[str, Any] = {"sees_default_run": error_of(lambda: client.get_run(a["run_id"]))}
    for name in a["workspace_experiments"]:
        experiment = mlflow.set_experiment(name)
        with mlflow.start_run(run_name=f"run-in-{name}") as run:
            mlflow.log_param("where", "workspace")
            mlflow.log_metric("m", 1.0, step=0)
        out[name] = {"experiment_id": experiment.experiment_id, "run_id": run.info.run_id}
    out["experiments"] = sorted(e.name for e in client.search_experiments())
    return out


def main() -> None:
    a = args()
    emit({"viewer": as_viewer(a), "refused": without_a_good_token(a), "workspace": in_workspace(a)})


if __name__ == "__main__":
    main()
