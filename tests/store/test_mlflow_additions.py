"""What the store keeps for MLflow's face: experiment, run, model and version tags, runs started at
a given time, model names without versions, versions' sources and logged models — on SQLite and
PostgreSQL, each directly and through a team server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import plinth
from plinth.core.entities import LoggedModel, RunStatus
from plinth.core.errors import ConflictError, InvalidInput, NotFound
from plinth.server.views.common import PREFIX
from plinth.store.base import NewModelVersion, NewRun, SealedManifest, Store
from plinth.tracking.context import Backend


@pytest.fixture
def store(open_store):  # type: ignore[no-untyped-def]
    return open_store(actor="tester")


def now() -> int:
    return time.time_ns() // 1_000_000


def new_run(store: Store, experiment: str = "exp", start_ms: int | None = None) -> str:
    spec = NewRun(experiment, None, {}, {}, None, 60.0, "u", start_ms=start_ms)
    return store.create_runs([spec])[0].id


def register(store: Store, name: str, source: str | None = None) -> int:
    new = NewModelVersion(name, "python", lambda v: SealedManifest("d" * 64), [], None, {}, None, "", source)
    return store.create_model_version(new).version


def logged(exp_id: str, run_id: str, model_id: str, name: str = "model", created: int = 1000) -> LoggedModel:
    return LoggedModel(
        id=model_id,
        experiment_id=exp_id,
        name=name,
        run_id=run_id,
        status="PENDING",
        model_type="sklearn",
        source_run_id=None,
        created_ms=created,
        updated_ms=created,
        tags={"mlflow.source": "x"},
        params={"alpha": "0.5"},
    )


def actions(store: Store, entity_id: str) -> list[str]:
    return [e.action for e in store.audit_events(entity_id=entity_id)]


# experiments and runs --------------------------------------------------------------------------
def test_experiment_tags_merge_and_are_audited(store: Store) -> None:
    exp = store.get_or_create_experiment("iris")
    store.set_experiment_tags("iris", {"team": "a", "note": "first"})
    store.set_experiment_tags(exp.id, {"note": "second"})
    assert store.get_experiment("iris").tags == {"team": "a", "note": "second"}
    assert store.get_experiment(exp.id).tags == {"team": "a", "note": "second"}
    assert [e.tags for e in store.list_experiments()] == [{"team": "a", "note": "second"}]
    assert store.get_or_create_experiment("iris").tags == {"team": "a", "note": "second"}
    assert actions(store, exp.id).count("experiment.tags.set") == 2


def test_experiment_tags_of_an_unknown_experiment_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="plinth experiments list"):
        store.set_experiment_tags("nope", {"a": "1"})


def test_tags_are_held_to_the_rules_of_run_tags(store: Store) -> None:
    store.get_or_create_experiment("iris")
    with pytest.raises(InvalidInput, match="limit is 6000"):
        store.set_experiment_tags("iris", {"big": "x" * 6001})
    with pytest.raises(InvalidInput):
        store.set_experiment_tags("iris", {"bad\nkey": "v"})


def test_a_run_may_start_at_a_given_time_and_is_not_reaped_for_it(store: Store) -> None:
    run_id = new_run(store, start_ms=1_600_000_000_000)
    got = store.get_run(run_id)
    assert got.start_ms == 1_600_000_000_000
    assert got.status is RunStatus.RUNNING
    assert run_id not in store.reap_crashed(now())


def test_a_run_start_time_outside_the_range_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match="milliseconds since 1970"):
        new_run(store, start_ms=-1)


def test_run_tag_delete_also_on_an_ended_run(store: Store) -> None:
    run_id = new_run(store)
    store.set_tags(run_id, {"a": "1", "b": "2"})
    store.end_run(run_id, RunStatus.FINISHED, None, now())
    store.delete_run_tag(run_id, "a")
    assert store.get_run(run_id).tags == {"b": "2"}
    assert "run.tag.delete" in actions(store, run_id)
    with pytest.raises(NotFound, match="no tag 'a'"):
        store.delete_run_tag(run_id, "a")
    with pytest.raises(NotFound):
        store.delete_run_tag("no-such-run", "b")


# the registry ----------------------------------------------------------------------------------
def test_a_model_name_may_be_created_before_its_versions(store: Store) -> None:
    made = store.create_registered_model("churn", "predicts churn")
    assert (made.name, made.description, made.latest_version) == ("churn", "predicts churn", 0)
    assert store.get_registered_model("churn") == made
    assert [(m.name, m.latest_version) for m in store.list_registered_models()] == [("churn", 0)]
    assert store.list_model_versions("churn") == []
    with pytest.raises(NotFound, match="has no versions"):
        store.get_model_version("churn")
    with pytest.raises(ConflictError, match="exists already"):
        store.create_registered_model("churn", "")
    assert register(store, "churn") == 1
    assert store.get_registered_model("churn").latest_version == 1
    assert "model.create" in actions(store, "churn")


def test_unknown_models_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="No model named"):
        store.get_registered_model("nope")
    with pytest.raises(NotFound, match="No model named"):
        store.set_registered_model_tags("nope", {"a": "1"})
    with pytest.raises(NotFound, match="No model named"):
        store.list_model_versions("nope")
    with pytest.raises(NotFound):
        store.set_model_version_tags("nope", 1, {"a": "1"})


def test_a_bad_model_name_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInput):
        store.create_registered_model("churn@champion", "")


def test_registered_model_tags(store: Store) -> None:
    store.create_registered_model("org/churn", "")
    store.set_registered_model_tags("org/churn", {"team": "risk", "tier": "1"})
    store.set_registered_model_tags("org/churn", {"tier": "2"})
    assert store.get_registered_model("org/churn").tags == {"team": "risk", "tier": "2"}
    assert store.list_registered_models()[0].tags == {"team": "risk", "tier": "2"}
    store.delete_registered_model_tag("org/churn", "team")
    assert store.get_registered_model("org/churn").tags == {"tier": "2"}
    with pytest.raises(NotFound, match="no tag 'team'"):
        store.delete_registered_model_tag("org/churn", "team")
    assert {"model.tags.set", "model.tag.delete"} <= set(actions(store, "org/churn"))


def test_model_version_tags_and_source(store: Store) -> None:
    register(store, "org/churn", source="mlflow-artifacts:/1/models/m-1/artifacts")
    register(store, "org/churn")
    store.set_model_version_tags("org/churn", 1, {"validated": "yes", "k": "v"})
    store.delete_model_version_tag("org/churn", 1, "k")
    first = store.get_model_version("org/churn", 1)
    assert first.tags == {"validated": "yes"}
    assert first.source == "mlflow-artifacts:/1/models/m-1/artifacts"
    assert store.get_model_version("org/churn").tags == {}
    assert store.get_model_version("org/churn").source is None
    assert [mv.tags for mv in store.list_model_versions("org/churn")] == [{"validated": "yes"}, {}]
    with pytest.raises(NotFound, match="no tag 'k'"):
        store.delete_model_version_tag("org/churn", 1, "k")
    with pytest.raises(NotFound, match="no version 3"):
        store.set_model_version_tags("org/churn", 3, {"a": "1"})
    assert {"model.version.tags.set", "model.version.tag.delete"} <= set(actions(store, "org/churn/1"))


# logged models ---------------------------------------------------------------------------------
def test_logged_model_roundtrip_and_update(store: Store) -> None:
    exp = store.get_or_create_experiment("exp")
    run_id = new_run(store)
    made = store.create_logged_model(logged(exp.id, run_id, "m-" + "a" * 32))
    assert made == store.get_logged_model(made.id)
    assert (made.status, made.tags, made.params) == ("PENDING", {"mlflow.source": "x"}, {"alpha": "0.5"})
    updated = store.update_logged_model(made.id, status="READY", tags={"k": "v"}, params={"beta": "1"})
    assert updated.status == "READY"
    assert updated.tags == {"mlflow.source": "x", "k": "v"}
    assert updated.params == {"alpha": "0.5", "beta": "1"}
    assert updated.updated_ms >= made.updated_ms
    store.delete_logged_model_tag(made.id, "k")
    assert store.get_logged_model(made.id).tags == {"mlflow.source": "x"}
    with pytest.raises(NotFound, match="no tag 'k'"):
        store.delete_logged_model_tag(made.id, "k")
    events = actions(store, made.id)
    assert events == ["logged_model.create", "logged_model.update", "logged_model.tag.delete"]


def test_logged_models_are_checked(store: Store) -> None:
    exp = store.get_or_create_experiment("exp")
    run_id = new_run(store)
    model = logged(exp.id, run_id, "m-" + "b" * 32)
    store.create_logged_model(model)
    with pytest.raises(ConflictError, match="exists already"):
        store.create_logged_model(model)
    with pytest.raises(NotFound):
        store.create_logged_model(logged(exp.id, "no-such-run", "m-" + "c" * 32))
    with pytest.raises(NotFound):
        store.create_logged_model(logged("no-such-experiment", run_id, "m-" + "c" * 32))
    with pytest.raises(InvalidInput, match="PENDING, READY, FAILED"):
        store.update_logged_model(model.id, status="DONE")
    with pytest.raises(NotFound, match="No logged model"):
        store.get_logged_model("m-" + "0" * 32)
    with pytest.raises(NotFound, match="No logged model"):
        store.update_logged_model("m-" + "0" * 32, status="READY")


def test_logged_models_search_newest_first_by_experiment_run_and_name(store: Store) -> None:
    one = store.get_or_create_experiment("one")
    two = store.get_or_create_experiment("two")
    run_a, run_b = new_run(store, "one"), new_run(store, "two")
    store.create_logged_model(logged(one.id, run_a, "m-1", "lr", created=1))
    store.create_logged_model(logged(one.id, run_a, "m-2", "tree", created=2))
    store.create_logged_model(logged(two.id, run_b, "m-3", "lr", created=3))

    def ids(**kw: object) -> list[str]:
        return [m.id for m in store.search_logged_models(**kw)]  # type: ignore[arg-type]

    assert ids(experiment_ids=None) == ["m-3", "m-2", "m-1"]
    assert ids(experiment_ids=[one.id]) == ["m-2", "m-1"]
    assert ids(experiment_ids=[one.id, two.id], name="lr") == ["m-3", "m-1"]
    assert ids(experiment_ids=None, run_id=run_b) == ["m-3"]
    assert ids(experiment_ids=None, limit=1, offset=1) == ["m-2"]
    assert ids(experiment_ids=[]) == []
    assert store.search_logged_models(experiment_ids=[one.id])[0].tags == {"mlflow.source": "x"}


# the public functions --------------------------------------------------------------------------
class Doubler:
    def predict(self, data: list[list[float]]) -> list[float]:
        return [2 * sum(row) for row in data]


def test_public_tag_functions(tracking: Backend) -> None:
    plinth.register_model("doubler", Doubler())
    plinth.set_model_version_tags("doubler", 1, {"validated": True, "owner": "ana"})
    plinth.delete_model_version_tag("doubler", 1, "owner")
    plinth.set_registered_model_tags("doubler", {"team": "risk"})
    assert plinth.get_model_version("doubler", 1).tags == {"validated": "True"}
    assert plinth.list_models()[0].tags == {"team": "risk"}
    with pytest.raises(InvalidInput, match="Version must be an integer"):
        plinth.set_model_version_tags("doubler", "1", {"a": "b"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="tag key"):
        plinth.set_registered_model_tags("doubler", {"": "b"})


def test_a_name_without_versions_is_listed_and_not_loaded(tracking: Backend) -> None:
    tracking.store.create_registered_model("empty", "made first, versions later")
    [model] = plinth.list_models()
    assert (model.name, model.latest_version) == ("empty", 0)
    assert plinth.list_model_versions("empty") == []
    with pytest.raises(NotFound, match="has no versions yet"):
        plinth.load_model("empty")
    with pytest.raises(NotFound, match="has no versions yet"):
        plinth.get_model_version("empty")


def test_the_models_view_shows_a_name_without_versions(store_url: str, tmp_path: Path) -> None:
    from team_servers import start_thread_server

    server = start_thread_server(store_url, tmp_path)
    try:
        with server.client() as client:
            made = client.post("/api/v1/models", json={"name": "empty", "description": "later"})
            assert made.status_code == 200, made.text
            listed = client.get(f"{PREFIX}/models")
            shown = client.get(f"{PREFIX}/models/empty")
    finally:
        server.stop()
    assert listed.status_code == 200, listed.text
    assert [(m["name"], m["latest_version"]) for m in listed.json()] == [("empty", 0)]
    assert shown.status_code == 200, shown.text
    assert (shown.json()["description"], shown.json()["versions"]) == ("later", [])
