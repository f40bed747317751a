"""MLflow's hot routes read what they answer in a fixed number of statements, and create runs
where MLflow's client asks for them.

A page of runs, or a run with many inputs, costs the statements a small one costs: no lookups per
run or per input. The SQL the database runs is counted on the server's own SQLite connections.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from plinth.store.sql import SqlStore
from team_servers import ThreadServer

API = "/api/2.0/mlflow"
T0 = 1_700_000_000_000


@contextmanager
def statements(store: SqlStore) -> Iterator[list[str]]:
    """Every SQL statement the store's connections run inside the block, but the checkpoints of
    the log its thread runs after earlier commits, whenever they come."""
    seen: list[str] = []

    def trace(statement: str) -> None:
        if not statement.startswith("PRAGMA wal_checkpoint"):
            seen.append(statement)

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.set_trace_callback(trace)

    def on_checkin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(None)

    event.listen(store.engine, "checkout", on_checkout)
    event.listen(store.engine, "checkin", on_checkin)
    try:
        yield seen
    finally:
        event.remove(store.engine, "checkout", on_checkout)
        event.remove(store.engine, "checkin", on_checkin)


def ok(http: httpx.Client, path: str, body: dict[str, Any], method: str = "POST") -> dict[str, Any]:
    answer = (
        http.get(f"{API}/{path}", params=body) if method == "GET" else http.post(f"{API}/{path}", json=body)
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def new_run(http: httpx.Client, experiment_id: str, name: str) -> str:
    run = ok(http, "runs/create", {"experiment_id": experiment_id, "run_name": name, "start_time": T0})
    run_id: str = run["run"]["info"]["run_id"]
    return run_id


def test_a_page_of_50_runs_costs_the_statements_of_a_page_of_5(server: ThreadServer) -> None:
    with server.client() as http:
        experiment_id = ok(http, "experiments/create", {"name": "pages"})["experiment_id"]
        for i in range(60):
            run_id = new_run(http, experiment_id, f"r{i}")
            metrics = [{"key": f"m{k}", "value": (i * (k + 7)) % 10 / 10, "timestamp": T0} for k in range(3)]
            params = [{"key": f"p{k}", "value": str((i + k) % 3)} for k in range(3)]
            tags = [{"key": "team", "value": "vision"}]
            ok(http, "runs/log-batch", {"run_id": run_id, "metrics": metrics, "params": params, "tags": tags})
        search = {
            "experiment_ids": [experiment_id],
            "filter": "params.p0 != '9'",
            "order_by": ["metrics.m1 DESC"],
        }
        counts = {}
        for size in (5, 50, 5, 50):  # the first of each fills the store's caches
            with statements(server.store()) as seen:
                runs = ok(http, "runs/search", {**search, "max_results": size})["runs"]
            assert len(runs) == size
            assert all(len(run["data"]["params"]) == 3 and len(run["data"]["metrics"]) == 3 for run in runs)
            counts[size] = len(seen)
    assert 0 < counts[5] == counts[50]


def test_a_run_with_many_inputs_and_outputs_is_read_in_the_statements_of_one_with_few(
    server: ThreadServer,
) -> None:
    def dataset(i: int) -> dict[str, Any]:
        profile = json.dumps({"num_rows": 10 + i})
        return {
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
            "dataset": {
                "name": f"data-{i}",
                "digest": f"d{i:07d}",
                "source_type": "local",
                "profile": profile,
            },
        }

    with server.client() as http:
        experiment_id = ok(http, "experiments/create", {"name": "inputs"})["experiment_id"]
        runs = {}
        for many in (1, 6):
            run_id = new_run(http, experiment_id, f"with-{many}")
            datasets = [dataset(i) for i in range(many)]
            models = [{"model_id": f"m-{i:032x}"} for i in range(many)]
            ok(http, "runs/log-inputs", {"run_id": run_id, "datasets": datasets, "models": models})
            ok(
                http,
                "runs/outputs",
                {"run_id": run_id, "models": [{"model_id": f"m-{many:032x}", "step": 1}]},
            )
            ok(http, "runs/get", {"run_id": run_id}, "GET")  # fills the store's caches
            runs[many] = run_id
        counts = {}
        for many, run_id in runs.items():
            with statements(server.store()) as seen:
                got = ok(http, "runs/get", {"run_id": run_id}, "GET")["run"]
            assert len(got["inputs"]["dataset_inputs"]) == len(got["inputs"]["model_inputs"]) == many
            assert got["outputs"]["model_outputs"] == [{"model_id": f"m-{many:032x}", "step": 1}]
            counts[many] = len(seen)
    assert 0 < counts[1] == counts[6]


def test_runs_logged_into_experiment_0_share_one_default_experiment(server: ThreadServer) -> None:
    with server.client() as http:
        first = ok(http, "runs/create", {"experiment_id": "0", "run_name": "one"})["run"]["info"]
        second = ok(http, "runs/create", {"run_name": "two"})["run"]["info"]  # no id: "0" too
        found = ok(http, "runs/search", {"experiment_ids": ["0"], "order_by": ["run_name"]})["runs"]
    assert first["experiment_id"] == second["experiment_id"] == "0"
    assert [run["info"]["run_name"] for run in found] == ["one", "two"]
    store = server.store()
    assert [exp.name for exp in store.list_experiments()].count("Default") == 1
    assert {store.get_run(info["run_id"]).experiment_name for info in (first, second)} == {"Default"}


def test_a_run_in_an_unknown_experiment_is_refused_and_creates_no_experiment(server: ThreadServer) -> None:
    with server.client() as http:
        answer = http.post(f"{API}/runs/create", json={"experiment_id": "01NOPE", "run_name": "lost"})
    assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert [exp.name for exp in server.store().list_experiments()] == []


def test_a_run_is_read_ended_and_refused_as_the_store_holds_it(server: ThreadServer) -> None:
    with server.client() as http:
        experiment_id = ok(http, "experiments/create", {"name": "ends"})["experiment_id"]
        run_id = new_run(http, experiment_id, "ending")
        ok(http, "runs/log-batch", {"run_id": run_id, "params": [{"key": "lr", "value": "0.1"}]})
        got = ok(http, "runs/get", {"run_id": run_id}, "GET")["run"]
        ended = ok(http, "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": T0 + 5})
        again = ok(http, "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": T0 + 9})
        missing = http.get(f"{API}/runs/get", params={"run_id": "nope"})
        not_updated = http.post(f"{API}/runs/update", json={"run_id": "nope", "status": "FINISHED"})
    assert (got["info"]["status"], got["data"]["params"]) == ("RUNNING", [{"key": "lr", "value": "0.1"}])
    assert (ended["run_info"]["status"], ended["run_info"]["end_time"]) == ("FINISHED", T0 + 5)
    assert again["run_info"]["end_time"] == T0 + 5  # ended twice the same way: as it was
    for answer in (missing, not_updated):
        assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    run = server.store().get_run(run_id)
    assert (run.status.value, run.end_ms, run.params) == ("FINISHED", T0 + 5, {"lr": "0.1"})
