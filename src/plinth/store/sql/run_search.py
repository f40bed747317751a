"""Reading runs back, one or by search, as a part of `SqlStore`.

A search reads the matching rows of `runs` (one statement, or two when ordered by a metric), then
the params, tags and latest metrics of those runs in one more; on PostgreSQL the statement that
reads the rows reads them too (`_DETAILS_PG`). Ordered by a metric and limited,
it walks the metric's (key_id, value) index and stops at the limit instead of sorting every run;
runs whose metric is NaN or missing come after, from a second statement, only when the first
found fewer than the limit. Experiments of few runs are read whole and sorted instead.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, select

from plinth.core import entities as e
from plinth.core.errors import InvalidInput, NotFound
from plinth.core.filters import Expr, OrderKey, fields_of
from plinth.core.ids import now_ms
from plinth.store import schema as t
from plinth.store.engine import driver_cursor, pipeline, refuse_unstorable
from plinth.store.search import RUN_COLUMNS, RUN_KEY, STALE_BEATS, SearchCompiler, Sql
from plinth.store.sql.artifacts import artifacts_of
from plinth.store.sql.experiments import SqlExperiments

_CHUNK = 500  # run keys per statement that reads details: far below every backend's limit on marks
_NOT_NUMBER = "CAST(NULL AS DOUBLE PRECISION)"
_NO_KEY = "CAST(NULL AS BIGINT)"
_DETAILS = (
    f'SELECT 0, run_key, "key", value, {_NOT_NUMBER}, {_NO_KEY} FROM params WHERE run_key IN ({{keys}}) '
    f'UNION ALL SELECT 1, run_key, "key", value, {_NOT_NUMBER}, {_NO_KEY} FROM tags '
    "WHERE run_key IN ({keys}) "
    "UNION ALL SELECT 2, run_key, CAST(NULL AS TEXT), CAST(NULL AS TEXT), value, key_id FROM latest_metrics "
    "WHERE run_key IN ({keys})"
)
"""Params (0), tags (1) and latest metrics (2) of some runs, one row per value; a metric comes with
its key's id, named from `metric_keys` once per store (a name never changes)."""
_SEARCH_PG = (("jit", "off"), ("max_parallel_workers_per_gather", "0"))
"""Settings of a search's transaction on PostgreSQL (see `_find_pg`): no JIT or parallel workers,
which take longer to start than a search of a few rows runs. They ride with the search's first
statement (and the transaction's BEGIN, if any) in one round trip, and end with the transaction."""
_WALK_PG: list[tuple[str, str | None]] = [
    ("enable_sort", "off"),
    ("enable_seqscan", "off"),
    ("enable_material", "off"),
    ("enable_hashjoin", "off"),
    ("enable_mergejoin", "off"),
]
"""Before a search ordered by a metric walks its index. PostgreSQL cannot estimate filters on
subqueries and guesses a few matches, so its choices for the walk turn on small changes in
statistics:
- a full sort of every run's value costs about as much, for a few, as the walk (5,000 runs,
  a 10% filter: 1 ms walked, 17 ms sorted); the rest of the search's read-only transaction
  sorts nothing a walk could not;
- reading every run of the experiments once, materialized or hashed, and matching each entry
  against them costs about as much, for a few, as looking each entry's run up by its key: 9.4
  against 0.7 ms for a walk of 96 entries among 5,000 runs.
A walk reads only by index (the metric's, then each run and its values by key), so the other
ways are left for where there is none; `_AFTER_WALK_PG` gives them back to what follows it."""
_AFTER_WALK_PG: list[tuple[str, str | None]] = [(name, None) for name, _ in _WALK_PG[1:]]
"""The walk's join settings back to the session's (None: `SET LOCAL ... TO DEFAULT`), for the
statement that reads the runs without a value after a walk."""
_KEEP_PLAN_PG = ("plan_cache_mode", "auto")
"""Before a walk whose filter compares only metrics, params and tags, one plan may serve every
search of its shape (the store's connections plan each statement anew:
`engine._postgresql_engine`). What the walk's plan turns on is written in its text: the metric's
key, the experiments (a plan made for any experiment guesses one of a few runs, and checks the
filter on every run of the experiment before the walk: 7.7 ms against 0.5 ms) and the limit.
The values left bound are the filter's, compared in subqueries, which the planner cannot
estimate whatever they are (a run attribute compared to a value, it could: such a walk is
planned each time). Planning took 0.25 to 0.4 ms of a search of 5,000 runs that ran for
0.45 ms. PostgreSQL plans the first five searches itself, and goes on planning should the kept
plan cost more than theirs."""
_PLAN_EACH_PG = ("plan_cache_mode", "force_custom_plan")
"""Back to each statement planned for its values, for a statement after a walk."""
Settings = list[tuple[str, str | None]]
"""PostgreSQL settings for the rest of a transaction, sent with its next statement (`_select`);
a value of None puts the setting back to the session's."""
_DETAILS_PG = (
    ', ARRAY(SELECT unnest(ARRAY[d."key", d.value]) FROM params d WHERE d.run_key = runs."key"), '
    'ARRAY(SELECT unnest(ARRAY[d."key", d.value]) FROM tags d WHERE d.run_key = runs."key"), '
    'ARRAY(SELECT d.key_id FROM latest_metrics d WHERE d.run_key = runs."key" ORDER BY d.key_id), '
    'ARRAY(SELECT d.value FROM latest_metrics d WHERE d.run_key = runs."key" ORDER BY d.key_id)'
)
"""Params and tags (each as one array of keys and values, alternating) and latest metrics (key
ids, then values) of each run a PostgreSQL statement of `_select` returns, read in that statement:
the planner evaluates them after its sort and limit, for the rows returned only, and the search
takes one round trip less than with `_DETAILS` after it."""
_FROM_RUNS = "SELECT {columns} FROM runs"
_RANKED = 'SELECT {columns} FROM latest_metrics o JOIN runs ON runs."key" = o.run_key'
_UNRANKED = (
    'NOT EXISTS (SELECT 1 FROM latest_metrics o WHERE o.run_key = runs."key" AND o.key_id = ? '
    "AND o.value IS NOT NULL)"
)

_SAMPLED = 200
"""Index entries a walk meets first that `_filters_first` looks at."""
FILTERS_FIRST_SHARE = 0.25
"""The share of those entries that must be runs of the experiments searched for the walk to
check its filter on each entry before looking the entry's run up (PostgreSQL)."""
_SAMPLE_KEPT_S = 300.0
"""How long a sampled share decides walks of its metric and experiments."""
_SAMPLES_KEPT = 1024
"""Sampled shares a store keeps at most (it forgets them all past that)."""

RunRow = Sequence[Any]
"""A row of RUN_COLUMNS (on PostgreSQL, followed by the run's details: `_DETAILS_PG`)."""
_KEY, _ID, _EXPERIMENT, _ENV = 0, 1, 2, 11  # where a RunRow holds what hydration looks up
_CARRIED = 12  # where the details of a row read with _DETAILS_PG start
_STATUSES = {status.value: status for status in e.RunStatus}
Details = tuple[dict[str, str], dict[str, str], dict[str, float]]
"""A run's params, tags and latest metrics."""


SORTED_PER_RESULT = 20
"""A search ordered by a metric sorts its experiments' runs when they number fewer than this many
per result asked for: walking the metric's index passes every run that lacks the filter's
values (all of them when fewer match than were asked for), while sorting reads only those that
match, so below about this ratio sorting reads less."""


class SqlRunSearch(SqlExperiments):
    """Run methods of SqlStore that read: a run by id, and runs by filter and order."""

    few_runs = 1000
    """Experiments holding fewer runs than this (or than `SORTED_PER_RESULT` times the results
    asked for) are read whole and sorted, which beats walking a metric's index over every
    experiment's runs; 0 always walks the index."""

    @property
    def _columns(self) -> str:
        """What a statement of `_select` reads of each run: its row, and on PostgreSQL its details."""
        return RUN_COLUMNS if self._sqlite else RUN_COLUMNS + _DETAILS_PG

    @property
    def _from_runs(self) -> str:
        return _FROM_RUNS.format(columns=self._columns)

    def get_run(self, run_id: str, *, now_ms: int | None = None) -> e.Run:
        def fetch(conn: Connection) -> e.Run:
            conn.begin()
            found = self._select(conn, Sql(self._from_runs + " WHERE runs.id = ?", (run_id,)))
            if not found:
                raise NotFound(f"No run with id {run_id!r}; list runs with `plinth runs list`.")
            return self._runs(conn, found, now_ms, with_details=True)[0]

        return self._read("read a run", fetch)

    def search_runs(
        self,
        *,
        experiments: Sequence[str] | None,
        where: Expr | None,
        order_by: Sequence[OrderKey],
        limit: int | None,
        now_ms: int,
        offset: int = 0,
    ) -> list[e.Run]:
        if offset < 0 or (limit is not None and limit < 0):
            raise InvalidInput(f"offset and limit must be 0 or more, got offset {offset} and limit {limit}.")

        def fetch(conn: Connection) -> list[e.Run]:
            reach = None if limit is None else limit + offset

            def find(settings: Settings, alone: bool) -> list[RunRow]:
                return self._find(conn, experiments, where, order_by, reach, now_ms, settings, alone=alone)

            if self._sqlite:
                conn.begin()  # one transaction, one snapshot, for every statement of the search
                rows = find([], False)
            else:
                rows = self._find_pg(conn, find)
            return self._runs(conn, rows[offset:], now_ms, with_details=False)

        return self._read("search runs", fetch)

    def count_runs(self, *, experiments: Sequence[str] | None, where: Expr | None, now_ms: int) -> int:
        def fetch(conn: Connection) -> int:
            conn.begin()
            ids = None if experiments is None else [self._experiment(conn, n, False).id for n in experiments]
            if ids == []:
                return 0
            compiler = self._compiler(conn, now_ms, semi_joins=True)  # every match is visited
            query = Sql("SELECT count(*) FROM runs") + _where(_conditions(compiler, ids, where))
            refuse_unstorable(query.params)
            found: int = conn.exec_driver_sql(query.for_driver(self._sqlite), query.params).scalar_one()
            return found

        return self._read("count runs", fetch)

    def _find_pg(self, conn: Connection, find: Callable[[Settings, bool], list[RunRow]]) -> list[RunRow]:
        """`_find` (called as `find(settings, alone)`) on PostgreSQL, in one snapshot and, where
        one statement finds every run, one round trip without BEGIN or COMMIT: in autocommit,
        the statements `_select` sends together in a pipeline (the search's settings, then the
        statement) share the transaction PostgreSQL makes for them until the pipeline's sync.
        A search that needs a second statement (a walk that found fewer runs than asked for) is
        made again in a read-only, repeatable-read transaction, so both see one snapshot."""
        conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            return find(list(_SEARCH_PG), True)
        except _Unfinished:
            conn.commit()  # the statements' own transaction has ended: this ends SQLAlchemy's
        conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        conn.begin()
        return find(list(_SEARCH_PG), False)

    def _find(
        self,
        conn: Connection,
        experiments: Sequence[str] | None,
        where: Expr | None,
        order_by: Sequence[OrderKey],
        limit: int | None,
        at_ms: int,
        settings: Settings,
        *,
        alone: bool = False,
    ) -> list[RunRow]:
        """The rows of the runs a search finds, in order.

        Raises:
            _Unfinished: `alone` was asked for and one statement cannot find every run."""
        ids = None if experiments is None else [self._experiment(conn, n, False).id for n in experiments]
        if ids == []:
            return []
        by_metric = bool(order_by) and order_by[0].field.kind == "metrics"
        if (
            limit is not None
            and by_metric
            and not self._is_small(conn, ids, max(self.few_runs, SORTED_PER_RESULT * limit))
        ):
            return self._by_metric(conn, ids, where, order_by, limit, at_ms, settings, alone=alone)
        compiler = self._compiler(conn, at_ms)
        query = Sql(self._from_runs) + _where(_conditions(compiler, ids, where))
        return self._select(conn, query + " ORDER BY " + compiler.order(order_by), limit, settings)

    def _by_metric(
        self,
        conn: Connection,
        ids: list[str] | None,
        where: Expr | None,
        order_by: Sequence[OrderKey],
        limit: int,
        at_ms: int,
        settings: Settings,
        *,
        alone: bool = False,
    ) -> list[RunRow]:
        """Runs ordered by a metric first: those with a value walk its index, the others follow
        (with `alone`, `_Unfinished` is raised instead of reading them)."""
        first, rest = order_by[0], order_by[1:]
        key_id = self._key_id(conn, first.field.name, False)
        # Filters that look runs up by the index entry's key are checked before the entry's run is
        # read, so a run's row is read only once it passes (see `_filters_first`).
        early = self._sqlite or self._filters_first(conn, key_id, ids, first.descending)
        ranked = self._compiler(conn, at_ms, run_key="o.run_key" if early else RUN_KEY)
        kept = not self._sqlite and _keeps_a_plan(ids, where)
        # a kept plan's key and experiments are in its text (_KEEP_PLAN_PG)
        metric = Sql(f"o.key_id = {int(key_id)}") if kept else Sql("o.key_id = ?", (key_id,))
        conditions = [metric + " AND o.value IS NOT NULL"]
        if ids is not None:
            conditions.append(_in_experiments(ids, written=kept))
        if where is not None:
            conditions.append(ranked.where(where))
        query = Sql(_RANKED.format(columns=self._columns)) + _where(conditions)
        if not self._sqlite:
            settings.extend(_WALK_PG)
        if kept:
            settings.append(_KEEP_PLAN_PG)
        direction = "DESC" if first.descending else "ASC"
        # the limit in the text, not bound: a plan kept for every value (_KEEP_PLAN_PG) knows it
        walk = query + f" ORDER BY o.value {direction}, " + ranked.order(rest) + f" LIMIT {int(limit)}"
        rows = self._select(conn, walk, None, settings)
        if len(rows) < limit:
            if alone:
                raise _Unfinished
            unranked = self._compiler(conn, at_ms)
            conditions = [*_conditions(unranked, ids, where), Sql(_UNRANKED, (key_id,))]
            query = Sql(self._from_runs) + _where(conditions) + " ORDER BY " + unranked.order(rest)
            after = [] if self._sqlite else [*_AFTER_WALK_PG, *([_PLAN_EACH_PG] if kept else [])]
            rows += self._select(conn, query, limit - len(rows), after or None)
        return rows

    def _filters_first(self, conn: Connection, key_id: int, ids: list[str] | None, descending: bool) -> bool:
        """Whether a walk of metric `key_id`'s index (PostgreSQL) checks its filter on each entry
        before it reads the entry's run: when at least `FILTERS_FIRST_SHARE` of the entries it
        meets first are runs of the experiments searched (always, searching every experiment).

        Checked first, the filter costs an entry of another experiment its lookups as well as
        the run's row, which tells its experiment; checked after, every entry costs that row.
        The share is sampled from the first `_SAMPLED` entries, in the walk's order, and kept
        for `_SAMPLE_KEPT_S`: it picks the walk's plan, never its answer.
        """
        if ids is None:
            return True
        found = (key_id, tuple(sorted(ids)), descending)
        now = time.monotonic()
        kept = self._walk_shares.get(found)
        if kept is not None and now - kept[1] < _SAMPLE_KEPT_S:
            return kept[0]
        direction = "DESC" if descending else "ASC"
        query = (
            Sql("SELECT count(*), count(*) FILTER (WHERE ")
            + _in_experiments(ids)
            + Sql(
                ") FROM (SELECT o.run_key FROM latest_metrics o WHERE o.key_id = ? AND o.value IS NOT NULL "
                f'ORDER BY o.value {direction} LIMIT {_SAMPLED}) o JOIN runs ON runs."key" = o.run_key',
                (key_id,),
            )
        )
        total, ours = conn.exec_driver_sql(query.for_driver(self._sqlite), query.params).one()
        early = total == 0 or ours >= FILTERS_FIRST_SHARE * total
        if len(self._walk_shares) >= _SAMPLES_KEPT:
            self._walk_shares.clear()
        self._walk_shares[found] = (early, now)
        return early

    def _compiler(
        self, conn: Connection, at_ms: int, run_key: str = RUN_KEY, *, semi_joins: bool = False
    ) -> SearchCompiler:
        key_id = functools.partial(self._key_id, conn, create=False)
        return SearchCompiler(key_id, at_ms, sqlite=self._sqlite, run_key=run_key, semi_joins=semi_joins)

    def _is_small(self, conn: Connection, experiment_ids: list[str] | None, runs: int) -> bool:
        """Whether the experiments hold fewer than `runs` runs (never so for all experiments).

        A count an experiment is found to reach is remembered: should runs go, only the plan
        changes, never the answer.
        """
        if experiment_ids is None or self.few_runs <= 0:
            return False
        known = self._large_experiments
        if all(known.get(exp_id, 0) >= runs for exp_id in experiment_ids):
            return False
        query = (
            Sql("SELECT count(*) FROM (SELECT 1 FROM runs WHERE runs.experiment_id IN (")
            + Sql.marks(experiment_ids)
            + Sql(") LIMIT ?) few", (runs,))
        )
        found = conn.exec_driver_sql(query.for_driver(self._sqlite), query.params).scalar_one()
        if found < runs:
            return True
        if len(experiment_ids) == 1:
            known[experiment_ids[0]] = max(known.get(experiment_ids[0], 0), runs)
        return False

    def _select(
        self, conn: Connection, query: Sql, limit: int | None = None, settings: Settings | None = None
    ) -> list[RunRow]:
        """Rows of `query` through the driver's cursor: SQLAlchemy's cost per row would show here.

        Pending PostgreSQL `settings` (emptied here) go first, in the same round trip."""
        if limit is not None:
            query = query + Sql(" LIMIT ?", (limit,))
        refuse_unstorable(query.params)
        with driver_cursor(conn) as cursor:
            with pipeline(conn) if settings else contextlib.nullcontext():
                if settings:
                    values = [(name, value) for name, value in settings if value is not None]
                    if values:
                        marks = ", ".join(["set_config(%s, %s, true)"] * len(values))
                        cursor.execute(f"SELECT {marks}", [part for pair in values for part in pair])
                    for name, value in settings:
                        if value is None:  # the names are this module's own
                            cursor.execute(f"SET LOCAL {name} TO DEFAULT")
                    settings.clear()
                cursor.execute(query.for_driver(self._sqlite), query.params)
            rows: list[RunRow] = cursor.fetchall()
        return rows

    def _runs(
        self, conn: Connection, rows: Sequence[RunRow], at_ms: int | None, *, with_details: bool
    ) -> list[e.Run]:
        """`Run`s from rows of RUN_COLUMNS, with their params, tags and latest metrics."""
        if not rows:
            return []
        at_ms = at_ms if at_ms is not None else now_ms()
        if len(rows[0]) > _CARRIED:
            details = self._carried(conn, rows)
        else:
            details = self._details(conn, [row[_KEY] for row in rows])
        names = {exp: self._experiment(conn, exp, False).name for exp in {row[_EXPERIMENT] for row in rows}}
        envs: dict[str, Any] = {}
        arts: dict[int, list[e.Artifact]] = {}
        if with_details:
            digests = [row[_ENV] for row in rows if row[_ENV]]
            envs = {
                d: json.loads(b)
                for d, b in conn.execute(select(t.environments).where(t.environments.c.digest.in_(digests)))
            }
            arts = {row[_KEY]: artifacts_of(conn, row[_KEY], row[_ID], "") for row in rows}
        return [_run(row, at_ms, names, details[row[_KEY]], envs, arts) for row in rows]

    def _details(self, conn: Connection, keys: list[int]) -> dict[int, Details]:
        out: dict[int, Details] = {key: ({}, {}, {}) for key in keys}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            query = Sql(_DETAILS.format(keys=", ".join(["?"] * len(chunk))), tuple(chunk) * 3)
            with driver_cursor(conn) as cursor:  # binds run keys only: no text to check
                cursor.execute(query.for_driver(self._sqlite), query.params)
                found = cursor.fetchall()
            names = self._key_names
            for kind, run_key, name, text, number, key_id in found:
                if kind == 2:  # NULL stands for a NaN metric
                    if key_id not in names:  # a metric not seen before: every new one named at once
                        names = self._metric_names(conn, {row[5] for row in found if row[0] == 2})
                    out[run_key][2][names[key_id]] = math.nan if number is None else number
                else:
                    out[run_key][kind][name] = text
        return out

    def _carried(self, conn: Connection, rows: Sequence[RunRow]) -> dict[int, Details]:
        """The details rows read with `_DETAILS_PG` carry, by run key."""
        names = self._metric_names(conn, {k for row in rows for k in row[_CARRIED + 2]})
        out: dict[int, Details] = {}
        for row in rows:
            params, tags, key_ids, values = row[_CARRIED:]
            metrics = {names[k]: math.nan if v is None else v for k, v in zip(key_ids, values, strict=True)}
            out[row[_KEY]] = (_pairs(params), _pairs(tags), metrics)
        return out

    def _metric_names(self, conn: Connection, key_ids: set[int]) -> dict[int, str]:
        """Metric names by key id, read from `metric_keys` only for ids not seen before."""
        missing = key_ids.difference(self._key_names)
        if missing:
            found = conn.execute(
                select(t.metric_keys.c.id, t.metric_keys.c.name).where(t.metric_keys.c.id.in_(missing))
            )
            self._key_names.update((int(kid), name) for kid, name in found)
        return self._key_names


class _Unfinished(Exception):
    """A search asked to find its runs in one statement needs another."""


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    """Keys and values read as one array, alternating, as a mapping."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


_PLAIN_ID = re.compile(r"[0-9A-Za-z_.:-]{1,128}")
"""Experiment ids a statement may hold as written (plinth's are ULIDs): no quote, no backslash."""


def _keeps_a_plan(experiment_ids: list[str] | None, where: Expr | None) -> bool:
    """Whether a PostgreSQL walk may keep its plan (`_KEEP_PLAN_PG`): its filter compares only
    metrics, params and tags, and its experiments' ids can be written in its text."""
    if any(f.kind == "attributes" for f in fields_of(where)):
        return False
    return experiment_ids is None or all(_PLAIN_ID.fullmatch(i) for i in experiment_ids)


def _in_experiments(experiment_ids: list[str], *, written: bool = False) -> Sql:
    """The runs of these experiments; `written`: their ids (which `_PLAIN_ID` matched) in the text."""
    if written:
        return Sql("runs.experiment_id IN (" + ", ".join(f"'{i}'" for i in experiment_ids) + ")")
    return Sql("runs.experiment_id IN (") + Sql.marks(experiment_ids) + ")"


def _conditions(compiler: SearchCompiler, experiment_ids: list[str] | None, where: Expr | None) -> list[Sql]:
    conditions: list[Sql] = []
    if experiment_ids is not None:
        conditions.append(_in_experiments(experiment_ids))
    if where is not None:
        conditions.append(compiler.where(where))
    return conditions


def _where(conditions: list[Sql]) -> Sql:
    return Sql(" WHERE ") + Sql.join(" AND ", conditions) if conditions else Sql("")


def _run(
    row: RunRow,
    at_ms: int,
    experiment_names: dict[str, str],
    details: Details,
    envs: dict[str, Any],
    arts: dict[int, list[e.Artifact]],
) -> e.Run:
    key, run_id, exp_id, name, status, user, start_ms, end_ms, heartbeat_ms, heartbeat_s, error, env = row[
        :_CARRIED
    ]
    last = heartbeat_ms if heartbeat_ms is not None else start_ms
    if status == "RUNNING" and last + heartbeat_s * (STALE_BEATS * 1000) < at_ms:
        status = "CRASHED"
    params, tags, metrics = details
    return e.Run.of(
        id=run_id,
        experiment_id=exp_id,
        experiment_name=experiment_names[exp_id],
        name=name,
        status=_STATUSES[status],
        user=user,
        start_ms=start_ms,
        end_ms=end_ms,
        heartbeat_ms=heartbeat_ms,
        heartbeat_s=heartbeat_s,
        params=params,
        tags=tags,
        metrics=metrics,
        error=error,
        environment=envs.get(env),
        artifacts=arts.get(key, []),
    )
