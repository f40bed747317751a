"""Workspaces: a database (SQLite) or schema (PostgreSQL) each, isolated, and one garbage collection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

import plinth
from plinth.core.errors import ConfigError, InvalidInput, NotFound
from plinth.core.settings import Settings
from plinth.store.base import ArtifactRecord
from plinth.store.engine import make_engine, writing
from plinth.store.migrate import alembic_config, upgrade
from plinth.store.sql import SqlStore
from plinth.store.sql.identity import SqlIdentity
from plinth.store.workspaces import WorkspaceStores, open_workspace_store, workspace_url
from plinth.tracking.gc import collect_garbage

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("sqlite:////data/plinth.db", "sqlite:////data/plinth.ws-vision.db"),
        ("sqlite:///rel/team.db", "sqlite:///rel/team.ws-vision.db"),
        (f"{PG}?options=-csearch_path%3Dteam", f"{PG}?options=-csearch_path%3Dteam_ws_vision"),
        (f"{PG}?options=-c%20search_path%3Dteam,public", f"{PG}?options=-csearch_path%3Dteam_ws_vision"),
        (PG, f"{PG}?options=-csearch_path%3Dplinth_ws_vision"),
    ],
)
def test_a_workspace_lives_beside_the_default_one(base: str, url: str) -> None:
    assert workspace_url(base, "vision") == url
    assert workspace_url(base, "default") == base


def test_workspace_urls_need_a_name_and_a_file() -> None:
    assert workspace_url(PG, "big-data").endswith("plinth_ws_big_data")
    with pytest.raises(InvalidInput, match="cannot name a workspace"):
        workspace_url(PG, "../x")
    with pytest.raises(ConfigError, match="Workspaces need the SQLite store in a file"):
        workspace_url("sqlite://", "vision")
    with pytest.raises(ConfigError, match="longer than PostgreSQL's 63 bytes"):
        workspace_url(f"{PG}?options=-csearch_path%3D{'s' * 40}", "a-rather-long-workspace-name")


@pytest.fixture
def identity(settings: Settings) -> Iterator[SqlIdentity]:
    store = SqlIdentity.from_settings(settings)
    store.create_workspace("vision", by="admin")
    yield store
    store.close()


@pytest.fixture
def stores(settings: Settings, identity: SqlIdentity) -> Iterator[WorkspaceStores]:
    opened = WorkspaceStores(settings, identity)
    yield opened
    opened.close()


def test_workspaces_do_not_see_each_others_data(stores: WorkspaceStores) -> None:
    default, vision = stores.get("default"), stores.get("vision")
    shared_here = default.get_or_create_experiment("shared")
    shared_there = vision.get_or_create_experiment("shared")
    vision.get_or_create_experiment("cats")
    assert shared_here.id != shared_there.id
    assert [x.name for x in default.list_experiments()] == ["shared"]
    assert [x.name for x in vision.list_experiments()] == ["shared", "cats"]
    with pytest.raises(NotFound):
        default.get_experiment("cats")
    with pytest.raises(NotFound):
        vision.get_experiment(shared_here.id)


def test_each_workspace_store_is_opened_once(stores: WorkspaceStores) -> None:
    assert stores.get("vision") is stores.get("vision")
    assert stores.names() == ["default", "vision"]
    with pytest.raises(
        NotFound, match="No workspace 'audio'; create it with `plinth workspaces create audio`"
    ):
        stores.get("audio")
    with pytest.raises(InvalidInput):
        stores.get("Audio!")


def test_a_workspace_store_opens_by_name(settings: Settings, identity: SqlIdentity) -> None:
    store = open_workspace_store(settings, "vision")
    try:
        store.get_or_create_experiment("cats")
    finally:
        store.close()
    again = open_workspace_store(settings, "vision")
    try:
        assert [x.name for x in again.list_experiments()] == ["cats"]
    finally:
        again.close()
    with pytest.raises(NotFound, match="No workspace 'audio'"):
        open_workspace_store(settings, "audio")


def test_acting_as_records_the_actor_in_audit_events(stores: WorkspaceStores) -> None:
    store = stores.get("vision")
    acting = store.acting_as("alice (token ci)")
    experiment = acting.get_or_create_experiment("cats")
    store.get_or_create_experiment("dogs")
    assert acting.engine is store.engine and store.actor == "tester"
    assert [(e.actor, e.action) for e in store.audit_events(entity_id=experiment.id)] == [
        ("alice (token ci)", "experiment.create")
    ]
    assert {e.actor for e in store.audit_events()} == {"alice (token ci)", "tester"}
    assert store.verify_audit().ok


def test_gc_keeps_blobs_referenced_only_from_another_workspace(
    settings: Settings, stores: WorkspaceStores
) -> None:
    be = plinth.configure(settings)
    vision = stores.get("vision")
    digest, size = be.blobs.put_bytes(b"weights of a model in vision")
    stray, _ = be.blobs.put_bytes(b"stored, never recorded")
    run = vision.create_run(
        experiment="cats", name=None, params={}, tags={}, environment=None, heartbeat_s=30, user="alice"
    )
    vision.add_artifacts(run.id, [ArtifactRecord("model.bin", digest, size)])

    report = collect_garbage(be, min_age_s=0)
    assert report.removed == [stray]
    assert {b.digest for b in be.blobs.list_blobs()} == {digest}


def test_a_store_at_0008_upgrades_in_place_into_default(store_url: str) -> None:
    from alembic import command

    engine = make_engine(store_url)
    try:
        with writing(engine) as conn:
            command.upgrade(alembic_config(conn), "0008")
        with writing(engine) as conn:
            conn.execute(text("INSERT INTO experiments VALUES ('e1', 'kept', 1, '{}')"))
        assert upgrade(engine) is True
    finally:
        engine.dispose()
    identity = SqlIdentity(store_url, audit_key=None)
    store = SqlStore(store_url)
    try:
        assert [w.name for w in identity.list_workspaces()] == ["default"]
        assert store.get_experiment("kept").id == "e1"
        identity.create_workspace("vision", by="admin")
    finally:
        store.close()
        identity.close()
