"""One contract suite over every Store implementation: SQLite and PostgreSQL, each directly and
through a team server (`RemoteStore`)."""

from __future__ import annotations

import time

import pytest

from plinth.core.entities import LineageEdge, RunStatus
from plinth.core.errors import ConflictError, NotFound, RunNotActive
from plinth.core.filters import parse_filter, parse_order_by
from plinth.store.audit import GENESIS, event_hash
from plinth.store.base import ArtifactRecord, NewDataset, Store


@pytest.fixture
def store(open_store):  # type: ignore[no-untyped-def]
    return open_store(actor="tester")


def now() -> int:
    return time.time_ns() // 1_000_000


def make_run(store: Store, experiment: str = "exp", **kw):  # type: ignore[no-untyped-def]
    args = {
        "name": None,
        "params": {},
        "tags": {},
        "environment": None,
        "heartbeat_s": 10.0,
        "user": "u",
    }
    args.update(kw)
    return store.create_run(experiment=experiment, **args)


def test_experiments_are_created_once(store: Store) -> None:
    a = store.get_or_create_experiment("iris")
    b = store.get_or_create_experiment("iris")
    assert a.id == b.id
    assert store.get_experiment("iris") == a
    assert store.get_experiment(a.id) == a
    assert [e.name for e in store.list_experiments()] == ["iris"]


def test_unknown_experiment_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="plinth experiments list"):
        store.get_experiment("nope")


def test_run_roundtrip(store: Store) -> None:
    run = make_run(store, params={"lr": "0.1"}, tags={"team": "v"}, environment={"python": "3.11"})
    got = store.get_run(run.id)
    assert got.status is RunStatus.RUNNING
    assert got.params == {"lr": "0.1"}
    assert got.tags == {"team": "v"}
    assert got.environment == {"python": "3.11"}
    assert got.experiment_name == "exp"


def test_params_are_immutable(store: Store) -> None:
    run = make_run(store, params={"lr": "0.1"})
    store.log_params(run.id, {"lr": "0.1", "depth": "3"})
    with pytest.raises(ConflictError, match="already logged"):
        store.log_params(run.id, {"lr": "0.2", "other": "x"})
    assert store.get_run(run.id).params == {"lr": "0.1", "depth": "3"}  # nothing half-written


def test_tags_overwrite(store: Store) -> None:
    run = make_run(store, tags={"stage": "dev"})
    store.set_tags(run.id, {"stage": "prod", "x": "1"})
    assert store.get_run(run.id).tags == {"stage": "prod", "x": "1"}


def test_metrics_history_and_latest(store: Store) -> None:
    run = make_run(store)
    points = [(run.id, "loss", s, 1000 + s, 5000 + s, 1.0 / (s + 1)) for s in range(500)]
    points.append((run.id, "acc", 0, 2000, 6000, 0.5))
    store.write_metrics(points[:250])
    store.write_metrics(points[250:])
    history = store.metric_history(run.id, "loss")
    assert len(history) == 500
    assert list(history["step"][:3]) == [0, 1, 2]
    assert history["value"][-1] == pytest.approx(1 / 500)
    assert store.get_run(run.id).metrics == {"loss": pytest.approx(1 / 500), "acc": 0.5}
    assert store.metric_keys(run.id) == ["acc", "loss"]


def test_latest_metric_is_highest_step_not_last_written(store: Store) -> None:
    run = make_run(store)
    store.write_metrics([(run.id, "m", 10, 1, 0, 10.0)])
    store.write_metrics([(run.id, "m", 3, 2, 0, 3.0)])
    assert store.get_run(run.id).metrics["m"] == 10.0


def test_ended_run_refuses_writes(store: Store) -> None:
    run = make_run(store)
    store.end_run(run.id, RunStatus.FINISHED, None, now())
    with pytest.raises(RunNotActive):
        store.log_params(run.id, {"a": "1"})
    with pytest.raises(RunNotActive):
        store.end_run(run.id, RunStatus.FAILED, None, now())
    got = store.get_run(run.id)
    assert got.status is RunStatus.FINISHED
    assert got.end_ms is not None


def test_ended_run_still_takes_tags_and_artifacts(store: Store) -> None:
    # tags and files annotate a run after it ends (a review, a report); params and metrics do not change
    run = make_run(store)
    store.end_run(run.id, RunStatus.FINISHED, None, now())
    store.set_tags(run.id, {"reviewed": "yes"})
    store.add_artifacts(run.id, [ArtifactRecord("report.html", "f" * 64, 7)])
    got = store.get_run(run.id)
    assert got.tags["reviewed"] == "yes"
    assert [(a.path, a.size) for a in got.artifacts] == [("report.html", 7)]
    assert got.status is RunStatus.FINISHED
    with pytest.raises(NotFound):
        store.set_tags("no-such-run", {"a": "1"})


def test_a_run_is_renamed_running_or_ended(store: Store) -> None:
    run = make_run(store)
    store.rename_run(run.id, "first")
    store.end_run(run.id, RunStatus.FINISHED, None, now())
    store.rename_run(run.id, "second")
    assert store.get_run(run.id).name == "second"
    assert [e.after for e in store.audit_events(actions=["run.rename"])] == ["first", "second"]
    with pytest.raises(NotFound):
        store.rename_run("no-such-run", "x")


def test_an_ended_run_reopens_and_ends_again(store: Store) -> None:
    run = make_run(store)
    store.end_run(run.id, RunStatus.FAILED, "boom", now())
    store.reopen_run(run.id, now())
    got = store.get_run(run.id)
    assert (got.status, got.end_ms, got.error) == (RunStatus.RUNNING, None, None)
    store.log_params(run.id, {"late": "1"})
    store.reopen_run(run.id, now())  # running already: nothing changes
    store.end_run(run.id, RunStatus.FINISHED, None, now())
    assert store.get_run(run.id).status is RunStatus.FINISHED
    assert [e.action for e in store.audit_events(entity_id=run.id)].count("run.reopen") == 1
    with pytest.raises(NotFound):
        store.reopen_run("no-such-run", now())


def test_stale_heartbeat_reads_crashed_and_reap_records_it(store: Store) -> None:
    run = make_run(store, heartbeat_s=0.05)
    fresh = make_run(store, heartbeat_s=60)
    later = now() + 1000
    assert store.get_run(run.id, now_ms=later).status is RunStatus.CRASHED
    crashed = store.search_runs(
        experiments=None,
        where=parse_filter("status = 'CRASHED'"),
        order_by=(),
        limit=None,
        now_ms=later,
    )
    assert [r.id for r in crashed] == [run.id]
    assert store.reap_crashed(later) == [run.id]
    assert store.get_run(run.id).status is RunStatus.CRASHED
    assert store.get_run(fresh.id).status is RunStatus.RUNNING


def test_heartbeat_keeps_run_alive(store: Store) -> None:
    run = make_run(store, heartbeat_s=1)
    store.heartbeat([run.id], now() + 5000)
    assert store.get_run(run.id, now_ms=now() + 6000).status is RunStatus.RUNNING


def _search(  # type: ignore[no-untyped-def]
    store: Store, where: str | None, order: list[str] | None = None, limit: int | None = None, offset: int = 0
):
    found = store.search_runs(
        experiments=["s"],
        where=parse_filter(where),
        order_by=parse_order_by(order),
        limit=limit,
        now_ms=now(),
        offset=offset,
    )
    return [r.name for r in found]


@pytest.fixture
def populated(store: Store) -> Store:
    for i in range(6):
        run = make_run(
            store,
            "s",
            name=f"r{i}",
            params={"lr": str(0.1 * (i % 3)), "opt": "adam" if i % 2 else "sgd"},
            tags={"team": "vision" if i < 3 else "nlp"},
        )
        store.write_metrics([(run.id, "acc", 0, 1, 1, i / 10), (run.id, "loss", 0, 2, 1, 1 - i / 10)])
        if i == 5:
            store.end_run(run.id, RunStatus.FAILED, "boom", now())
    make_run(store, "other", name="elsewhere")
    return store


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("metrics.acc > 0.25", {"r3", "r4", "r5"}),
        ("metrics.acc >= 0.3 and tags.team = 'nlp'", {"r3", "r4", "r5"}),
        ("params.opt = 'adam' or metrics.loss > 0.95", {"r0", "r1", "r3", "r5"}),
        ("params.lr > 0.15", {"r2", "r5"}),
        ("params.opt in ('adam')", {"r1", "r3", "r5"}),
        ("name like 'r%' and not (metrics.acc < 0.4)", {"r4", "r5"}),
        ("status = 'FAILED'", {"r5"}),
        ("status != 'FAILED' and tags.team = 'nlp'", {"r3", "r4"}),
        ("metrics.missing > 0", set()),
        ("tags.team is null", set()),
        ("tags.team ilike 'VIS%'", {"r0", "r1", "r2"}),
        ("params.opt != 'adam' or metrics.acc >= 0.5", {"r0", "r2", "r4", "r5"}),
        ("params.missing != 'x'", set()),
        ("tags.team in ('nlp') and not (metrics.loss < 0.55)", {"r3", "r4"}),
        ("not (params.missing = 'x') and params.lr < 0.05", set()),  # a missing value passes no test
    ],
)
def test_search_filters(populated: Store, where: str, expected: set[str]) -> None:
    assert set(_search(populated, where)) == expected
    counted = populated.count_runs(experiments=["s"], where=parse_filter(where), now_ms=now())
    assert counted == len(expected)


def test_search_order_and_limit(populated: Store) -> None:
    assert _search(populated, None, ["-metrics.acc"], limit=3) == ["r5", "r4", "r3"]
    assert _search(populated, None, ["metrics.acc"], limit=2) == ["r0", "r1"]
    assert _search(populated, None, ["params.opt", "-metrics.acc"]) == [
        "r5",
        "r3",
        "r1",
        "r4",
        "r2",
        "r0",
    ]
    assert _search(populated, None)[:2] == ["r5", "r4"]  # newest first by default


def test_search_pages_with_an_offset(populated: Store) -> None:
    everything = _search(populated, None, ["-metrics.acc"])
    pages = [_search(populated, None, ["-metrics.acc"], limit=2, offset=o) for o in (0, 2, 4, 6)]
    assert [name for page in pages for name in page] == everything
    assert _search(populated, None, ["name"], limit=3, offset=5) == sorted(everything)[5:]
    assert _search(populated, "tags.team = 'nlp'", ["-metrics.acc"], limit=10, offset=1) == ["r4", "r3"]


def test_count_runs_counts_what_a_search_finds(populated: Store) -> None:
    s = populated.get_experiment("s").id
    assert populated.count_runs(experiments=[s], where=None, now_ms=now()) == 6
    assert populated.count_runs(experiments=None, where=None, now_ms=now()) == 7
    where = parse_filter("metrics.acc > 0.25 and status != 'FAILED'")
    assert populated.count_runs(experiments=[s], where=where, now_ms=now()) == 2
    assert populated.count_runs(experiments=[], where=None, now_ms=now()) == 0


def test_search_values_are_parameters_not_sql(populated: Store) -> None:
    assert _search(populated, "tags.team = 'x'' or 1=1 --'") == []
    assert len(populated.list_experiments()) == 2


def test_artifacts_records(store: Store) -> None:
    run = make_run(store)
    store.add_artifacts(
        run.id,
        [ArtifactRecord("plots/a.png", "a" * 64, 3), ArtifactRecord("model.pkl", "b" * 64, 5)],
    )
    assert [a.path for a in store.list_artifacts(run.id)] == ["model.pkl", "plots/a.png"]
    assert [a.path for a in store.list_artifacts(run.id, "plots")] == ["plots/a.png"]
    assert store.list_artifacts(run.id, "plot") == []
    assert store.referenced_digests() == {"a" * 64, "b" * 64}
    assert len(store.get_run(run.id).artifacts) == 2


def _dataset(name: str, digest: str) -> NewDataset:
    return NewDataset(
        name=name,
        digest=digest,
        size=10,
        rows=3,
        schema=[{"name": "x", "dtype": "int64"}],
        profile={"rows": 3},
        source="memory",
    )


def test_dataset_versions_dedupe_by_content(store: Store) -> None:
    v1, created1 = store.add_dataset_version(_dataset("iris", "1" * 64))
    again, created2 = store.add_dataset_version(_dataset("iris", "1" * 64))
    v2, _ = store.add_dataset_version(_dataset("iris", "2" * 64))
    assert (created1, created2) == (True, False)
    assert again.id == v1.id
    assert (v1.version, v2.version) == (1, 2)
    assert store.get_dataset_version("iris").version == 2
    assert store.get_dataset_version("iris", 1).digest == "1" * 64
    assert [d.ref for d in store.list_dataset_versions()] == ["iris/1", "iris/2"]
    with pytest.raises(NotFound):
        store.get_dataset_version("iris", 9)


def test_lineage_edges_are_idempotent(store: Store) -> None:
    run = make_run(store)
    edge = LineageEdge("dataset_version", "d1", "consumed_by", "run", run.id, now(), {"role": "train"})
    store.add_edge(edge)
    store.add_edge(edge)
    assert [e.attributes for e in store.edges(dst=("run", run.id))] == [{"role": "train"}]
    assert store.edges(src=("dataset_version", "d1"))[0].dst_id == run.id


def test_audit_log_is_hash_chained(store: Store) -> None:
    run = make_run(store)
    store.end_run(run.id, RunStatus.FINISHED, None, now())
    events = store.audit_events()
    assert [e.action for e in events] == ["experiment.create", "run.create", "run.end"]
    prev = GENESIS
    for ev in events:
        fields = {
            "seq": ev.seq,
            "time_ms": ev.time_ms,
            "actor": ev.actor,
            "action": ev.action,
            "entity_type": ev.entity_type,
            "entity_id": ev.entity_id,
            "before": ev.before,
            "after": ev.after,
        }
        assert ev.prev_hash == prev
        assert ev.hash == event_hash(prev, fields)
        prev = ev.hash
    assert events[-1].actor.split(" (token ")[0] == "tester"  # through a server: with its token


def test_relogging_a_folder_replaces_it_whole(store: Store) -> None:
    run = make_run(store)
    store.add_artifacts(
        run.id, [ArtifactRecord("ckpt/a", "a" * 64, 1), ArtifactRecord("ckpt/b", "b" * 64, 1)]
    )
    store.add_artifacts(run.id, [ArtifactRecord("ckpt_x/keep", "c" * 64, 1)], replace="ckpt_x")
    store.add_artifacts(run.id, [ArtifactRecord("ckpt/a", "d" * 64, 1)], replace="ckpt")
    assert [(a.path, a.digest[0]) for a in store.list_artifacts(run.id)] == [
        ("ckpt/a", "d"),
        ("ckpt_x/keep", "c"),
    ]
    store.add_artifacts(run.id, [ArtifactRecord("ckpt", "e" * 64, 1)], replace="ckpt")  # a file now
    assert [a.path for a in store.list_artifacts(run.id)] == ["ckpt", "ckpt_x/keep"]
