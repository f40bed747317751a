"""Metrics are never silently lost (NaN, ±inf, a bad point), and filters never leak a raw error.

Store behaviour runs on SQLite and PostgreSQL (the `tracking` fixture).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from alembic import command
from sqlalchemy import text

import plinth
from plinth.core.errors import InvalidInput, PlinthWarning, StoreBusy
from plinth.core.filters import MAX_COMPARISONS, FilterSyntaxError
from plinth.core.settings import Settings
from plinth.store.base import PointRow
from plinth.store.engine import make_engine, writing
from plinth.store.migrate import alembic_config, upgrade
from plinth.tracking.context import Backend
from plinth.tracking.run import DROPPED_TAG
from plinth.tracking.writer import MetricWriter

INF = math.inf


def _names(where: str | None = None, order_by: Sequence[str] | None = None) -> list[str]:
    return [r.name for r in plinth.search_runs(experiment="m", where=where, order_by=order_by)]


# NaN and ±inf ------------------------------------------------------------------------------------


def test_nan_and_inf_are_stored_and_read_back_as_logged(tracking: Backend) -> None:
    with plinth.start_run(experiment="m") as run:
        run.log_metric("loss", float("nan"))
        run.log_metric("up", INF)
        run.log_metric("down", -INF)
        run.log_metric_points("series", [1.0, float("nan"), INF, -INF, 3.0])
        run.log_metric("after", 2.0)
    got = plinth.get_run(run.id)
    assert got.status is plinth.RunStatus.FINISHED
    assert math.isnan(got.metrics.pop("loss"))
    assert got.metrics == {"up": INF, "down": -INF, "series": 3.0, "after": 2.0}
    history = plinth.metric_history(run.id, "series")
    np.testing.assert_array_equal(history.values, [1.0, np.nan, INF, -INF, 3.0])
    assert math.isnan(history[1].value)
    frame = plinth.search_runs(experiment="m", as_frame=True)
    assert math.isnan(frame["metrics.loss"][0]) and frame["metrics.up"][0] == INF


@pytest.fixture
def losses(tracking: Backend) -> None:
    """Runs named by their loss: one, inf, -inf, nan, and 'none' without a loss."""
    for name, loss in [("one", 1.0), ("inf", INF), ("-inf", -INF), ("nan", math.nan), ("none", None)]:
        with plinth.start_run(experiment="m", name=name) as run:
            run.log_metric("other", 0.0)
            if loss is not None:
                run.log_metric("loss", loss)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("metrics.loss > 0", {"one", "inf"}),
        ("metrics.loss < 0", {"-inf"}),
        ("metrics.loss != 1", {"inf", "-inf"}),
        ("metrics.loss > 1e308", {"inf"}),
        ("metrics.loss < 1234567890123456789012345", {"one", "-inf"}),
        ("metrics.loss in (1, 2)", {"one"}),
        ("not (metrics.loss > 0)", {"-inf"}),
        ("metrics.loss is null", {"none"}),
        ("metrics.loss is not null", {"one", "inf", "-inf", "nan"}),
    ],
)
def test_nan_satisfies_no_comparison_and_inf_compares_as_a_number(
    losses: None, where: str, expected: set[str]
) -> None:
    assert set(_names(where)) == expected


def test_nan_sorts_last_both_ways(losses: None) -> None:
    assert _names(order_by=["metrics.loss"])[:3] == ["-inf", "one", "inf"]
    assert _names(order_by=["-metrics.loss"])[:3] == ["inf", "one", "-inf"]
    assert set(_names(order_by=["metrics.loss"])[3:]) == {"nan", "none"}
    assert set(_names(order_by=["-metrics.loss"])[3:]) == {"nan", "none"}


# a point the store refuses is dropped alone --------------------------------------------------------


def test_a_refused_point_is_dropped_alone_and_later_queries_work(tracking: Backend) -> None:
    run = plinth.start_run(experiment="m")
    run.log_metric("before", 1.0)
    tracking.writer.append((run.id, "bad", 0, 1, 0, object()))  # type: ignore[arg-type]
    run.log_metric("same_batch", 2.0)
    with pytest.warns(PlinthWarning, match="1 metric point could not be stored"):
        run.flush()
    run.log_metric("later", 3.0)
    assert plinth.metric_history(run.id, "later").values.tolist() == [3.0]
    assert [r.id for r in plinth.search_runs(experiment="m", where="metrics.later = 3")] == [run.id]
    run.end()
    got = plinth.get_run(run.id)
    assert got.metrics == {"before": 1.0, "same_batch": 2.0, "later": 3.0}
    assert got.tags[DROPPED_TAG] == "1"
    assert tracking.writer.dropped == 1


class _Store:
    """A store that refuses points whose value is text, and can be busy for a number of writes."""

    def __init__(self, busy: int = 0, busy_after: int = 0) -> None:
        self.written: list[PointRow] = []
        self.calls = 0
        self.busy, self.busy_after = busy, busy_after
        self.landed = {key: threading.Event() for key in ("a", "b", "c")}

    def write_metrics(self, points: Sequence[PointRow]) -> None:
        self.calls += 1
        if self.busy and self.calls > self.busy_after:
            self.busy -= 1
            raise StoreBusy("locked")
        if any(isinstance(p[5], str) for p in points):
            raise ValueError("not a number")
        if any(p[1] == "boom" for p in points):
            raise _Odd()
        self.written.extend(points)
        for point in points:
            self.landed[point[1]].set()


class _Odd(BaseException):
    """Not an Exception: the writer thread must outlive it too."""


def _point(key: str, value: object, step: int = 0) -> PointRow:
    return ("run", key, step, step, 0, value)  # type: ignore[return-value]


@pytest.mark.parametrize("poison", [_point("x", "text"), _point("boom", 1.0)])
def test_writer_thread_outlives_a_poisoned_point(poison: PointRow) -> None:
    store = _Store()
    writer = MetricWriter(store, interval_s=0.01)  # type: ignore[arg-type]
    writer.extend([_point("a", 1.0), poison, _point("b", 2.0)])
    assert store.landed["b"].wait(timeout=30)
    writer.append(_point("c", 3.0))  # written by the same background thread, after the failure
    assert store.landed["c"].wait(timeout=30)
    with pytest.warns(PlinthWarning, match=r"1 metric point could not be stored and was dropped"):
        writer.close()
    assert [p[1] for p in store.written] == ["a", "b", "c"]
    assert writer.dropped == 1


def test_a_busy_store_keeps_every_point_once() -> None:
    store = _Store(busy=1, busy_after=2)  # busy while the batch is being split
    writer = MetricWriter(store, interval_s=3600)  # type: ignore[arg-type]
    points = [_point("a", 1.0, 0), _point("x", "text", 1), _point("a", 2.0, 2), _point("b", 3.0, 3)]
    writer.extend(points)
    with pytest.raises(StoreBusy):
        writer.flush()
    assert writer.pending > 0 and writer.dropped == 0
    with pytest.warns(PlinthWarning, match="1 metric point "):
        writer.flush()
    assert store.written == [points[0], points[2], points[3]]
    writer.close()


# values checked where they are logged ----------------------------------------------------------


@pytest.mark.parametrize(
    ("log", "fragment"),
    [
        (lambda r: r.log_metric("a", True), "boolean"),
        (lambda r: r.log_metric("a", 10**400), "beyond the range"),
        (lambda r: r.log_metric("a", "0.5"), "must be a number"),
        (lambda r: r.log_metric("a", 1.0, step=2**63), "2**63"),
        (lambda r: r.log_metric("a", 1.0, timestamp_ms="now"), "epoch milliseconds"),
        (lambda r: r.log_metric("a", 1.0, timestamp_ms=-1), "2**63"),
        (lambda r: r.log_metric("\ud800", 1.0), "lone surrogate"),
        (lambda r: r.log_metric_points("a", np.array([True, False])), "booleans"),
        (lambda r: r.log_metric_points("a", ["0.5", "x"]), "it holds text (dtype <U3); convert numbers"),
        (lambda r: r.log_metric_points("a", [1 + 2j]), "complex numbers (dtype complex128)"),
        (lambda r: r.log_metric_points("a", [[1.0, 2.0]]), "shape (1, 2); log a 1-D series"),
        (lambda r: r.log_metric_points("a", [Decimal("1.5"), "x"]), "'a[1]' must be a number, got str"),
        (lambda r: r.log_metric("a", "0.5"), "convert a number written as text with float(text)"),
        (lambda r: r.log_metric("a", 1 + 2j), "abs(value)"),
        (lambda r: r.log_metric("a", Decimal("sNaN")), "log float('nan') instead"),
        (lambda r: r.log_metric("a", Decimal("1e999")), "beyond the range"),
        (lambda r: r.log_metric("a", Fraction(10**400, 3)), "beyond the range"),
        (lambda r: r.log_metric_points("a", [1.0], steps=np.array([2**64 - 1], dtype=np.uint64)), "2**63"),
        (lambda r: r.log_param("\ud800", 1), "lone surrogate"),
        (lambda r: r.log_param("p", "\udc00"), "lone surrogate"),
    ],
)
def test_metric_values_are_checked_when_logged(tracking: Backend, log: object, fragment: str) -> None:
    with plinth.start_run(experiment="m") as run:
        with pytest.raises(InvalidInput) as info:
            log(run)  # type: ignore[operator]
        assert fragment in str(info.value)
        assert "convert booleans" not in str(info.value) or "booleans" in fragment
    assert tracking.writer.dropped == 0


def test_real_numbers_of_any_type_are_metrics(tracking: Backend) -> None:
    with plinth.start_run(experiment="m") as run:
        run.log_metric("decimal", Decimal("1.5"))
        run.log_metric("fraction", Fraction(1, 4))
        run.log_metric("float32", np.float32(0.5))
        run.log_metric("nan", Decimal("NaN"))
        run.log_metric("inf", Decimal("-Infinity"))
        run.log_metric_points("series", [Decimal("1.5"), Fraction(1, 2), 3, np.int64(4)])
    got = plinth.get_run(run.id).metrics
    assert math.isnan(got.pop("nan"))
    assert got == {"decimal": 1.5, "fraction": 0.25, "float32": 0.5, "inf": -INF, "series": 4.0}
    np.testing.assert_array_equal(plinth.metric_history(run.id, "series").values, [1.5, 0.5, 3.0, 4.0])


# like and ilike ------------------------------------------------------------------------------------


@pytest.fixture
def optimizers(settings: Settings) -> None:
    """Finished runs named by their optimizer, and one still running (with slow heartbeats)."""
    plinth.configure(replace(settings, heartbeat_s=60))
    for name in ("adam", "AdamW", "ADAM_x", "ADAMzx"):
        with plinth.start_run(experiment="m", name=name, params={"optimizer": name}, tags={"t": name}):
            pass
    running = plinth.start_run(experiment="m", name="running", params={"optimizer": "sgd"})
    assert running.id


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("params.optimizer like 'adam%'", {"adam"}),
        ("params.optimizer like 'Adam%'", {"AdamW"}),
        ("params.optimizer ilike 'adam%'", {"adam", "AdamW", "ADAM_x", "ADAMzx"}),
        ("params.optimizer not like 'adam%'", {"AdamW", "ADAM_x", "ADAMzx", "running"}),
        ("params.optimizer not ilike 'ADAM%'", {"running"}),
        ("tags.t like 'ADAM%'", {"ADAM_x", "ADAMzx"}),
        ("params.optimizer like 'ADAM_x'", {"ADAM_x", "ADAMzx"}),
        ("params.optimizer like 'ADAM\\_x'", {"ADAM_x"}),
        ("params.optimizer ilike 'adam\\_%'", {"ADAM_x"}),
        ("status like '%RUN%'", {"running"}),
        ("status ilike 'fin%'", {"adam", "AdamW", "ADAM_x", "ADAMzx"}),
        ("status not like '%RUN%'", {"adam", "AdamW", "ADAM_x", "ADAMzx"}),
        ("status like 'run%'", set()),
    ],
)
def test_like_is_case_sensitive_and_ilike_is_not_on_every_backend(
    optimizers: None, where: str, expected: set[str]
) -> None:
    assert set(_names(where)) == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("params.opt ilike 'éclair'", {"Éclair", "éclair", "ÉCLAIR"}),
        ("params.opt ilike 'ÉCL%'", {"Éclair", "éclair", "ÉCLAIR"}),
        ("params.opt like 'éclair'", {"éclair"}),
        ("params.opt not ilike 'Éclair'", {"eclair", "Straße"}),
        ("name ilike 'straSSe' or name ilike 'STRASSE'", set()),
        ("tags.t ilike 'STRAßE'", {"Straße"}),
        ("name ilike 'É%'", {"Éclair", "éclair", "ÉCLAIR"}),
    ],
)
def test_ilike_folds_every_letter_alike_on_every_backend(
    tracking: Backend, where: str, expected: set[str]
) -> None:
    for name in ("Éclair", "éclair", "ÉCLAIR", "eclair", "Straße"):
        with plinth.start_run(experiment="m", name=name, params={"opt": name}, tags={"t": name}):
            pass
    assert set(_names(where)) == expected


# filters: the right answer, or an InvalidInput with the position ---------------------------------


def test_long_numbers_are_numbers(optimizers: None) -> None:
    seed = "1234567890123456789012345"
    with plinth.start_run(experiment="m", name="seeded", params={"seed": seed}) as run:
        run.log_metric("big", 1e24)
    assert _names(f"params.seed = {seed}") == ["seeded"]
    assert _names(f"metrics.big < {seed}") == ["seeded"]
    assert _names(f"params.seed > {seed[:-1]}") == ["seeded"]
    assert _names(f"params.seed = {'1' * 5000}") == []


@pytest.mark.parametrize(
    ("where", "position", "fragment"),
    [
        (f"metrics.a < {'1' * 5000}", 12, "beyond the range of a 64-bit float"),
        (f"params.a > -{'9' * 400}", 11, "beyond the range"),
        ("start_time > 1e999", 13, "beyond the range"),
        ("params.optimizer = 'a\ud800b'", 21, "lone surrogate"),
        ("metrics.`\udfff` > 1", 9, "lone surrogate"),
        (" and ".join(["metrics.a > 0"] * 3000), MAX_COMPARISONS * 18, "at most 500 comparisons"),
        # the 25th level, counted from inside, is the 'and' of the third group from outside
        ("(metrics.a > 0 or (metrics.a > 1 and " * 15 + "metrics.a > 2" + "))" * 15, 2 * 37 + 19, "nested"),
        ("params.optimizer like 'adam\\\\'", 22, "ends with a backslash"),
        ("params.optimizer in (" + ",".join(["'x'"] * 5001) + ")", 17, "at most 5000 list values"),
    ],
)
def test_bad_filters_are_invalid_input_with_the_position(
    tracking: Backend, where: str, position: int, fragment: str
) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        plinth.search_runs(where=where)
    assert info.value.position == position, str(info.value)
    assert fragment in info.value.reason
    str(info.value).encode("utf-8")  # printable, even when the filter holds a surrogate


def test_the_largest_filters_allowed_run_on_every_backend(optimizers: None) -> None:
    many = " and ".join(["params.optimizer like 'A%'"] * MAX_COMPARISONS)
    assert set(_names(many)) == {"AdamW", "ADAM_x", "ADAMzx"}
    deep = "params.optimizer = 'adam'"
    for i in range(11):  # alternately false and true for every run; 22 levels of not, and, or
        deep = f"not ({deep} {'or' if i % 2 else 'and'} status in ('FAILED', 'KILLED'))"
    assert set(_names(deep)) == {"adam", "AdamW", "ADAM_x", "ADAMzx", "running"}
    listed = "params.optimizer in (" + ", ".join(f"'{i}'" for i in range(4999)) + ", 'adam')"
    assert _names(listed) == ["adam"]


@pytest.mark.parametrize(
    ("where", "position"),
    [("params.p = 'a\x00b'", 13), ("tags.`a\x00b` = 'x'", 7), ("name like '%\x00%'", 12)],
)
def test_a_nul_in_a_filter_is_invalid_input_with_the_position(
    tracking: Backend, where: str, position: int
) -> None:
    with pytest.raises(FilterSyntaxError, match="NUL character") as info:
        plinth.search_runs(where=where)
    assert info.value.position == position


NUL = "a\x00b"
NUL_LOOKUPS = {
    "run": lambda be, run_id: plinth.get_run(NUL),
    "runs of an experiment": lambda be, run_id: plinth.search_runs(experiment=NUL),
    "experiment": lambda be, run_id: be.store.get_experiment(NUL),
    "dataset": lambda be, run_id: plinth.get_dataset(NUL),
    "datasets": lambda be, run_id: plinth.list_datasets(NUL),
    "model version": lambda be, run_id: plinth.get_model_version(NUL, 1),
    "model versions": lambda be, run_id: plinth.list_model_versions(NUL),
    "alias": lambda be, run_id: be.store.resolve_alias("m", NUL),
    "metric of a run": lambda be, run_id: plinth.metric_history(run_id, NUL),
    "flow run": lambda be, run_id: be.store.get_flow_run(NUL),
    "audit events": lambda be, run_id: be.store.audit_events(entity_id=NUL),
}


@pytest.mark.parametrize("lookup", list(NUL_LOOKUPS))
def test_a_nul_in_a_looked_up_name_or_id_is_invalid_input_on_every_backend(
    tracking: Backend, lookup: str
) -> None:
    with plinth.start_run(experiment="m") as run:
        run.log_metric("loss", 1.0)
    with pytest.raises(InvalidInput, match=r"'a\\x00b' holds a (NUL character|control character)"):
        NUL_LOOKUPS[lookup](tracking, run.id)
    assert plinth.get_run(run.id).metrics == {"loss": 1.0}  # the store still answers


def test_a_lone_surrogate_in_a_looked_up_id_is_invalid_input_not_a_driver_error(tracking: Backend) -> None:
    with pytest.raises(InvalidInput, match=r"holds a lone surrogate \(\\udce9\) at position 3"):
        plinth.get_run("caf\udce9")
    with pytest.raises(InvalidInput, match="lone surrogate"):
        tracking.store.get_experiment("caf\udce9")


def test_a_run_failing_with_a_nul_in_its_message_is_still_ended(tracking: Backend) -> None:
    with pytest.raises(ValueError, match="bad"), plinth.start_run(experiment="m") as run:
        raise ValueError("bad\x00byte")
    stored = plinth.get_run(run.id)
    assert stored.status is plinth.RunStatus.FAILED and stored.error == "ValueError: bad\\x00byte"


def test_order_by_with_a_surrogate_is_invalid_input(tracking: Backend) -> None:
    with pytest.raises(FilterSyntaxError, match="lone surrogate") as info:
        plinth.search_runs(order_by=["-metrics.`\ud800`"])
    assert info.value.position == 10


def test_nan_stored_by_an_older_plinth_on_postgresql_becomes_null(
    pg_schema_factory: Callable[[], str],
) -> None:
    engine = make_engine(pg_schema_factory())
    try:
        with writing(engine) as conn:
            command.upgrade(alembic_config(conn), "0005")
            conn.execute(text("INSERT INTO metrics VALUES (1, 1, 0, 0, 5, 'NaN'), (1, 1, 1, 0, 5, 'inf')"))
            conn.execute(text("INSERT INTO latest_metrics VALUES (1, 1, 1, 0, 5, 'NaN')"))
        upgrade(engine)
        with engine.connect() as conn:
            values = conn.execute(text("SELECT value FROM metrics ORDER BY step")).scalars().all()
            latest = conn.execute(text("SELECT value FROM latest_metrics")).scalar()
        assert values == [None, INF] and latest is None
    finally:
        engine.dispose()
