"""MLflow's tracking API on the team server: experiments, runs, metrics, params, tags, search.

Requests are sent as MLflow's client sends them (JSON bodies with int64 fields as numbers,
doubles as numbers or "NaN"/"Infinity", GETs with query parameters); what arrived is checked
through the server's own store. One test drives the real MLflow client (`.venv-mlflow`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from plinth.core.entities import RunStatus
from team_servers import ThreadServer

API = "/api/2.0/mlflow"
REPO = Path(__file__).resolve().parents[3]
MLFLOW_PYTHON = REPO / ".venv-mlflow" / "bin" / "python"
T0 = 1_700_000_000_000


class Mlflow:
    """MLflow's REST calls over an httpx client: `ok` expects 200, `refused` an error code."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def call(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        if method == "GET":
            return self.http.get(f"{API}/{path}", params=body)
        return self.http.post(f"{API}/{path}", json=body)

    def ok(self, path: str, body: dict[str, Any], method: str = "POST") -> dict[str, Any]:
        answer = self.call(method, path, body)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def refused(self, path: str, body: dict[str, Any], method: str = "POST") -> tuple[int, str, str]:
        answer = self.call(method, path, body)
        doc = answer.json()
        return answer.status_code, doc["error_code"], doc["message"]

    def experiment(self, name: str, **body: Any) -> str:
        return str(self.ok("experiments/create", {"name": name, **body})["experiment_id"])

    def run(self, experiment_id: str, **body: Any) -> dict[str, Any]:
        run: dict[str, Any] = self.ok("runs/create", {"experiment_id": experiment_id, **body})["run"]
        return run


def tags_of(message: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in message.get("tags", [])}


# experiments ------------------------------------------------------------------------------------
def test_experiments_are_created_read_tagged_and_searched(team_server: ThreadServer) -> None:
    with team_server.client() as http:
        api = Mlflow(http)
        exp = api.experiment("vision ✓", tags=[{"key": "team", "value": "cv"}])
        assert api.refused("experiments/create", {"name": "vision ✓"})[:2] == (400, "RESOURCE_ALREADY_EXISTS")
        got = api.ok("experiments/get", {"experiment_id": exp}, "GET")["experiment"]
        assert got["name"] == "vision ✓" and got["lifecycle_stage"] == "active"
        assert got["artifact_location"] == f"mlflow-artifacts:/{exp}" and tags_of(got) == {"team": "cv"}
        assert api.ok("experiments/get-by-name", {"experiment_name": "vision ✓"}, "GET")["experiment"] == got
        missing = api.refused("experiments/get-by-name", {"experiment_name": "nope"}, "GET")
        assert missing[:2] == (404, "RESOURCE_DOES_NOT_EXIST")
        default = api.ok("experiments/get", {"experiment_id": "0"}, "GET")["experiment"]
        assert (default["experiment_id"], default["name"]) == ("0", "Default")

        api.ok("experiments/set-experiment-tag", {"experiment_id": exp, "key": "stage", "value": "prod"})
        api.experiment("nlp")
        assert tags_of(api.ok("experiments/get", {"experiment_id": exp}, "GET")["experiment"]) == {
            "team": "cv",
            "stage": "prod",
        }
        assert team_server.store().get_experiment(exp).tags == {"team": "cv", "stage": "prod"}

        def names(body: dict[str, Any], method: str = "POST") -> list[str]:
            return [e["name"] for e in api.ok("experiments/search", body, method)["experiments"]]

        assert names({"order_by": ["name ASC"]}) == ["Default", "nlp", "vision ✓"]
        assert names({"filter": "tags.team = 'cv'"}) == ["vision ✓"]
        assert names({"filter": "name LIKE 'v%' and tags.stage IS NOT NULL"}) == ["vision ✓"]
        assert names({"filter": "name ILIKE 'NLP'"}, "GET") == ["nlp"]
        assert names({"order_by": "name DESC"}, "GET") == ["vision ✓", "nlp", "Default"]
        assert names({"view_type": "DELETED_ONLY"}) == []
        first = api.ok("experiments/search", {"max_results": 2, "order_by": ["name"]})
        rest = api.ok(
            "experiments/search",
            {"max_results": 2, "order_by": ["name"], "page_token": first["next_page_token"]},
        )
        assert [e["name"] for e in first["experiments"] + rest["experiments"]] == [
            "Default",
            "nlp",
            "vision ✓",
        ]
        assert "next_page_token" not in rest


def test_what_plinth_does_not_do_to_experiments_is_refused_clearly(server: ThreadServer) -> None:
    with server.client() as http:
        api = Mlflow(http)
        exp = api.experiment("kept")
        status, code, message = api.refused(
            "experiments/update", {"experiment_id": exp, "new_name": "renamed"}
        )
        assert (status, code) == (400, "INVALID_PARAMETER_VALUE") and "does not rename" in message
        api.ok("experiments/update", {"experiment_id": exp, "new_name": "kept"})
        for path in ("experiments/delete", "experiments/restore"):
            status, code, message = api.refused(path, {"experiment_id": exp})
            assert (status, code) == (400, "INVALID_PARAMETER_VALUE") and "plinth" in message
        assert api.refused("experiments/get", {"experiment_id": "nope"}, "GET")[:2] == (
            404,
            "RESOURCE_DOES_NOT_EXIST",
        )
        assert api.refused("experiments/create", {"name": ""})[1] == "INVALID_PARAMETER_VALUE"


# runs -------------------------------------------------------------------------------------------
def test_every_value_of_a_run_round_trips_exactly(team_server: ThreadServer) -> None:
    with team_server.client() as http:
        api = Mlflow(http)
        exp = api.experiment("round-trip")
        run = api.run(
            exp,
            start_time=T0,
            run_name="première",
            user_id="someone-else",
            tags=[
                {"key": "mlflow.user", "value": "laptop-user"},
                {"key": "mlflow.source.name", "value": "train.py"},
            ],
        )
        rid = run["info"]["run_id"]
        assert run["info"]["run_name"] == "première" and run["info"]["start_time"] == T0
        assert (
            run["info"]["status"] == "RUNNING"
            and run["info"]["artifact_uri"] == f"mlflow-artifacts:/{exp}/{rid}/artifacts"
        )
        points = [("loss", 0.5, T0 + 1, 0), ("loss", "NaN", T0 + 2, 1), ("loss", "Infinity", T0 + 3, 2)]
        points += [("loss", "-Infinity", T0 + 4, 2**40), ("loss", 1e-300, 2**53, 3), ("größe", -0.0, 0, 7)]
        for key, value, stamp, step in points:
            api.ok(
                "runs/log-metric",
                {"run_id": rid, "key": key, "value": value, "timestamp": stamp, "step": step},
            )
        api.ok("runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.001"})
        api.ok("runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.001"})  # the same value again
        api.ok(
            "runs/log-batch",
            {
                "run_id": rid,
                "metrics": [
                    {"key": "acc", "value": i / 10, "timestamp": T0 + i, "step": i} for i in range(5)
                ],
                "params": [
                    {"key": "note", "value": '日本語 ✓ "quoted" \\ back'},
                    {"key": "empty", "value": ""},
                ],
                "tags": [{"key": "team", "value": "ünïcode"}, {"key": "multi line", "value": "a\nb\tc"}],
            },
        )
        api.ok("runs/set-tag", {"run_id": rid, "key": "team", "value": "vision"})

        got = api.ok("runs/get", {"run_id": rid}, "GET")["run"]
        assert got["info"] == {**run["info"], "user_id": "admin"}
        data = got["data"]
        assert {p["key"]: p["value"] for p in data["params"]} == {
            "lr": "0.001",
            "note": '日本語 ✓ "quoted" \\ back',
            "empty": "",
        }
        assert tags_of(data) == {
            "mlflow.runName": "première",
            "mlflow.user": "laptop-user",
            "mlflow.source.name": "train.py",
            "team": "vision",
            "multi line": "a\nb\tc",
        }
        latest = {m["key"]: m["value"] for m in data["metrics"]}
        assert latest == {"loss": "-Infinity", "acc": 0.4, "größe": -0.0}

        history = api.ok("metrics/get-history", {"run_id": rid, "metric_key": "loss"}, "GET")["metrics"]
        assert [(m["step"], m["timestamp"], m["value"]) for m in history] == [
            (0, T0 + 1, 0.5),
            (1, T0 + 2, "NaN"),
            (2, T0 + 3, "Infinity"),
            (2**40, T0 + 4, "-Infinity"),
            (3, 2**53, 1e-300),
        ]  # by timestamp, as MLflow orders a history
        stored = team_server.store().get_run(rid)
        assert stored.start_ms == T0 and stored.user == "admin" and stored.name == "première"
        assert (
            stored.params["note"] == '日本語 ✓ "quoted" \\ back'
            and stored.tags["mlflow.user"] == "laptop-user"
        )
        loss = team_server.store().metric_history(rid, "loss")
        assert (
            math.isnan(loss["value"][1])
            and loss["value"][2] == math.inf
            and loss["step"].tolist()[-1] == 2**40
        )


def test_runs_end_resume_and_rename_by_name_or_tag(server: ThreadServer) -> None:
    with server.client() as http:
        api = Mlflow(http)
        rid = api.run(api.experiment("ends"), run_name="one")["info"]["run_id"]
        assert api.ok("runs/update", {"run_id": rid, "status": "RUNNING"})["run_info"]["status"] == "RUNNING"
        assert api.ok("runs/update", {"run_id": rid, "run_name": "two"})["run_info"]["run_name"] == "two"
        assert server.store().get_run(rid).tags["mlflow.runName"] == "two"
        api.ok("runs/set-tag", {"run_id": rid, "key": "mlflow.runName", "value": "three"})
        assert server.store().get_run(rid).name == "three"
        api.ok("runs/log-batch", {"run_id": rid, "tags": [{"key": "mlflow.runName", "value": "one"}]})
        assert server.store().get_run(rid).name == "one"
        status, code, _ = api.refused("runs/update", {"run_id": rid, "run_name": "bad\x00name"})
        assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
        info = api.ok("runs/update", {"run_id": rid, "status": "FINISHED", "end_time": T0})["run_info"]
        assert (info["status"], info["end_time"]) == ("FINISHED", T0)
        assert (
            api.ok("runs/update", {"run_id": rid, "status": 3, "end_time": T0 + 1})["run_info"]["end_time"]
            == T0
        )
        status, code, message = api.refused(
            "runs/log-parameter", {"run_id": rid, "key": "late", "value": "1"}
        )
        assert (status, code) == (400, "INVALID_PARAMETER_VALUE") and "has ended" in message
        stored = server.store().get_run(rid)
        assert (stored.status, stored.end_ms) == (RunStatus.FINISHED, T0)
        # start_run(run_id=...) resumes an ended run; it then logs and ends again
        assert api.ok("runs/update", {"run_id": rid, "status": "RUNNING"})["run_info"]["status"] == "RUNNING"
        assert "end_time" not in api.ok("runs/get", {"run_id": rid}, "GET")["run"]["info"]
        api.ok("runs/log-parameter", {"run_id": rid, "key": "late", "value": "1"})
        api.ok("runs/update", {"run_id": rid, "status": "FINISHED", "end_time": T0 + 5})
        # another status for an ended run moves it, as on MLflow's server
        info = api.ok("runs/update", {"run_id": rid, "status": "KILLED", "end_time": T0 + 6})["run_info"]
        assert (info["status"], info["end_time"]) == ("KILLED", T0 + 6)
        actions = [e.action for e in server.store().audit_events(entity_id=rid)]
        assert actions.count("run.reopen") == 2 and actions.count("run.end") == 3
        for path in ("runs/delete", "runs/restore"):
            assert api.refused(path, {"run_id": rid})[:2] == (400, "INVALID_PARAMETER_VALUE")
        assert api.refused("runs/get", {"run_id": "nope"}, "GET")[:2] == (404, "RESOURCE_DOES_NOT_EXIST")
        assert (
            api.refused("runs/log-metric", {"run_id": "nope", "key": "m", "value": 1, "timestamp": 1})[0]
            == 404
        )
        stored = server.store().get_run(rid)
        assert (stored.status, stored.end_ms, stored.params["late"]) == (RunStatus.KILLED, T0 + 6, "1")


def test_refusals_follow_mlflows_rules(server: ThreadServer) -> None:
    with server.client() as http:
        api = Mlflow(http)
        rid = api.run(api.experiment("rules"))["info"]["run_id"]
        api.ok("runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.1"})
        bad = [
            ("runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.2"}),
            ("runs/log-parameter", {"run_id": rid, "key": "a//b", "value": "1"}),
            ("runs/log-parameter", {"run_id": rid, "key": "what?", "value": "1"}),
            ("runs/log-parameter", {"run_id": rid, "key": "long", "value": "x" * 6001}),
            ("runs/set-tag", {"run_id": rid, "key": "t", "value": "x" * 8001}),
            ("runs/log-metric", {"run_id": rid, "key": "m", "value": "high", "timestamp": 1}),
            ("runs/log-metric", {"run_id": rid, "key": "m", "value": True, "timestamp": 1}),
            ("runs/log-metric", {"run_id": rid, "key": "m", "value": 1}),
            ("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": -1}),
            ("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": 1, "step": 2**63}),
            ("runs/log-batch", {"run_id": rid, "metrics": [{"key": "m", "value": 1, "timestamp": 1}] * 1001}),
            (
                "runs/log-batch",
                {"run_id": rid, "params": [{"key": f"p{i}", "value": "1"} for i in range(101)]},
            ),
            ("runs/log-batch", {"run_id": rid, "tags": [{"key": f"t{i}", "value": "1"} for i in range(101)]}),
            (
                "runs/log-batch",
                {"run_id": rid, "params": [{"key": "d", "value": "1"}, {"key": "d", "value": "1"}]},
            ),
            (
                "runs/create",
                {"experiment_id": "0", "run_name": "a", "tags": [{"key": "mlflow.runName", "value": "b"}]},
            ),
            ("runs/search", {"experiment_ids": ["0"], "max_results": 50001}),
        ]
        for path, body in bad:
            assert api.refused(path, body)[:2] == (400, "INVALID_PARAMETER_VALUE"), (path, body)
        answer = http.post(f"{API}/runs/log-batch", content=b"{not json")
        assert answer.status_code == 400 and answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        # a batch the store refuses part of leaves nothing behind: it is one transaction
        half_bad = {
            "run_id": rid,
            "metrics": [{"key": "atomic", "value": 1, "timestamp": 1}],
            "params": [{"key": "fresh", "value": "1"}],
            "tags": [{"key": "t", "value": "nul \x00"}],
        }
        assert api.refused("runs/log-batch", half_bad)[:2] == (400, "INVALID_PARAMETER_VALUE")
        assert len(server.store().metric_history(rid, "atomic")) == 0
        assert server.store().get_run(rid).params == {"lr": "0.1"}
        api.ok(
            "runs/log-batch", {"run_id": rid, "metrics": [{"key": "m", "value": 1, "timestamp": 1}] * 1000}
        )
        assert len(server.store().metric_history(rid, "m")) == 1  # repeats of one point are one point


def test_tags_are_deleted_and_nested_runs_are_lineage(server: ThreadServer) -> None:
    with server.client() as http:
        api = Mlflow(http)
        exp = api.experiment("family")
        parent = api.run(exp, run_name="parent")["info"]["run_id"]
        child = api.run(exp, tags=[{"key": "mlflow.parentRunId", "value": parent}])["info"]["run_id"]
        other = api.run(exp)["info"]["run_id"]
        api.ok("runs/log-batch", {"run_id": other, "tags": [{"key": "mlflow.parentRunId", "value": parent}]})
        api.ok("runs/set-tag", {"run_id": child, "key": "gone", "value": "soon"})
        api.ok("runs/delete-tag", {"run_id": child, "key": "gone"})
        assert api.refused("runs/delete-tag", {"run_id": child, "key": "gone"})[:2] == (
            404,
            "RESOURCE_DOES_NOT_EXIST",
        )
        tags = tags_of(api.ok("runs/get", {"run_id": child}, "GET")["run"]["data"])
        assert tags["mlflow.parentRunId"] == parent and "gone" not in tags
        edges = server.store().edges(src=("run", parent))
        assert {(e.relation, e.dst_id) for e in edges} == {("parent_of", child), ("parent_of", other)}


def test_datasets_and_models_a_run_used_and_made_are_lineage(server: ThreadServer) -> None:
    schema = json.dumps({"mlflow_colspec": [{"type": "double", "name": "x", "required": True}]})
    dataset = {
        "name": "iris",
        "digest": "8a3f9c21",
        "source_type": "http",
        "source": json.dumps({"url": "https://example.com/iris.csv"}),
        "schema": schema,
        "profile": json.dumps({"num_rows": 150, "num_elements": 600}),
    }
    dataset_input = {"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": dataset}
    model_id = "m-" + "a" * 32
    with server.client() as http:
        api = Mlflow(http)
        rid = api.run(api.experiment("inputs"))["info"]["run_id"]
        api.ok(
            "runs/log-inputs",
            {"run_id": rid, "datasets": [dataset_input], "models": [{"model_id": "m-" + "b" * 32}]},
        )
        api.ok("runs/outputs", {"run_id": rid, "models": [{"model_id": model_id, "step": 7}]})
        got = api.ok("runs/get", {"run_id": rid}, "GET")["run"]
        assert got["inputs"]["dataset_inputs"] == [dataset_input]
        assert got["inputs"]["model_inputs"] == [{"model_id": "m-" + "b" * 32}]
        assert got["outputs"] == {"model_outputs": [{"model_id": model_id, "step": 7}]}
        assert api.refused("runs/outputs", {"run_id": rid})[1] == "INVALID_PARAMETER_VALUE"
        assert api.refused("runs/log-inputs", {"run_id": "nope", "datasets": [dataset_input]})[0] == 404
    store = server.store()
    version = store.get_dataset_version("iris")
    assert (version.digest, version.size, version.rows) == ("8a3f9c21", 0, 150)
    assert version.schema == [{"name": "x", "dtype": "double"}] and version.profile["bytes_held"] is False
    [edge] = store.edges(src=("dataset_version", version.id))
    assert (edge.relation, edge.dst_id, edge.attributes["role"]) == ("consumed_by", rid, "training")
    [made] = store.edges(src=("run", rid))
    assert (made.relation, made.dst_type, made.dst_id) == ("produced", "logged_model", model_id)


def test_a_logged_models_metadata_joins_the_runs_history_tag(server: ThreadServer) -> None:
    with server.client() as http:
        api = Mlflow(http)
        rid = api.run(api.experiment("log-model"))["info"]["run_id"]
        for path in ("model", "other"):
            model = {
                "artifact_path": path,
                "flavors": {"sklearn": {}},
                "utc_time_created": "2024-01-01",
                "run_id": rid,
            }
            api.ok("runs/log-model", {"run_id": rid, "model_json": json.dumps(model)})
        assert (
            api.refused("runs/log-model", {"run_id": rid, "model_json": "{}"})[1] == "INVALID_PARAMETER_VALUE"
        )
    history = json.loads(server.store().get_run(rid).tags["mlflow.log-model.history"])
    assert [m["artifact_path"] for m in history] == ["model", "other"]


def test_metric_history_comes_in_pages_when_asked(server: ThreadServer) -> None:
    with server.client() as http:
        api = Mlflow(http)
        rid = api.run(api.experiment("pages"))["info"]["run_id"]
        metrics = [{"key": "m", "value": float(i), "timestamp": T0 + i, "step": i} for i in range(25)]
        api.ok("runs/log-batch", {"run_id": rid, "metrics": metrics})
        seen: list[int] = []
        token: str | None = None
        while True:
            body: dict[str, Any] = {"run_id": rid, "metric_key": "m", "max_results": 10}
            if token:
                body["page_token"] = token
            page = api.ok("metrics/get-history", body, "GET")
            seen += [m["step"] for m in page["metrics"]]
            token = page.get("next_page_token")
            if not token:
                break
        assert seen == list(range(25))
        assert api.ok("metrics/get-history", {"run_id": rid, "metric_key": "absent"}, "GET") == {
            "metrics": []
        }
        assert (
            api.refused(
                "metrics/get-history", {"run_id": rid, "metric_key": "m", "page_token": "junk"}, "GET"
            )[0]
            == 400
        )


# search -----------------------------------------------------------------------------------------
RUNS = [
    # name, start offset (ms), params, metrics, tags, status
    (
        "a",
        0,
        {"lr": "0.1", "opt": "adam"},
        {"acc": 0.9, "loss": 0.3},
        {"team": "vision", "x": "1"},
        "FINISHED",
    ),
    ("b", 1000, {"lr": "0.01", "opt": "sgd"}, {"acc": 0.8, "loss": "NaN"}, {"team": "nlp"}, "FAILED"),
    ("c", 2000, {"lr": "1e-3", "opt": "Adam"}, {"acc": 0.95}, {"team": "Vision"}, "FINISHED"),
    ("d", 3000, {"lr": "0.1"}, {"loss": 0.1, "acc": "Infinity"}, {}, "KILLED"),
    ("e ü", 4000, {"opt": "adam_w"}, {"acc": -1.0}, {"team": "vision", "x": "2"}, "RUNNING"),
    ("f", 5000, {}, {}, {"team": "ops"}, "FINISHED"),
]

FILTERS = [
    ("", ["f", "e ü", "d", "c", "b", "a"]),
    ("metrics.acc > 0.85", ["d", "c", "a"]),
    ("metrics.acc >= 0.8 and params.lr = '0.1'", ["d", "a"]),
    ("metrics.loss < 1", ["d", "a"]),
    ("metric.acc = -1", ["e ü"]),
    ("metrics.`acc` > 1e308", ["d"]),
    ("params.opt LIKE 'adam%'", ["e ü", "a"]),
    ("params.opt ILIKE 'adam%'", ["e ü", "c", "a"]),
    ("parameters.opt != 'adam'", ["e ü", "c", "b"]),
    ('params."opt" = "sgd"', ["b"]),
    ("tags.team = 'vision'", ["e ü", "a"]),
    ("tags.team ILIKE 'VISION'", ["e ü", "c", "a"]),
    ("tags.x IS NULL", ["f", "d", "c", "b"]),
    ("tags.x IS NOT NULL", ["e ü", "a"]),
    ("params.lr IS NULL", ["f", "e ü"]),
    ("attributes.status = 'FAILED'", ["b"]),
    ("status != 'FINISHED'", ["e ü", "d", "b"]),
    ("attribute.status = 'RUNNING'", ["e ü"]),
    ("status = 'SCHEDULED'", []),
    ("attributes.run_name = 'a'", ["a"]),
    ("run_name LIKE '%ü'", ["e ü"]),
    ("tags.mlflow.runName = 'b'", ["b"]),
    ("attributes.start_time > 1700000002500", ["f", "e ü", "d"]),
    ("created >= 1700000004000", ["f", "e ü"]),
    ("end_time > 1700000010002", ["f", "d"]),
    ("attributes.user_id = 'admin' and tags.team = 'ops'", ["f"]),
    ("datasets.name = 'train-set'", ["a"]),
    ("datasets.context = 'training' and metrics.acc > 0", ["a"]),
    ("datasets.digest IN ('nothing')", []),
]

ORDERS = [
    (["metrics.acc DESC"], ["d", "c", "a", "b", "e ü", "f"]),
    (["metrics.acc"], ["e ü", "b", "a", "c", "d", "f"]),
    (["attributes.run_name DESC"], ["f", "e ü", "d", "c", "b", "a"]),
    (["start_time ASC"], ["a", "b", "c", "d", "e ü", "f"]),
    (["tags.x ASC", "metrics.acc DESC"], ["a", "e ü", "d", "c", "b", "f"]),
    (["tags.mlflow.runName DESC"], ["f", "e ü", "d", "c", "b", "a"]),
]


def _fill(api: Mlflow) -> tuple[str, dict[str, str]]:
    exp = api.experiment("search")
    names: dict[str, str] = {}
    for i, (name, offset, params, metrics, tags, status) in enumerate(RUNS):
        rid = api.run(exp, run_name=name, start_time=T0 + offset)["info"]["run_id"]
        names[rid] = name
        api.ok(
            "runs/log-batch",
            {
                "run_id": rid,
                "metrics": [{"key": k, "value": v, "timestamp": T0, "step": 0} for k, v in metrics.items()],
                "params": [{"key": k, "value": v} for k, v in params.items()],
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
        )
        if status != "RUNNING":
            api.ok("runs/update", {"run_id": rid, "status": status, "end_time": T0 + 10_000 + i})
    first = next(rid for rid, name in names.items() if name == "a")
    dataset = {
        "name": "train-set",
        "digest": "d1",
        "source_type": "code",
        "source": "{}",
        "schema": "",
        "profile": "",
    }
    context = [{"key": "mlflow.data.context", "value": "training"}]
    api.ok("runs/log-inputs", {"run_id": first, "datasets": [{"tags": context, "dataset": dataset}]})
    return exp, names


def test_search_runs_reads_mlflows_filters_and_order(team_server: ThreadServer) -> None:
    with team_server.client() as http:
        api = Mlflow(http)
        exp, names = _fill(api)

        def search(**body: Any) -> list[str]:
            runs = api.ok("runs/search", {"experiment_ids": [exp], **body}).get("runs", [])
            return [names[r["info"]["run_id"]] for r in runs]

        for text, expected in FILTERS:
            assert search(filter=text) == expected, text
        for order, expected in ORDERS:
            assert search(order_by=order) == expected, order
        pages, token = [], None
        while True:
            body: dict[str, Any] = {"experiment_ids": [exp], "max_results": 4}
            if token:
                body["page_token"] = token
            page = api.ok("runs/search", body)
            pages.append([names[r["info"]["run_id"]] for r in page["runs"]])
            token = page.get("next_page_token")
            if not token:
                break
        assert pages == [["f", "e ü", "d", "c"], ["b", "a"]]
        assert search(experiment_ids=[exp, "no-such-experiment"], filter="tags.team = 'ops'") == ["f"]
        assert api.ok("runs/search", {"experiment_ids": ["no-such-experiment"]}) == {"runs": []}
        assert search(run_view_type="DELETED_ONLY") == []
        one = api.ok("runs/search", {"experiment_ids": [exp], "filter": "run_name = 'a'"})["runs"][0]
        assert {p["key"]: p["value"] for p in one["data"]["params"]} == {"lr": "0.1", "opt": "adam"}
        assert {m["key"]: m["value"] for m in one["data"]["metrics"]} == {"acc": 0.9, "loss": 0.3}


BAD_FILTERS = [
    "metrics.acc > 'x'",
    "params.lr > 1",
    "foo.bar = 'x'",
    "metrics.acc > 0.5 or metrics.acc < 0.1",
    "attributes.run_name IN ('a')",
    "attributes.artifact_uri = 'x'",
    "attributes.nope = 'x'",
    "metrics.acc >",
    "params.opt = 'open",
    "tags.t IS NULL and",
]


def test_search_runs_refuses_what_mlflow_refuses(server: ThreadServer) -> None:
    with server.client() as http:
        api = Mlflow(http)
        for text in BAD_FILTERS:
            status, code, message = api.refused("runs/search", {"experiment_ids": ["0"], "filter": text})
            assert (status, code) == (400, "INVALID_PARAMETER_VALUE") and message, text
        for order in (["metrics.a", "metric.a DESC"], ["status"], ["metrics.a sideways"]):
            assert api.refused("runs/search", {"experiment_ids": ["0"], "order_by": order})[0] == 400, order


def test_rights_apply_and_errors_answer_in_mlflows_shape(server: ThreadServer) -> None:
    viewer = server.issue("reader", "viewer")
    with server.client("") as anonymous:
        answer = anonymous.post(f"{API}/runs/create", json={"experiment_id": "0"})
        assert (answer.status_code, answer.json()["error_code"]) == (401, "UNAUTHENTICATED")
        answer = anonymous.post(f"{API}/runs/log-batch", content=b"{not json")
        assert answer.status_code == 401
    with server.client(viewer) as http:
        api = Mlflow(http)
        assert api.refused("experiments/create", {"name": "x"})[:2] == (403, "PERMISSION_DENIED")
        assert api.ok("runs/search", {"experiment_ids": ["0"]}) == {"runs": []}
        assert api.refused("runs/delete", {"run_id": "x"})[:2] == (403, "PERMISSION_DENIED")


def test_what_a_token_logs_lives_in_its_workspace_and_audit_trail(server: ThreadServer) -> None:
    token = server.issue("ci-bot", "editor", workspace="team-b")
    with server.client(token) as http:
        api = Mlflow(http)
        rid = api.run(api.experiment("b-only"))["info"]["run_id"]
        api.ok("runs/log-batch", {"run_id": rid, "params": [{"key": "lr", "value": "0.1"}]})
        assert api.ok("runs/get", {"run_id": rid}, "GET")["run"]["info"]["user_id"] == "ci-bot"
    team_b = server.store("team-b")
    assert team_b.get_run(rid).user == "ci-bot"
    assert {e.action for e in team_b.audit_events(entity_id=rid)} >= {"run.create", "run.params.log"}
    assert all(e.actor.startswith("ci-bot") for e in team_b.audit_events(entity_id=rid))
    with server.client() as http:  # the admin, in the default workspace
        assert Mlflow(http).refused("runs/get", {"run_id": rid}, "GET")[0] == 404


# the real client --------------------------------------------------------------------------------
CLIENT_SCRIPT = r"""
import json, math, sys, time
import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

def finite(v):
    return v if math.isfinite(v) else repr(v)

out = {}
mlflow.set_experiment("client ✓")
with mlflow.start_run(run_name="parent") as parent:
    mlflow.log_param("lr", 0.01)
    mlflow.log_params({"depth": 3, "name": "ünïcode"})
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"acc": 0.9, "nan": float("nan"), "inf": float("inf")}, step=7)
    mlflow.set_tag("team", "vision")
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    mlflow.log_input(mlflow.data.from_pandas(frame, name="frame"), context="training")
    with mlflow.start_run(run_name="child", nested=True) as child:
        mlflow.log_metric("loss", 0.5)
        stamp = int(time.time() * 1000)
        MlflowClient().log_batch(
            child.info.run_id,
            metrics=[Metric("b", i * 0.5, stamp + i, i) for i in range(10)],
            params=[Param("p", "v")],
            tags=[RunTag("k", "v")],
        )
client = MlflowClient()
exp = mlflow.get_experiment_by_name("client ✓")
out["parent"], out["child"], out["experiment"] = parent.info.run_id, child.info.run_id, exp.experiment_id
runs = client.search_runs([exp.experiment_id], "metrics.loss < 0.6", order_by=["metrics.loss ASC"])
out["search"] = [r.info.run_name for r in runs]
frame = mlflow.search_runs([exp.experiment_id], filter_string="params.lr = '0.01' and tags.team = 'vision'")
out["frame"] = list(frame["run_id"])
history = client.get_metric_history(parent.info.run_id, "loss")
out["history"] = [[m.step, m.timestamp, m.value] for m in history]
got = client.get_run(parent.info.run_id)
out["run"] = {
    "status": got.info.status,
    "params": got.data.params,
    "tags": got.data.tags,
    "metrics": {k: finite(v) for k, v in got.data.metrics.items()},
    "datasets": [[d.dataset.name, d.dataset.digest, d.tags[0].value] for d in got.inputs.dataset_inputs],
}
out["experiments"] = [e.name for e in mlflow.search_experiments(filter_string="name LIKE 'client%'")]
json.dump(out, open(sys.argv[1], "w"))
"""


def run_client(server: ThreadServer, tmp_path: Path, script: str) -> dict[str, Any]:
    """Run `script` with MLflow's client against `server`; the JSON it writes to its first argument."""
    if not MLFLOW_PYTHON.exists():
        pytest.fail(f"{MLFLOW_PYTHON} is missing: run `bash scripts/test-services.sh` to make .venv-mlflow.")
    (tmp_path / "client.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLINTH_", "MLFLOW_", "VIRTUAL_ENV"))}
    env.update(
        MLFLOW_TRACKING_URI=server.url,
        MLFLOW_TRACKING_TOKEN=server.admin_token,
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        GIT_PYTHON_REFRESH="quiet",
        PYTHONWARNINGS="ignore",
        HOME=str(tmp_path),
    )
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [str(MLFLOW_PYTHON), str(tmp_path / "client.py"), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0 and out.exists(), proc.stderr[-6000:]
    found: dict[str, Any] = json.loads(out.read_text())
    return found


@pytest.mark.slow
def test_the_mlflow_client_logs_into_plinth(server: ThreadServer, tmp_path: Path) -> None:
    out = run_client(server, tmp_path, CLIENT_SCRIPT)
    assert out["search"] == ["parent", "child"]
    assert out["frame"] == [out["parent"]]
    assert [(s, v) for s, _t, v in out["history"]] == [(i, 1.0 / (i + 1)) for i in range(5)]
    assert out["run"]["status"] == "FINISHED"
    assert out["run"]["params"] == {"lr": "0.01", "depth": "3", "name": "ünïcode"}
    assert out["run"]["metrics"] == {"loss": 0.2, "acc": 0.9, "nan": "nan", "inf": "inf"}
    assert out["run"]["tags"]["team"] == "vision" and out["run"]["tags"]["mlflow.runName"] == "parent"
    assert out["run"]["datasets"][0][0] == "frame" and out["run"]["datasets"][0][2] == "training"
    assert out["experiments"] == ["client ✓"]

    store = server.store()
    parent, child = store.get_run(out["parent"]), store.get_run(out["child"])
    assert (parent.name, parent.status, parent.user, parent.experiment_name) == (
        "parent",
        RunStatus.FINISHED,
        "admin",
        "client ✓",
    )
    assert parent.params == {"lr": "0.01", "depth": "3", "name": "ünïcode"}
    assert parent.tags["mlflow.user"] and parent.tags["team"] == "vision"
    history = store.metric_history(out["parent"], "loss")
    assert [[int(s), int(t), float(v)] for s, t, v in history.tolist()] == out["history"]
    assert (
        child.params == {"p": "v"}
        and child.tags["k"] == "v"
        and child.tags["mlflow.parentRunId"] == parent.id
    )
    assert [(e.relation, e.dst_id) for e in store.edges(src=("run", parent.id))] == [("parent_of", child.id)]
    b = store.metric_history(out["child"], "b")
    assert b["step"].tolist() == list(range(10)) and b["value"].tolist() == [i * 0.5 for i in range(10)]
    assert store.get_dataset_version("frame").profile["bytes_held"] is False
