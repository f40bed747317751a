"""Writes whose statements go out with their commit (on PostgreSQL, ahead of the audit chain's
lock): what they write, what a failed one leaves, and writes inside `batch()`, on both backends."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from plinth.core.entities import RunStatus
from plinth.core.errors import InvalidInput, NotFound, RunNotActive
from plinth.core.filters import Field, OrderKey, parse_filter
from plinth.store.base import NewRun, Store
from plinth.store.engine import driver_cursor
from plinth.store.sql import SqlStore
from plinth.store.sql import metrics as metrics_module
from plinth.store.sql.metrics import COPIED_POINTS, SENT_POINTS

KEY = "a-test-audit-key-" + "1" * 16


@pytest.fixture
def store(open_store: Callable[..., Store]) -> Store:
    return open_store(actor="tester", audit_key=KEY)


@pytest.fixture
def sql_store(store_url: str) -> Iterator[SqlStore]:
    """The SQL store itself: `batch()` and a refused duplicate are its own (a remote client's
    writes are not one transaction, and it skips points already stored itself)."""
    store = SqlStore(store_url, actor="tester", audit_key=KEY)
    yield store
    store.close()


def spec() -> NewRun:
    return NewRun("sent", None, {"lr": "0.1"}, {"team": "vision"}, None, 10.0, "u")


def now() -> int:
    return time.time_ns() // 1_000_000


def new_run(store: Store, **params: str) -> str:
    run = store.create_run(
        experiment="sent",
        name=None,
        params=params,
        tags={"team": "vision", "stage": "dev"},
        environment=None,
        heartbeat_s=10.0,
        user="u",
    )
    return run.id


def test_a_run_with_params_and_tags_is_stored_whole_and_its_key_known(store: Store) -> None:
    run_id = new_run(store, lr="0.1", layers="3", note="x")
    store.write_metrics([(run_id, "loss", 0, 0, 1, 0.5)])  # finds the run's key at once
    got = store.get_run(run_id)
    assert got.params == {"lr": "0.1", "layers": "3", "note": "x"}
    assert got.tags == {"team": "vision", "stage": "dev"}
    assert got.metrics == {"loss": 0.5}
    found = store.search_runs(experiments=["sent"], where=None, order_by=[], limit=None, now_ms=now())
    assert [r.id for r in found] == [run_id]
    assert [e.action for e in store.audit_events() if e.entity_id == run_id] == [
        "run.create",
        "run.metrics.log",
    ]
    assert store.verify_audit().ok


def test_ending_a_run_twice_or_a_missing_one_is_refused_and_leaves_no_event(store: Store) -> None:
    run_id = new_run(store)
    store.end_run(run_id, RunStatus.FINISHED, None, now())
    events = len(store.audit_events())
    with pytest.raises(RunNotActive, match="already ended as FINISHED"):
        store.end_run(run_id, RunStatus.FAILED, "late", now())
    with pytest.raises(NotFound, match="no-such"):
        store.end_run("no-such", RunStatus.FINISHED, None, now())
    got = store.get_run(run_id)
    assert (got.status, got.error) == (RunStatus.FINISHED, None)
    assert len(store.audit_events()) == events
    assert store.verify_audit().ok


def test_points_of_a_small_write_keep_nan_and_infinity_and_move_the_latest(store: Store) -> None:
    run_id = new_run(store)
    store.write_metrics(
        [
            (run_id, "loss", 0, 0, 1, 1.0),
            (run_id, "loss", 1, 1, 2, math.nan),
            (run_id, "acc", 0, 2, 1, math.inf),
        ]
    )
    store.write_metrics([(run_id, "loss", 0, 3, 3, 9.0)])  # an older step: the latest stays step 1
    history = store.metric_history(run_id, "loss")
    assert history["step"].tolist() == [0, 0, 1]
    assert math.isnan(history["value"][-1])
    metrics = store.get_run(run_id).metrics
    assert math.isnan(metrics["loss"]) and metrics["acc"] == math.inf


def test_points_come_back_exactly_as_written(store: Store) -> None:
    run_id = new_run(store)
    values = [0.1, 1 / 3, -2.5e-308, 5e-324, 1.7976931348623157e308, -math.inf, 123456789.123456789, -0.0]
    steps = [-(2**62), -1, 0, 1, 2**40, 2**62, 7, 8]
    store.write_metrics(
        [(run_id, "v", s, i, 2**41 + i, v) for i, (s, v) in enumerate(zip(steps, values, strict=True))]
    )
    history = store.metric_history(run_id, "v")
    assert history["step"].tolist() == sorted(steps)
    by_step = dict(zip(history["step"].tolist(), history["value"].tolist(), strict=True))
    assert [by_step[s] for s in steps] == values
    assert history["timestamp_ms"].min() == 2**41


def test_independent_writes_in_one_batch_land_together(sql_store: SqlStore) -> None:
    """A group commit's batch: each write leaves its statements to the commit, as if alone."""
    store = sql_store
    runs = [new_run(store) for _ in range(3)]
    events = len(store.audit_events())
    with store.batch(independent=True):
        made = store.create_runs([spec() for _ in range(2)])
        for run_id in runs:
            store.write_metrics([(run_id, "loss", step, step, 1, step / 2) for step in range(4)])
        store.end_run(runs[0], RunStatus.FINISHED, None, now())
    assert len(store.audit_events()) == events + 2 + 3 + 1
    assert [store.get_run(r.id).status for r in made] == [RunStatus.RUNNING] * 2
    assert store.get_run(runs[0]).status is RunStatus.FINISHED
    for run_id in runs:
        assert store.get_run(run_id).metrics == {"loss": 1.5}
    store.write_metrics([(made[0].id, "acc", 0, 0, 1, 0.5)])  # its key, learnt at the commit
    assert store.get_run(made[0].id).metrics == {"acc": 0.5}
    assert store.verify_audit().ok


def test_the_points_of_a_batch_s_writes_go_as_one_statement_and_leave_what_each_write_would(
    sql_store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group commit's writes of points: one statement for all of them (PostgreSQL), and the
    latest value of each run and key as the writes, made one after another, would leave it."""
    store = sql_store
    a, b = new_run(store), new_run(store)
    store.write_metrics([(b, "loss", 9, 0, 1, 9.0)])  # stored before: b's loss stays at step 9
    sent: list[int] = []
    real = metrics_module._SentPoints.__call__

    def counted(self: Any, cursor: Any) -> None:
        sent.append(self.points)
        real(self, cursor)

    monkeypatch.setattr(metrics_module._SentPoints, "__call__", counted)
    events = len(store.audit_events())
    with store.batch(independent=True):
        store.write_metrics([(a, "loss", step, step, 1, float(step)) for step in range(3)])
        store.write_metrics([(a, "loss", 1, 3, 1, 10.0), (b, "acc", 0, 0, 1, 0.25)])  # behind a's step 2
        store.write_metrics([(a, "loss", 5, 4, 1, float("nan")), (b, "loss", 3, 1, 1, 3.0)])
        store.write_metrics([(a, "loss", 4, 5, 1, 40.0), (b, "acc", 1, 1, 1, 0.5)])  # behind a's step 5
    assert sent == ([] if store._sqlite else [9])
    assert len(store.audit_events()) == events + 7  # one per run a write moved
    loss = store.get_run(a).metrics["loss"]
    assert math.isnan(loss)  # step 5's, NaN kept
    assert store.get_run(b).metrics == {"loss": 9.0, "acc": 0.5}
    history = store.metric_history(a, "loss")
    assert history["step"].tolist() == [0, 1, 1, 2, 4, 5]
    assert store.verify_audit().ok


def test_a_batch_s_writes_past_the_copied_size_are_copied_in_whole_or_not_at_all(sql_store: SqlStore) -> None:
    """A group commit whose writes hold `COPIED_POINTS` points or more copies them in just
    before its commit; one point already stored fails the group with nothing of it kept."""
    store = sql_store
    runs = [new_run(store) for _ in range(4)]
    per = COPIED_POINTS // 3 + 1  # the four writes together pass the size, none alone
    with store.batch(independent=True):
        for i, run_id in enumerate(runs):
            store.write_metrics([(run_id, "loss", s, s, 1, s * 0.5 + i) for s in range(per)])
    for i, run_id in enumerate(runs):
        assert len(store.metric_history(run_id, "loss")) == per
        assert store.get_run(run_id).metrics == {"loss": (per - 1) * 0.5 + i}
    events = len(store.audit_events())
    with pytest.raises(IntegrityError), store.batch(independent=True):  # as it is, from a batch
        for run_id in runs:  # new steps, and the last write ends on its run's first point
            rows = [(run_id, "loss", s, s, 1, 1.0) for s in range(per, 2 * per)]
            store.write_metrics(rows if run_id != runs[-1] else [*rows, (run_id, "loss", 0, 0, 1, 9.0)])
    assert [len(store.metric_history(r, "loss")) for r in runs] == [per] * 4
    assert len(store.audit_events()) == events
    assert store.verify_audit().ok


def test_an_independent_batch_that_fails_leaves_nothing(sql_store: SqlStore) -> None:
    store = sql_store
    run_id = new_run(store)
    store.end_run(run_id, RunStatus.FINISHED, None, now())
    events = len(store.audit_events())
    with pytest.raises(RunNotActive), store.batch(independent=True):
        made = store.create_runs([spec()])
        store.end_run(run_id, RunStatus.FAILED, None, now())  # refused at the commit on PostgreSQL
    assert len(store.audit_events()) == events
    with pytest.raises(NotFound):
        store.get_run(made[0].id)


@pytest.mark.parametrize("size", [5, COPIED_POINTS + 5])  # sent with the commit, or copied in before it
def test_a_write_of_points_already_stored_fails_whole_and_a_retry_skips_them(
    sql_store: SqlStore, size: int
) -> None:
    store = sql_store
    run_id = new_run(store)
    first = [(run_id, "loss", step, step, 1, float(step)) for step in range(size)]
    store.write_metrics(first)
    events = len(store.audit_events())
    again = [*first[3:], *[(run_id, "loss", step, step, 1, float(step)) for step in range(size, size + 3)]]
    with pytest.raises(InvalidInput, match="refused metric points"):
        store.write_metrics(again)
    assert len(store.metric_history(run_id, "loss")) == size  # nothing of the failed write
    assert len(store.audit_events()) == events
    store.write_metrics(again, skip_written=True)
    assert store.metric_history(run_id, "loss")["step"].tolist() == list(range(size + 3))
    assert store.get_run(run_id).metrics == {"loss": float(size + 2)}
    assert store.verify_audit().ok


def test_a_write_past_the_sent_size_is_stored_whole(store: Store) -> None:
    run_id = new_run(store)
    points = [(run_id, "loss", step, step, 1, float(step)) for step in range(SENT_POINTS + 5)]
    store.write_metrics(points)
    assert len(store.metric_history(run_id, "loss")) == SENT_POINTS + 5
    assert store.get_run(run_id).metrics == {"loss": float(SENT_POINTS + 4)}


def test_writes_inside_a_batch_see_each_other(sql_store: SqlStore) -> None:
    store = sql_store
    with store.batch():
        run_id = new_run(store, lr="0.2")
        store.write_metrics([(run_id, "loss", 0, 0, 1, 0.25)])
        store.end_run(run_id, RunStatus.FINISHED, None, now())
    got = store.get_run(run_id)
    assert (got.status, got.params, got.metrics) == (RunStatus.FINISHED, {"lr": "0.2"}, {"loss": 0.25})
    assert store.verify_audit().ok


def test_a_failed_end_inside_a_batch_undoes_the_batch(sql_store: SqlStore) -> None:
    store = sql_store
    ended = new_run(store)
    store.end_run(ended, RunStatus.FINISHED, None, now())
    with pytest.raises(RunNotActive):
        with store.batch():
            fresh = new_run(store)
            store.end_run(ended, RunStatus.KILLED, None, now())
    assert fresh not in {
        r.id
        for r in store.search_runs(experiments=["sent"], where=None, order_by=[], limit=None, now_ms=now())
    }


def test_whole_numbers_among_floats_are_stored_as_floats(store: Store) -> None:
    run_id = new_run(store)
    store.write_metrics(
        [(run_id, "loss", 0, 0, 1, 2), (run_id, "loss", 1, 1, 1, 0.5), (run_id, "acc", 0, 2, 1, 1)]
    )
    assert store.metric_history(run_id, "loss")["value"].tolist() == [2.0, 0.5]
    assert store.get_run(run_id).metrics == {"loss": 0.5, "acc": 1.0}


def test_postgresql_keeps_prepared_statements_and_plans_each_for_its_values_but_the_walk(
    pg_schema_factory: Callable[[], str],
) -> None:
    store = SqlStore(pg_schema_factory(), actor="tester", audit_key=KEY)
    store.few_runs = 0  # a search ordered by a metric walks its index, whatever the experiment's size
    run_id = new_run(store, lr="0.1")
    store.write_metrics([(run_id, "loss", 0, 0, 1, 0.5)])
    by_loss = [OrderKey(Field("metrics", "loss"), True)]
    for where in ("params.lr = '0.1' and metrics.loss > 0.1", "start_time > 0"):
        for _ in range(12):
            found = store.search_runs(
                experiments=["sent"], where=parse_filter(where), order_by=by_loss, limit=5, now_ms=now()
            )
            assert [r.id for r in found] == [run_id]
    with store.engine.connect() as conn:  # the pool's one connection, which ran every search
        plans = {
            statement: (generic, custom)
            for statement, generic, custom in conn.exec_driver_sql(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE strpos(statement, 'latest_metrics o') > 0"
            )
        }
    walks = {s: p for s, p in plans.items() if "ORDER BY o.value" in s}
    rest = {s: p for s, p in plans.items() if "NOT EXISTS" in s}  # after a short walk: runs without it
    assert len(walks) == 2 and len(rest) == 2
    for statement, (generic, custom) in walks.items():
        if "start_ms >" in statement:  # a run attribute compared to a value: planned for each
            assert generic == 0 and custom >= 3
        else:  # only values the planner cannot estimate: one plan kept, after PostgreSQL's first five
            assert generic >= 3 and custom == 5
    for generic, custom in rest.values():
        assert generic == 0 and custom >= 3  # prepared after psycopg's 5th run, then planned each time
    store.close()


@pytest.mark.parametrize("random_page_cost", [None, 40.0])
def test_the_plan_a_postgresql_walk_keeps_walks_the_metric_of_the_experiment_asked_for(
    pg_schema_factory: Callable[[], str], random_page_cost: float | None
) -> None:
    """Also where random reads are priced high (a slow disk's, as an operator may set them):
    reading every run of the experiment once, to match the walk's few entries against, then
    looks cheaper than looking those few up by key, and is many times slower."""
    store = SqlStore(pg_schema_factory(), actor="tester", audit_key=KEY)
    store.few_runs = 0
    rng = random.Random(3)
    experiments = [("big", 600)] + [(f"small-{i}", 3) for i in range(40)]
    for experiment, runs in experiments:  # a plan made for any experiment would expect a few runs
        specs = [NewRun(experiment, None, {"lr": "0.1"}, {}, None, 10.0, "u") for _ in range(runs)]
        made = store.create_runs(specs)
        store.write_metrics([(r.id, "loss", 0, i, 1, rng.random()) for i, r in enumerate(made)])
    with store.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE runs, latest_metrics, params")  # this schema's (the search path)
        if random_page_cost is not None:  # for this session: the pool's one connection, every search's
            conn.exec_driver_sql(f"SET random_page_cost = {random_page_cost}")
        conn.commit()
    by_loss = [OrderKey(Field("metrics", "loss"), True)]
    for _ in range(12):
        found = store.search_runs(
            experiments=["big"],
            where=parse_filter("metrics.loss > 0.1"),
            order_by=by_loss,
            limit=5,
            now_ms=now(),
        )
        assert len(found) == 5 and all(r.experiment_name == "big" for r in found)
    with store.engine.connect() as conn:  # the connection that ran every search
        name, text, generic = conn.exec_driver_sql(
            "SELECT name, statement, generic_plans FROM pg_prepared_statements "
            "WHERE strpos(statement, 'ORDER BY o.value') > 0"
        ).one()
        assert generic >= 1  # after psycopg's first five, and PostgreSQL's
        big = store.get_experiment("big").id
        assert f"runs.experiment_id IN ('{big}')" in text and "LIMIT 5" in text
        assert "run_key = o.run_key" in text  # most runs with a loss are big's: filters first
        loss = conn.exec_driver_sql("SELECT id FROM metric_keys WHERE name = 'loss'").scalar_one()
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN EXECUTE {name}({loss}, 0.1)"))
        conn.exec_driver_sql("SET plan_cache_mode = force_custom_plan")  # as the store's connections
    assert "ix_latest_key_value" in plan and "runs_pkey" in plan, plan  # the walk, runs by key
    assert "ix_runs_experiment_start" not in plan, plan  # not every run of the experiment first
    assert "Seq Scan" not in plan and "Materialize" not in plan and "Hash" not in plan, plan
    store.close()


def test_statements_sent_with_a_commit_that_has_no_events_land_or_are_undone_by_their_check(
    sql_store: SqlStore,
) -> None:
    store = sql_store
    p = "?" if store.url.startswith("sqlite") else "%s"

    def adding(name: str, refuse: bool) -> Callable[[Any], Callable[[], None]]:
        def send(cursor: Any) -> Callable[[], None]:
            cursor.execute(f"INSERT INTO metric_keys (name) VALUES ({p})", (name,))

            def check() -> None:
                if refuse:
                    raise RunNotActive("refused by its check")

            return check

        return send

    def write(name: str, refuse: bool) -> None:
        def fn(conn: Any) -> None:
            send = adding(name, refuse)
            if not store._send_at_commit(conn, send):
                with driver_cursor(conn) as cursor:
                    send(cursor)()

        store._write("add a key", fn)

    write("kept", refuse=False)
    with pytest.raises(RunNotActive, match="refused by its check"):
        write("undone", refuse=True)
    with store.engine.connect() as conn:
        names = {row[0] for row in conn.exec_driver_sql("SELECT name FROM metric_keys")}
    assert "kept" in names and "undone" not in names


def test_creating_no_runs_makes_nothing(store: Store) -> None:
    events = len(store.audit_events())
    assert store.create_runs([]) == []
    assert len(store.audit_events()) == events


def test_a_postgresql_walk_checks_filters_first_where_most_entries_it_meets_are_the_experiment_s(
    pg_schema_factory: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqlStore(pg_schema_factory(), actor="tester", audit_key=KEY)
    store.few_runs = 0
    rng = random.Random(5)
    for experiment, runs in (("big", 300), ("few", 12)):
        specs = [NewRun(experiment, None, {"lr": str(i % 3)}, {}, None, 10.0, "u") for i in range(runs)]
        made = store.create_runs(specs)
        store.write_metrics([(r.id, "loss", 0, i, 1, rng.random()) for i, r in enumerate(made)])
    by_loss = [OrderKey(Field("metrics", "loss"), True)]
    where = parse_filter("params.lr = '1' and metrics.loss > 0.2")

    def walk(experiment: str) -> list[str]:
        found = store.search_runs(
            experiments=[experiment], where=where, order_by=by_loss, limit=5, now_ms=now()
        )
        return [r.id for r in found]

    for _ in range(12):  # psycopg prepares a statement once it has run it a few times
        big, few = walk("big"), walk("few")
    with store.engine.connect() as conn:  # the pool's one connection, which ran every search
        texts = [
            row[0]
            for row in conn.exec_driver_sql(
                "SELECT statement FROM pg_prepared_statements WHERE strpos(statement, 'ORDER BY o.value') > 0"
            )
        ]
    big_text, few_text = ([t for t in texts if store.get_experiment(name).id in t] for name in ("big", "few"))
    assert len(big_text) == 1 and len(few_text) == 1
    assert "p1.run_key = o.run_key" in big_text[0]  # nearly every entry met is big's: filters first
    assert 'p1.run_key = runs."key"' in few_text[0]  # 12 of 312: runs first
    for share in (0.0, 1.01):  # the same answers whichever way the walk goes
        monkeypatch.setattr("plinth.store.sql.run_search.FILTERS_FIRST_SHARE", share)
        store._walk_shares.clear()
        assert walk("big") == big and walk("few") == few
    expected = sorted(
        (
            r
            for r in store.search_runs(
                experiments=["big"], where=where, order_by=[], limit=None, now_ms=now()
            )
        ),
        key=lambda r: -r.metrics["loss"],
    )
    assert big == [r.id for r in expected[:5]]
    store.close()
