"""Every capability through a team server: the library, unchanged, with PLINTH_STORE=http://…

One test per capability drives the public API over a real server (SQLite, then PostgreSQL),
each with the token of the role a user would have, and checks what a role may not see stays in
the server: a viewer gets drift and lineage, never raw logs or subject ids.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.core.errors import Forbidden
from plinth.core.settings import Settings
from plinth.governance import api as governance
from plinth.tracking import context
from plinth.tracking.gc import collect_garbage

sys.path.insert(0, str(Path(__file__).parent.parent / "resources"))
import flows_example as ex

Use = Callable[..., Settings]


@pytest.fixture
def use(team_server: Any, tmp_path: Path) -> Iterator[Use]:
    """`use(role)`: configure plinth as a client of the team server with a token of `role`."""

    def configure(role: str = "editor", name: str | None = None, **extra: Any) -> Settings:
        token = team_server.issue(name or f"{role}-bot", role)
        settings = Settings(
            home=str(tmp_path / f"client-{role}"),
            store_url=team_server.url,
            token=token,
            heartbeat_s=0.5,
            flush_s=0.1,
            user="mallory",  # never what the server records
            **extra,
        )
        plinth.configure(settings)
        return settings

    yield configure
    context.reset()


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def test_tracking_through_the_server(use: Use, tmp_path: Path) -> None:
    use("editor")
    (tmp_path / "notes.txt").write_text("lr sweep")
    with plinth.start_run(experiment="iris", params={"lr": 0.1}, tags={"team": "vision"}) as run:
        for step in range(500):
            run.log_metric("loss", 1 / (step + 1), step=step)
        run.log_metric_points("grad", np.linspace(0, 1, 1000))
        run.log_artifact(str(tmp_path / "notes.txt"))
    got = plinth.get_run(run.id)
    assert got.status.value == "FINISHED"
    assert got.user == "editor-bot"
    assert got.params == {"lr": "0.1"}
    assert got.metrics["loss"] == pytest.approx(1 / 500)
    assert len(plinth.metric_history(run.id, "loss").values) == 500
    assert len(plinth.metric_history(run.id, "grad").values) == 1000
    found = plinth.search_runs(experiment="iris", where="params.lr = 0.1 and tags.team = 'vision'")
    assert found.ids == [run.id]
    assert [a.path for a in got.artifacts] == ["notes.txt"]


def test_datasets_and_models_through_the_server(use: Use, iris: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = iris
    use("maintainer")
    with plinth.start_run(experiment="iris") as run:
        ds = run.log_dataset(X.assign(target=y), name="iris-train", role="train")
        mv = run.log_model(LogisticRegression(max_iter=300).fit(X, y), name="iris-clf", input_example=X[:5])
    assert len(plinth.load_dataset("iris-train/1")) == ds.rows == 150
    plinth.set_alias("iris-clf", "champion", version=mv.version)
    model = plinth.load_model("iris-clf@champion")
    assert list(model.predict(X[:3])) == [0, 0, 0]


def test_an_editor_may_not_move_aliases(use: Use, iris: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = iris
    use("editor")
    with plinth.start_run(experiment="iris") as run:
        mv = run.log_model(LogisticRegression(max_iter=300).fit(X, y), name="iris-clf", input_example=X[:5])
    with pytest.raises(Forbidden, match="editor"):
        plinth.set_alias("iris-clf", "champion", version=mv.version)


def _served_model(use: Use, iris: tuple[pd.DataFrame, pd.Series]) -> list[str]:
    X, y = iris
    use("admin", name="ml-admin")
    with plinth.start_run(experiment="iris") as run:
        run.log_dataset(X.assign(target=y), name="iris-train", role="train")
        clf = LogisticRegression(max_iter=300).fit(X, y)
        run.log_model(clf, name="iris-clf", input_example=X[:5])
    subjects = [f"user-{i % 7}" for i in range(len(X))]
    ids = plinth.log_predictions("iris-clf/1", X, clf.predict(X), subject_ids=subjects)
    plinth.log_labels("iris-clf", [(rid, int(label)) for rid, label in zip(ids, y, strict=True)])
    return ids


def test_monitoring_is_computed_in_the_server(use: Use, iris: tuple[pd.DataFrame, pd.Series]) -> None:
    ids = _served_model(use, iris)
    use("viewer")
    drift = plinth.drift("iris-clf")
    assert drift.requests == 150 and drift.reference == "iris-train/1"
    assert not any(f.drifted for f in drift.report.features)
    assert plinth.performance("iris-clf").overall.metrics["accuracy"] > 0.9
    assert plinth.operations("iris-clf").overall.requests == 150
    assert plinth.monitoring_report("iris-clf").performance.overall.labeled == 150
    store = context.backend().store
    with pytest.raises(Forbidden, match="viewer"):
        store.prediction_logs("iris-clf")
    with pytest.raises(Forbidden):
        store.find_prediction(ids[0])


def test_lineage_leaves_subjects_out_for_a_viewer(use: Use, iris: tuple[pd.DataFrame, pd.Series]) -> None:
    ids = _served_model(use, iris)
    subject = "user-0"
    assert subject in "\n".join(plinth.lineage(ids[0]).tree("up"))  # an admin sees it
    use("viewer")
    graph = plinth.lineage(ids[0])
    text = "\n".join(graph.tree("up"))
    assert "dataset iris-train/1" in text
    assert subject not in text
    use("auditor")
    assert subject in "\n".join(plinth.lineage(ids[0]).tree("up"))


def test_erasure_and_audit_through_the_server(use: Use, iris: tuple[pd.DataFrame, pd.Series]) -> None:
    _served_model(use, iris)
    use("viewer")
    with pytest.raises(Forbidden):
        governance.erase_subject("user-3")
    use("auditor")
    receipt = governance.erase_subject("user-3")
    assert receipt.prediction_logs == len([i for i in range(150) if i % 7 == 3])
    node = ("receipt", receipt.id)  # linked into lineage in the same request as its audit event
    assert "(subject user-3)" in plinth.lineage("iris-clf/1", "down").labels[node]
    use("viewer", name="viewer-bot-2")
    seen = plinth.lineage("iris-clf/1", "down")
    assert (("predictions", "iris-clf/1"), "erased by", node) in seen.edges
    assert "removed" in seen.labels[node] and "user-3" not in seen.labels[node]
    use("auditor", name="auditor-bot-2")
    assert governance.verify_audit().ok
    actors = {e.actor for e in context.backend().store.audit_events()}
    assert "ml-admin (token ml-admin)" in actors
    assert "auditor-bot (token auditor-bot)" in actors
    assert not any("mallory" in a for a in actors)


def test_flows_run_through_the_server(use: Use, team_server: Any) -> None:
    settings = use("editor")
    result = ex.pipeline.run(lr=0.2)
    assert result.status is plinth.RunStatus.FINISHED
    assert result.result == {"lr": 0.2, "score": pytest.approx(0.6)}
    steps = {s.call: s for s in result.steps}
    assert plinth.get_run(steps["train#3"].id).metrics["loss"] == 0.4
    assert plinth.get_run(result.id).user == "editor-bot"
    assert context.backend().blobs.read_bytes(steps["pick_best#0"].result_digest or "")
    # the steps wrote with a step token of their own, revoked once the flow ended
    with team_server.client() as admin:
        events = admin.post("/api/v1/audit/events/search", json={"entity_id": steps["train#3"].id}).json()
        tokens = admin.get("/api/v1/tokens", params={"principal": "editor-bot"}).json()
    assert {e["actor"] for e in events} >= {f"editor-bot (token step-{result.id})"}
    step_token = next(t for t in tokens if t["name"] == f"step-{result.id}")
    assert step_token["purpose"] == "step" and step_token["revoked_ms"] is not None
    assert settings.token not in str(plinth.get_run(steps["train#3"].id).tags)


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_flows_run_on_ray_through_the_server(use: Use, team_server: Any) -> None:
    """Steps on a Ray cluster reach the server with their step token (none in their payload)."""
    import ray_flows

    from ray_cluster import shared_cluster

    shared_cluster()
    settings = use("editor")
    result = ray_flows.fan_out.run(n=6)
    assert result.status is plinth.RunStatus.FINISHED and result.result == sum(i * i for i in range(6))
    steps = {s.call: s for s in result.steps}
    assert plinth.get_run(steps["square#5"].id).metrics["square"] == 25
    with team_server.client() as admin:
        events = admin.post("/api/v1/audit/events/search", json={"entity_id": steps["square#5"].id}).json()
    assert f"editor-bot (token step-{result.id})" in {e["actor"] for e in events}
    assert settings.token not in str(plinth.get_run(steps["square#5"].id).tags)


def test_garbage_collection_through_the_server_keeps_other_workspaces_blobs(
    team_server: Any, tmp_path: Path
) -> None:
    token = team_server.issue("vision-bot", "editor", workspace="vision")
    plinth.configure(Settings(home=str(tmp_path / "vision"), store_url=team_server.url, token=token))
    (tmp_path / "weights.bin").write_bytes(b"only vision refers to this")
    with plinth.start_run(experiment="v") as run:
        run.log_artifact(str(tmp_path / "weights.bin"))
    [artifact] = plinth.get_run(run.id).artifacts
    with team_server.client() as admin:  # the superuser, in `default`
        referenced = admin.get("/api/v1/blobs/referenced").json()
    assert artifact.digest in referenced
    admin_settings = Settings(
        home=str(tmp_path / "admin"), store_url=team_server.url, token=team_server.admin_token
    )
    report = collect_garbage(plinth.configure(admin_settings), min_age_s=0)
    assert artifact.digest not in report.removed
    assert context.backend().blobs.exists(artifact.digest)
