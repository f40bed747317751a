"""The same runs and experiments written to a server, then searched with MLflow's filter strings.

Args: {"experiment": name, "t0": epoch ms, "runs": [[filter, [order_by...]], ...],
"experiments": [[filter, [order_by...]], ...]}. A filter may name a run's id as `{id:run-03}`.
The result gives, for each query, the run (or experiment) names in the order the server
returned them, or the error code it answered with; `paged` is one ordered search read five
runs at a time through page tokens.
"""

from __future__ import annotations

import re
from typing import Any

from _common import args, emit

N_RUNS = 24
TEAMS = ["vision", "nlp", "speech"]
LRS = ["0.01", "0.1", "0.001"]
OPTIMIZERS = ["adam", "sgd", "adamw", "rmsprop"]
ENDINGS = [None, "FINISHED", "FAILED", "KILLED"]


def fill_run(client: Any, experiment_id: str, t0: int, i: int) -> str:
    """Run `run-<i>`: a start time of its own, params, tags, metrics whose latest value is not the
    last one logged, some datasets, and a status that cycles through RUNNING and the ends."""
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param

    tags = {"group.name": "a" if i < N_RUNS // 2 else "b"}
    if i % 7:
        tags["team"] = TEAMS[i % 3]
    run = client.create_run(experiment_id, start_time=t0 + i * 1000, run_name=f"run-{i:02d}", tags=tags)
    run_id = run.info.run_id
    params = [Param("lr", LRS[i % 3]), Param("optimizer", OPTIMIZERS[i % 4]), Param("seed", str(i))]
    if i % 4 == 1:
        params.append(Param("note", "has a note"))
    # loss: step 5 holds the latest value although step 2 is logged after it
    metrics = [Metric("loss", 1.0 / (i + 1), t0 + i, 5), Metric("loss", 10.0 + i, t0 + i + 1, 2)]
    if i % 5:
        metrics += [
            Metric("acc", 0.1, t0 + i, 0),
            Metric("acc", ((i * 7) % N_RUNS) / N_RUNS + 0.001 * i, t0 + i, 1),
        ]
    client.log_batch(run_id, metrics=metrics, params=params)
    if i % 3 == 0:
        name, context = ("iris", "training") if i % 2 else ("wine", "evaluation")
        dataset = Dataset(name=name, digest=f"digest-{name}", source_type="local", source='{"uri": "/data"}')
        client.log_inputs(run_id, [DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])])
    ending = ENDINGS[i % 4]
    if ending:
        client.set_terminated(run_id, status=ending, end_time=t0 + i * 1000 + 500)
    return run_id


def fill(client: Any, name: str, t0: int) -> tuple[str, dict[str, str]]:
    experiment_id = client.create_experiment(name)
    ids = {f"run-{i:02d}": fill_run(client, experiment_id, t0, i) for i in range(N_RUNS)}
    for suffix, tags in [
        ("a", {"owner": "alice"}),
        ("b", {"owner": "bob"}),
        ("c", {"owner": "alice", "stage": "prod"}),
    ]:
        client.create_experiment(f"parity-exp-{suffix}", tags=tags)
    return experiment_id, ids


def with_ids(filter_string: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{id:([^}]+)\}", lambda m: ids[m.group(1)], filter_string)


def search_runs(client: Any, experiment_id: str, filter_string: str, order_by: list[str]) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        runs = client.search_runs([experiment_id], filter_string=filter_string, order_by=order_by or None)
    except MlflowException as exc:
        return {"error_code": exc.error_code, "message": str(exc)[:300]}
    return [r.info.run_name for r in runs]


def search_experiments(client: Any, filter_string: str, order_by: list[str]) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_experiments(filter_string=filter_string, order_by=order_by or None)
    except MlflowException as exc:
        return {"error_code": exc.error_code, "message": str(exc)[:300]}
    return [e.name for e in found]


def paged(client: Any, experiment_id: str) -> list[str]:
    """Every run, five at a time, by name (page tokens as the client passes them)."""
    names: list[str] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], order_by=["attributes.run_name ASC"], max_results=5, page_token=token
        )
        names += [r.info.run_name for r in page]
        token = page.token
        if not token:
            return names


def main() -> None:
    a = args()
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id, ids = fill(client, a["experiment"], int(a["t0"]))
    runs = {
        f"{f} | {', '.join(o)}": search_runs(client, experiment_id, with_ids(f, ids), o) for f, o in a["runs"]
    }
    experiments = {f"{f} | {', '.join(o)}": search_experiments(client, f, o) for f, o in a["experiments"]}
    emit({"runs": runs, "experiments": experiments, "paged": paged(client, experiment_id)})


if __name__ == "__main__":
    main()
