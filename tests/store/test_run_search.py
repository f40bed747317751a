"""Run search on every backend: ordered by a metric, walking its index answers as sorting every run does."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from plinth.core.entities import RunStatus
from plinth.core.errors import InvalidInput
from plinth.core.filters import parse_filter, parse_order_by
from plinth.store.base import NewRun, PointRow, Store

NAN = math.nan


@pytest.fixture
def store(open_store: Callable[..., Store]) -> Store:
    return open_store(actor="tester")


def now() -> int:
    return time.time_ns() // 1_000_000


def create(store: Store, experiment: str, names: Sequence[str], **params: str) -> list[str]:
    """Runs created in one batch: they share a start time, so they tie on it in creation order."""
    specs = [NewRun(experiment, name, dict(params), {}, None, 60.0, "u") for name in names]
    return [run.id for run in store.create_runs(specs)]


def search(
    store: Store,
    where: str | None = None,
    order: Sequence[str] | None = None,
    limit: int | None = None,
    experiments: Sequence[str] | None = ("e",),
) -> list[str]:
    found = store.search_runs(
        experiments=experiments,
        where=parse_filter(where),
        order_by=parse_order_by(order),
        limit=limit,
        now_ms=now(),
    )
    return [run.name for run in found]


@pytest.fixture
def accs(store: Store) -> Store:
    """x1..x5 with acc 0.5, NaN, 0.5, none, 0.9: a tie, a NaN and a missing value."""
    ids = create(store, "e", ["x1", "x2", "x3", "x4", "x5"])
    values = {"x1": 0.5, "x2": NAN, "x3": 0.5, "x5": 0.9}
    store.write_metrics([(ids[int(n[1]) - 1], "acc", 0, 1, 1, v) for n, v in values.items()])
    store.few_runs = 0  # walk the metric's index however small the experiment
    return store


def test_ordered_by_a_metric_nan_and_missing_come_last_ties_newest_first(accs: Store) -> None:
    assert search(accs, order=["-metrics.acc"], limit=10) == ["x5", "x3", "x1", "x4", "x2"]
    assert search(accs, order=["metrics.acc"], limit=10) == ["x3", "x1", "x5", "x4", "x2"]
    assert search(accs, order=["-metrics.acc"], limit=2) == ["x5", "x3"]
    assert search(accs, order=["-metrics.acc"], limit=4) == ["x5", "x3", "x1", "x4"]
    assert search(accs, order=["metrics.acc", "-name"], limit=10) == ["x3", "x1", "x5", "x4", "x2"]
    assert search(accs, order=["metrics.acc", "name"], limit=3) == ["x1", "x3", "x5"]
    assert search(accs, order=["-metrics.unknown"], limit=3) == ["x5", "x4", "x3"]
    assert search(accs, order=["-metrics.acc"], limit=0) == []


def test_a_filter_applies_to_the_runs_without_the_metric_too(accs: Store) -> None:
    assert search(accs, "name != 'x5'", ["-metrics.acc"], limit=10) == ["x3", "x1", "x4", "x2"]
    assert search(accs, "metrics.acc is null", ["-metrics.acc"], limit=10) == ["x4"]
    assert search(accs, "name in ('x2', 'x4')", ["-metrics.acc"], limit=1) == ["x4"]


def test_a_negative_limit_or_offset_is_refused_saying_so(accs: Store) -> None:
    for limit, offset in ((-1, 0), (10, -1)):
        with pytest.raises(InvalidInput, match=f"got offset {offset} and limit {limit}"):
            accs.search_runs(
                experiments=["e"],
                where=None,
                order_by=parse_order_by(["-metrics.acc"]),
                limit=limit,
                now_ms=now(),
                offset=offset,
            )


def test_no_experiments_find_no_runs(accs: Store) -> None:
    assert search(accs, order=["-metrics.acc"], limit=10, experiments=[]) == []
    assert search(accs, experiments=[]) == []


@pytest.fixture
def corpus(store: Store) -> Store:
    """Two experiments of runs with tied, NaN, infinite and missing metrics, mixed params, some tags."""
    rng = random.Random(7)
    points: list[PointRow] = []
    for experiment, n in (("a", 30), ("b", 12)):
        names = [f"{experiment}{i}" for i in range(n)]
        for run_id in create(store, experiment, names):
            acc = rng.choice([0.1, 0.5, 0.5, 0.9, NAN, math.inf, -math.inf, None])
            if acc is not None:
                points.append((run_id, "acc", 0, 1, 1, acc))
            points.append((run_id, "loss", 0, 2, 1, rng.choice([rng.random(), NAN])))
            store.log_params(run_id, {"lr": rng.choice(["0.1", "0.01", "auto", "1e-3"])})
            if rng.random() < 0.5:
                store.set_tags(run_id, {"team": rng.choice(["Vision", "vision", "nlp"])})
            if rng.random() < 0.3:
                store.end_run(run_id, RunStatus.FAILED, "boom", now())
    store.write_metrics(points)
    store.few_runs = 0
    return store


WHERES = [
    None,
    "metrics.loss > 0.3",
    "params.lr = '0.1' or metrics.acc < 0.2",
    "not (metrics.loss < 0.5)",
    "metrics.acc is not null and status = 'FAILED'",
    "name like 'a1%'",
    "tags.team ilike 'VIS%' or tags.team is null",
]


@pytest.mark.parametrize(
    "order",
    [
        ["-metrics.acc"],
        ["metrics.acc"],
        ["-metrics.acc", "params.lr"],
        ["metrics.loss", "-metrics.acc"],
        ["metrics.acc", "-end_time"],
    ],
)
def test_walking_a_metric_index_answers_as_sorting_every_run_does(corpus: Store, order: list[str]) -> None:
    for experiments in (None, ["a"], ["a", "b"]):
        for where in WHERES:
            everything = search(corpus, where, order, None, experiments)  # read whole and sorted
            for limit in (1, 7, 25, 100):
                got = search(corpus, where, order, limit, experiments)
                assert got == everything[:limit], (experiments, where, limit)


def test_many_runs_come_back_whole(store: Store) -> None:
    names = [f"r{i}" for i in range(1200)]
    ids = create(store, "e", names, lr="0.1")
    store.write_metrics([(run_id, "acc", 0, 1, 1, i / 10) for i, run_id in enumerate(ids)])
    found = store.search_runs(experiments=["e"], where=None, order_by=(), limit=None, now_ms=now())
    assert len(found) == 1200
    assert all(run.params == {"lr": "0.1"} for run in found)
    assert {run.name: run.metrics["acc"] for run in found} == {n: i / 10 for i, n in enumerate(names)}


def test_a_metric_order_sorts_an_experiment_small_for_the_limit_and_walks_a_large_one(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plinth.store.sql import SqlStore
    from plinth.store.sql.run_search import SORTED_PER_RESULT, SqlRunSearch

    walked: list[int] = []
    walk = SqlRunSearch._by_metric

    def spy(self: SqlRunSearch, *args: object, **kwargs: object) -> object:
        walked.append(kwargs.get("limit", args[4]))  # type: ignore[arg-type]
        return walk(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SqlRunSearch, "_by_metric", spy)
    sql = SqlStore(store_url)
    try:
        sql.few_runs = 40
        ids = create(sql, "e", [f"r{i}" for i in range(60)])
        sql.write_metrics([(run_id, "acc", 0, 1, 1, (i * 7) % 60 / 60) for i, run_id in enumerate(ids)])
        everything = search(sql, "metrics.acc > 0.5", ["-metrics.acc"])
        limit = 60 // SORTED_PER_RESULT + 1  # 60 runs are fewer than 20 per result: sorted
        assert search(sql, "metrics.acc > 0.5", ["-metrics.acc"], limit=limit) == everything[:limit]
        assert walked == []
        assert search(sql, "metrics.acc > 0.5", ["-metrics.acc"], limit=2) == everything[:2]  # walked
        assert walked == [2]
        assert search(sql, "metrics.acc > 0.5", ["-metrics.acc"], limit=limit) == everything[:limit]
        assert walked == [2]  # what the experiment was found to hold decides again, not the last plan
    finally:
        sql.close()


AWKWARD_TEXTS = ["NULL", "", "a,b", "{x}", 'q"uote', "back\\slash", " spaced ", "naïve ☃", "null"]


def test_a_search_reads_back_every_value_of_its_runs_as_written(store: Store) -> None:
    """Params and tags whose text an array's form would quote (commas, braces, quotes, backslashes,
    the word NULL, nothing), metrics NaN and infinite, and a run with none of them: each run a
    search, an ordered search and a read of one run find carries exactly what was written."""
    texts = {f"k{i}": text for i, text in enumerate(AWKWARD_TEXTS)}
    full, _ = create(store, "e", ["full", "bare"])
    store.log_params(full, texts)
    store.set_tags(full, {f"t{i}": text for i, text in enumerate(reversed(AWKWARD_TEXTS))})
    metrics = {"nan": NAN, "inf": math.inf, "-inf": -math.inf, "tiny": 5e-324, "exact": 0.1 + 0.2}
    store.write_metrics([(full, key, 0, i, 1, value) for i, (key, value) in enumerate(metrics.items())])
    store.few_runs = 0  # the ordered search walks the metric's index

    def check(run: object) -> None:
        assert run.params == texts  # type: ignore[attr-defined]
        assert run.tags == {f"t{i}": t for i, t in enumerate(reversed(AWKWARD_TEXTS))}  # type: ignore[attr-defined]
        got = run.metrics  # type: ignore[attr-defined]
        assert set(got) == set(metrics) and math.isnan(got["nan"])
        numbers = {k: v for k, v in metrics.items() if k != "nan"}
        assert {k: v for k, v in got.items() if k != "nan"} == numbers

    for order in ([], ["-metrics.exact"]):
        found = store.search_runs(
            experiments=["e"], where=None, order_by=parse_order_by(order), limit=10, now_ms=now()
        )
        by_name = {run.name: run for run in found}
        assert set(by_name) == {"full", "bare"}
        check(by_name["full"])
        assert (by_name["bare"].params, by_name["bare"].tags, by_name["bare"].metrics) == ({}, {}, {})
    check(store.get_run(full))


SHOWN = (
    "SELECT current_setting('enable_sort'), current_setting('jit'), "
    "current_setting('max_parallel_workers_per_gather'), "
    "current_setting('transaction_isolation'), current_setting('transaction_read_only')"
)


def test_a_postgresql_search_leaves_its_connection_as_it_found_it(
    pg_schema_factory: Callable[[], str],
) -> None:
    """A search runs its statement in autocommit with settings of its own (or, when the walk of a
    metric's index finds too few runs, again in a read-only repeatable-read transaction): the
    pooled connection it gives back is in no transaction, with none of those settings."""
    import psycopg

    from plinth.store.sql import SqlStore

    sql = SqlStore(pg_schema_factory())
    try:
        ids = create(sql, "e", [f"r{i}" for i in range(30)])
        sql.write_metrics([(run_id, "acc", 0, i, 1, i / 10) for i, run_id in enumerate(ids[:20])])
        sql.few_runs = 0
        assert search(sql, "metrics.acc > 0.5", ["-metrics.acc"], 5) == ["r19", "r18", "r17", "r16", "r15"]
        walked_short = search(sql, None, ["-metrics.acc"], 25)  # 20 from the walk, 5 without the metric
        assert walked_short[:20] == [f"r{i}" for i in range(19, -1, -1)] and len(walked_short) == 25
        with sql.engine.connect() as conn:  # the pool's one connection: this thread made no other
            driver: Any = conn.connection.driver_connection
            assert driver.autocommit is False and driver.info.transaction_status == 0  # idle
            shown = conn.exec_driver_sql(SHOWN).one()
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test") as fresh:
            defaults = fresh.execute(SHOWN).fetchone()
        assert tuple(shown) == defaults and defaults[3:] == ("read committed", "off")
    finally:
        sql.close()
