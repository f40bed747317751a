"""Search parity: the same runs written to MLflow's own server and to plinth, then the same filter
strings and order_by's (MLflow's documented search syntax) must find the same runs in the same
order, compared by run name."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow_clients import MlflowServer, run_script

from team_servers import ThreadServer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mlflow_compat_search_parity")]

T0 = 1_700_000_000_000

RUN_QUERIES: list[tuple[str, list[str]]] = [
    ("metrics.acc > 0.5", []),
    ("metrics.acc >= 0.25 and metrics.loss < 0.2", []),
    ("metrics.loss != 0.5", []),
    ("metrics.loss = 0.25", []),
    ("params.lr = '0.01'", []),
    ("params.optimizer != 'sgd'", []),
    ("params.optimizer LIKE 'adam%'", []),
    ("params.optimizer ILIKE 'ADAM%'", []),
    ("params.note IS NULL", []),
    ("params.note IS NOT NULL", []),
    ("tags.team = 'vision'", []),
    ("tags.team LIKE '%s%'", []),
    ("tags.team IS NULL", []),
    ("tags.`group.name` = 'b'", []),
    ("attributes.status = 'FINISHED'", []),
    ("attributes.status != 'RUNNING'", []),
    ("attributes.run_name LIKE 'run-1%'", []),
    ("attributes.run_name = 'run-07'", []),
    ("attributes.run_id IN ('{id:run-03}', '{id:run-05}')", []),
    (f"attributes.start_time >= {T0 + 12_000}", []),
    (f"attributes.end_time < {T0 + 10_000}", []),
    ("datasets.name = 'iris'", []),
    ("datasets.context = 'training'", []),
    ("params.lr = '0.1' and tags.`group.name` = 'b' and metrics.loss < 0.1", []),
    ("", ["metrics.acc DESC"]),
    ("", ["metrics.acc ASC"]),
    ("", ["params.lr ASC", "attributes.run_name DESC"]),
    ("", ["tags.team DESC", "metrics.loss ASC"]),
    ("", ["attributes.start_time ASC"]),
    ("", ["attributes.run_name"]),
    ("metrics.acc > 0.2", ["metrics.loss DESC"]),
]
"""(filter, order_by) pairs; the default order (start_time DESC) is unambiguous: every run has a
start time of its own."""

EXPERIMENT_QUERIES: list[tuple[str, list[str]]] = [
    ("name LIKE 'parity-exp-%'", ["name DESC"]),
    ("tags.owner = 'alice'", ["name ASC"]),
    ("name = 'parity-exp-b'", []),
    ("attribute.name ILIKE 'PARITY-EXP-%' and tags.stage = 'prod'", []),
    ("tags.owner != 'alice'", ["name"]),
]


def _search(url: str, token: str | None, folder: Path) -> Any:
    args = {
        "experiment": "parity-runs",
        "t0": T0,
        "runs": [list(q) for q in RUN_QUERIES],
        "experiments": [list(q) for q in EXPERIMENT_QUERIES],
    }
    return run_script("parity", url, token, folder, args)


@pytest.fixture(scope="module")
def answers(
    plinth_server: ThreadServer, mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The parity script's answers from MLflow's server and from plinth's."""
    return {
        "mlflow": _search(mlflow_server.url, None, tmp_path_factory.mktemp("parity-mlflow")),
        "plinth": _search(
            plinth_server.url, plinth_server.admin_token, tmp_path_factory.mktemp("parity-plinth")
        ),
    }


def _key(query: tuple[str, list[str]]) -> str:
    return f"{query[0]} | {', '.join(query[1])}"


@pytest.mark.parametrize("query", RUN_QUERIES, ids=_key)
def test_search_runs_finds_what_mlflow_finds(answers: dict[str, Any], query: tuple[str, list[str]]) -> None:
    expected = answers["mlflow"]["runs"][_key(query)]
    assert isinstance(expected, list), f"MLflow's own server refused the query: {expected}"
    assert answers["plinth"]["runs"][_key(query)] == expected


@pytest.mark.parametrize("query", EXPERIMENT_QUERIES, ids=_key)
def test_search_experiments_finds_what_mlflow_finds(
    answers: dict[str, Any], query: tuple[str, list[str]]
) -> None:
    expected = answers["mlflow"]["experiments"][_key(query)]
    assert isinstance(expected, list), f"MLflow's own server refused the query: {expected}"
    assert answers["plinth"]["experiments"][_key(query)] == expected


def test_page_tokens_walk_every_run_once_in_order(answers: dict[str, Any]) -> None:
    assert answers["mlflow"]["paged"] == [f"run-{i:02d}" for i in range(24)]
    assert answers["plinth"]["paged"] == answers["mlflow"]["paged"]


@pytest.fixture(scope="module")
def tracked(
    plinth_server: ThreadServer, mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """scripts/tracking.py's view of what it wrote, from MLflow's server and from plinth's."""
    args = {"experiment": "compat-tracking", "t0": T0}
    return {
        "mlflow": run_script(
            "tracking", mlflow_server.url, None, tmp_path_factory.mktemp("tracking-m"), args
        ),
        "plinth": run_script(
            "tracking",
            plinth_server.url,
            plinth_server.admin_token,
            tmp_path_factory.mktemp("tracking-p"),
            args,
        ),
    }


def _clamped(value: Any) -> Any:
    """MLflow's SQL store keeps an infinity as the largest finite double; plinth keeps it."""
    if value in ("inf", "-inf"):
        return math.copysign(sys.float_info.max, float(value))
    return value


def _comparable(seen: dict[str, Any]) -> dict[str, Any]:
    """What both servers must answer alike: ids, the user and the times the server chose left out;
    histories as sets of points (their order has a test of its own)."""
    names = {run_id: name for name, run_id in seen["runs"].items()}
    views = {}
    for name, view in seen["views"].items():
        tags = {k: names.get(v, v) if k == "mlflow.parentRunId" else v for k, v in view["tags"].items()}
        views[name] = {
            "run_name": view["info"]["run_name"],
            "status": view["info"]["status"],
            "lifecycle_stage": view["info"]["lifecycle_stage"],
            "params": view["params"],
            "metrics": {k: _clamped(v) for k, v in view["metrics"].items()},
            "tags": tags,
            "inputs": view["inputs"],
        }
    server_timed = {"quickstart/no_step", "crashes/before_crash"}  # logged without a timestamp
    histories = {
        key: sorted((s, t if key not in server_timed else None, _clamped(v)) for s, t, v in points)
        for key, points in seen["histories"].items()
    }
    artifacts = dict(seen["artifacts"])
    artifacts["listed"] = {path: size or 0 for path, size in artifacts["listed"].items()}
    return {
        "experiment": {k: v for k, v in seen["experiment"].items() if k != "artifact_location"},
        "views": views,
        "histories": histories,
        "artifacts": artifacts,
        "searches": seen["searches"],
        "errors": {k: v.get("error_code", v) for k, v in seen["errors"].items()},
    }


@pytest.mark.parametrize("part", ["experiment", "views", "histories", "artifacts", "searches", "errors"])
def test_the_tracking_script_reads_back_what_mlflow_gives(tracked: dict[str, Any], part: str) -> None:
    assert _comparable(tracked["plinth"])[part] == _comparable(tracked["mlflow"])[part]


def test_metric_history_comes_in_mlflows_order(tracked: dict[str, Any]) -> None:
    """MLflow answers a history ordered by timestamp, then step, then value."""
    mlflow_order = [[s, t] for s, t, _v in tracked["mlflow"]["histories"]["batch/m"]]
    assert mlflow_order[-1] == [5, T0 + 500]  # logged last, latest timestamp
    assert [[s, t] for s, t, _v in tracked["plinth"]["histories"]["batch/m"]] == mlflow_order
