"""Tokens, roles and workspaces through MLflow's client (MLFLOW_TRACKING_TOKEN carries a plinth token).

A run made with plinth's own API is read by a viewer's MLflow client, which is refused every
write with PERMISSION_DENIED; no token is UNAUTHENTICATED; an editor whose token's home is
workspace W creates MLflow experiments that live in W and nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow_clients import in_workspace, run_script

import plinth
from plinth.core.errors import NotFound
from plinth.core.settings import Settings
from plinth.tracking import context
from plinth.tracking.context import Backend
from team_servers import ThreadServer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mlflow_compat_access")]

WORKSPACE = "research"


@pytest.fixture(scope="module")
def answers(
    plinth_server: ThreadServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], str, str]:
    """(what scripts/access.py saw, the plinth-made run's id, the default workspace's experiment id)."""
    folder = tmp_path_factory.mktemp("access")
    plinth.configure(
        Settings(home=str(folder / "maker"), store_url=plinth_server.url, token=plinth_server.admin_token)
    )
    try:
        with plinth.start_run(experiment="made-by-plinth", name="plinth-run", params={"lr": 0.1}) as run:
            for step in range(3):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
        shared = context.backend().store.get_or_create_experiment("shared-name")
    finally:
        context.reset()
    args = {
        "viewer": plinth_server.issue("mlflow-viewer", "viewer"),
        "workspace_editor": plinth_server.issue("mlflow-researcher", "editor", workspace=WORKSPACE),
        "run_id": run.id,
        "experiment": "made-by-plinth",
        "workspace_experiments": ["research-only", "shared-name"],
    }
    return (
        run_script("access", plinth_server.url, plinth_server.admin_token, folder / "client", args),
        run.id,
        shared.id,
    )


def test_a_viewer_reads_plinth_runs_and_cannot_write(answers: tuple[dict[str, Any], str, str]) -> None:
    seen, run_id, _ = answers
    viewer = seen["viewer"]
    assert viewer["run"]["name"] == "plinth-run"
    assert viewer["run"]["status"] == "FINISHED"
    assert viewer["run"]["params"] == {"lr": "0.1"}
    assert viewer["run"]["metrics"] == {"loss": pytest.approx(1 / 3)}
    assert viewer["history"] == [[0, 1.0], [1, 0.5], [2, pytest.approx(1 / 3)]]
    assert viewer["found"] == [run_id]
    assert viewer["experiment_id"] == viewer["run"]["experiment_id"]
    for write in ["create_experiment", "create_run", "log_metric", "log_param", "set_tag", "register"]:
        assert viewer[write]["error_code"] == "PERMISSION_DENIED", write


def test_no_token_or_a_wrong_one_is_refused(answers: tuple[dict[str, Any], str, str]) -> None:
    refused = answers[0]["refused"]
    assert refused["anonymous"]["error_code"] == "UNAUTHENTICATED"
    assert refused["wrong_token"]["error_code"] == "UNAUTHENTICATED"


def test_experiments_live_in_the_tokens_workspace(
    answers: tuple[dict[str, Any], str, str], plinth_server: ThreadServer, plinth_api: Backend, tmp_path: Path
) -> None:
    seen, _run_id, default_shared = answers
    workspace = seen["workspace"]
    assert workspace["sees_default_run"]["error_code"] in ("RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED")
    assert {"research-only", "shared-name"} <= set(workspace["experiments"])
    assert "made-by-plinth" not in workspace["experiments"]
    assert workspace["shared-name"]["experiment_id"] != default_shared
    research = in_workspace(plinth_server, WORKSPACE, tmp_path / "research")
    try:
        for name in ["research-only", "shared-name"]:
            experiment = research.store.get_experiment(name)
            assert experiment.id == workspace[name]["experiment_id"]
            run = research.store.get_run(workspace[name]["run_id"])
            assert (run.experiment_id, run.params) == (experiment.id, {"where": "workspace"})
            assert run.user == "mlflow-researcher"
    finally:
        research.close()
    with pytest.raises(NotFound):
        plinth_api.store.get_experiment("research-only")
    assert plinth.search_runs(experiment="shared-name").ids == []
