"""An MLflow tracking database as a `Source`: its own tables, read with SQLAlchemy Core.

The tables are reflected, not declared: their columns are whatever the MLflow that made the
database created (`revisions.py` lists the schema revisions read). Nothing is written: SQLite
files open read-only, PostgreSQL sessions are read-only transactions.

Metric points, the bulk of a store, come from one query ordered by run and streamed
(`metric_stream.py`), gathered into NumPy columns (`RunPoints`) run by run as they arrive.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from plinth.core.errors import InvalidInput, NotFound, StoreError
from plinth.importers.mlflow.metric_stream import metric_queries, read_points
from plinth.importers.mlflow.records import (
    MlDataset,
    MlExperiment,
    MlInput,
    MlLoggedModel,
    MlModelVersion,
    MlRegisteredModel,
    MlRun,
    RunPoints,
    Source,
    SourceFile,
)
from plinth.importers.mlflow.revisions import check_revision

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")

TABLES = (
    "alembic_version",
    "experiments",
    "experiment_tags",
    "runs",
    "params",
    "tags",
    "metrics",
    "datasets",
    "inputs",
    "input_tags",
    "logged_models",
    "logged_model_tags",
    "logged_model_params",
    "registered_models",
    "registered_model_tags",
    "model_versions",
    "model_version_tags",
    "registered_model_aliases",
)
"""MLflow's tables the importer reads (those a database lacks are read as empty)."""

_LOGGED_STATUSES = {0: "PENDING", 1: "PENDING", 2: "READY", 3: "FAILED"}  # MLflow's LoggedModelStatus
_DELETED_VERSION = "Deleted_Internal"  # the stage MLflow gives a deleted model version


class SqlSource(Source):
    """MLflow's database at `url` (sqlite:///file, postgresql://..., any SQLAlchemy URL).

    Raises:
        NotFound: a SQLite file that does not exist.
        StoreError: the database cannot be opened or read.
        SchemaError: its MLflow schema revision is unknown (see `revisions.py`).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = _engine(url)
        self._tables: dict[str, sa.Table] = {}
        self.revision = self._read("read its schema", self._reflect)

    def describe(self) -> str:
        return f"the MLflow database {sa.make_url(self.url).render_as_string(hide_password=True)}"

    def _reflect(self, conn: Connection) -> str:
        names = set(sa.inspect(conn).get_table_names())
        if "alembic_version" not in names or "runs" not in names:
            raise StoreError(
                f"{self.describe()} holds no MLflow tables (no alembic_version or runs table); "
                "point --from at the database `mlflow server --backend-store-uri` uses."
            )
        meta = sa.MetaData()
        meta.reflect(conn, only=[name for name in TABLES if name in names])
        self._tables = dict(meta.tables)
        revision = conn.execute(sa.select(self._tables["alembic_version"].c.version_num)).scalar()
        return check_revision(revision, self.describe())

    def _read(self, what: str, fn: Callable[[Connection], T]) -> T:
        try:
            with self._engine.connect() as conn:
                return fn(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"Could not {what} from {self.describe()}: {_first_line(exc)}") from exc

    def _table(self, name: str) -> sa.Table | None:
        return self._tables.get(name)

    # experiments and runs ------------------------------------------------------------------
    def experiments(self) -> list[MlExperiment]:
        exps = self._tables["experiments"]

        def read(conn: Connection) -> list[MlExperiment]:
            query = sa.select(exps).order_by(exps.c.experiment_id)
            if "lifecycle_stage" in exps.c:
                query = query.where(exps.c.lifecycle_stage == "active")
            tags = self._pairs(conn, "experiment_tags", "experiment_id")
            return [
                MlExperiment(
                    id=str(row.experiment_id),
                    name=row.name,
                    artifact_location=getattr(row, "artifact_location", None),
                    tags=tags.get(str(row.experiment_id), {}),
                )
                for row in conn.execute(query)
            ]

        return self._read("read experiments", read)

    def runs(self, experiment_ids: Sequence[str]) -> list[MlRun]:
        def read(conn: Connection) -> list[MlRun]:
            chosen = self._chosen_runs(experiment_ids)
            params = self._pairs(conn, "params", "run_uuid", chosen)
            tags = self._pairs(conn, "tags", "run_uuid", chosen)
            return [
                _run(row, params.get(row.run_uuid, {}), tags.get(row.run_uuid, {}))
                for row in conn.execute(chosen)
            ]

        return self._read("read runs", read)

    def _chosen_runs(self, experiment_ids: Sequence[str]) -> sa.Select[Any]:
        """The active runs of these experiments."""
        runs = self._tables["runs"]
        query = sa.select(runs).where(runs.c.experiment_id.in_([int(i) for i in experiment_ids]))
        if "lifecycle_stage" in runs.c:
            query = query.where(runs.c.lifecycle_stage == "active")
        return query

    def _pairs(
        self, conn: Connection, table: str, owner: str, runs: sa.Select[Any] | None = None
    ) -> dict[str, dict[str, str]]:
        """key -> value of each owner (run, experiment) in a key/value table."""
        found = self._table(table)
        if found is None:
            return {}
        query = sa.select(found.c[owner], found.c.key, found.c.value)
        if runs is not None:
            query = query.where(found.c[owner].in_(sa.select(runs.subquery().c.run_uuid)))
        out: dict[str, dict[str, str]] = {}
        for who, key, value in conn.execute(query):
            out.setdefault(str(who), {})[key] = "" if value is None else value
        return out

    # metrics --------------------------------------------------------------------------------
    def metric_points(self, run_ids: Collection[str], experiment_ids: Sequence[str]) -> Iterator[RunPoints]:
        wanted = set(run_ids)
        if not wanted:
            return
        dialect = self._engine.dialect
        every = set(experiment_ids) >= {e.id for e in self.experiments()}
        runs = None if every else self._chosen_runs(experiment_ids)  # deleted runs' points are skipped
        queries = metric_queries(self._tables["metrics"], runs, dialect)
        errors = (SQLAlchemyError, dialect.loaded_dbapi.Error)
        try:
            with self._engine.connect() as conn:
                yield from read_points(conn.connection.driver_connection, dialect.name, queries, wanted)
        except errors as exc:
            raise StoreError(f"Could not read metrics from {self.describe()}: {_first_line(exc)}") from exc

    # datasets and logged models ---------------------------------------------------------------
    def inputs(self, experiment_ids: Sequence[str]) -> list[MlInput]:
        datasets, inputs = self._table("datasets"), self._table("inputs")
        if datasets is None or inputs is None:
            return []

        def read(conn: Connection) -> list[MlInput]:
            contexts = self._contexts(conn)
            query = (
                sa.select(inputs.c.input_uuid, inputs.c.destination_id, datasets)
                .join(datasets, datasets.c.dataset_uuid == inputs.c.source_id)
                .where(
                    inputs.c.source_type == "DATASET",
                    inputs.c.destination_type == "RUN",
                    datasets.c.experiment_id.in_([int(i) for i in experiment_ids]),
                )
            )
            return [
                MlInput(row.destination_id, _dataset(row), contexts.get(row.input_uuid))
                for row in conn.execute(query)
            ]

        return self._read("read datasets", read)

    def _contexts(self, conn: Connection) -> dict[str, str]:
        tags = self._table("input_tags")
        if tags is None:
            return {}
        query = sa.select(tags.c.input_uuid, tags.c.value).where(tags.c.name == "mlflow.data.context")
        return {uuid: value for uuid, value in conn.execute(query)}

    def logged_models(self, experiment_ids: Sequence[str] | None) -> list[MlLoggedModel]:
        models = self._table("logged_models")
        if models is None:
            return []

        def read(conn: Connection) -> list[MlLoggedModel]:
            query = sa.select(models).order_by(models.c.creation_timestamp_ms)
            if experiment_ids is not None:
                query = query.where(models.c.experiment_id.in_([int(i) for i in experiment_ids]))
            if "lifecycle_stage" in models.c:
                query = query.where(models.c.lifecycle_stage == "active")
            tags = self._model_pairs(conn, "logged_model_tags", "tag_key", "tag_value")
            params = self._model_pairs(conn, "logged_model_params", "param_key", "param_value")
            return [
                _logged_model(row, tags.get(row.model_id, {}), params.get(row.model_id, {}))
                for row in conn.execute(query)
            ]

        return self._read("read logged models", read)

    def _model_pairs(self, conn: Connection, table: str, key: str, value: str) -> dict[str, dict[str, str]]:
        found = self._table(table)
        if found is None:
            return {}
        out: dict[str, dict[str, str]] = {}
        for model_id, k, v in conn.execute(sa.select(found.c.model_id, found.c[key], found.c[value])):
            out.setdefault(model_id, {})[k] = v
        return out

    # registry ---------------------------------------------------------------------------------
    def registered_models(self) -> list[MlRegisteredModel]:
        models = self._table("registered_models")
        if models is None:
            return []

        def read(conn: Connection) -> list[MlRegisteredModel]:
            tags = self._named_pairs(conn, "registered_model_tags")
            aliases: dict[str, dict[str, int]] = {}
            found = self._table("registered_model_aliases")
            if found is not None:
                for name, alias, version in conn.execute(
                    sa.select(found.c.name, found.c.alias, found.c.version)
                ):
                    aliases.setdefault(name, {})[alias] = int(version)
            query = sa.select(models.c.name, models.c.description).order_by(models.c.name)
            return [
                MlRegisteredModel(name, description or "", tags.get(name, {}), aliases.get(name, {}))
                for name, description in conn.execute(query)
            ]

        return self._read("read registered models", read)

    def _named_pairs(self, conn: Connection, table: str) -> dict[str, dict[str, str]]:
        found = self._table(table)
        if found is None:
            return {}
        out: dict[str, dict[str, str]] = {}
        for name, key, value in conn.execute(sa.select(found.c.name, found.c.key, found.c.value)):
            out.setdefault(name, {})[key] = "" if value is None else value
        return out

    def model_versions(self, name: str) -> list[MlModelVersion]:
        versions = self._tables["model_versions"]

        def read(conn: Connection) -> list[MlModelVersion]:
            tags: dict[int, dict[str, str]] = {}
            found = self._table("model_version_tags")
            if found is not None:
                query = sa.select(found.c.version, found.c.key, found.c.value).where(found.c.name == name)
                for version, key, value in conn.execute(query):
                    tags.setdefault(int(version), {})[key] = "" if value is None else value
            rows = conn.execute(
                sa.select(versions).where(versions.c.name == name).order_by(versions.c.version)
            )
            return [
                _version(row, tags.get(int(row.version), {}))
                for row in rows
                if getattr(row, "current_stage", None) != _DELETED_VERSION
            ]

        return self._read(f"read the versions of model {name!r}", read)

    # artifacts: a database does not hold them --------------------------------------------------
    def remote_files(self, kind: str, owner_id: str) -> list[SourceFile] | None:
        return None

    def download(self, file: SourceFile, dest: str) -> None:
        raise NotFound(f"{self.describe()} holds no artifact bytes; {file.location} is not readable here.")

    def close(self) -> None:
        self._engine.dispose()


def _engine(url: str) -> Engine:
    """A read-only engine for `url`.

    Raises:
        InvalidInput: not a database URL.
        NotFound: a SQLite file that does not exist.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InvalidInput(
            f"--from {url!r} is not a database URL; use sqlite:///path/to/mlflow.db, "
            "postgresql://user@host/db or http://mlflow-server:5000."
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = parsed.database or ""
        if not path or path == ":memory:" or not os.path.isfile(path):
            raise NotFound(f"No MLflow database at {path!r}: no such file. Check the path in --from.")
        uri = f"file:{quote(os.path.abspath(path))}?mode=ro"
        # a connection per use: the metric stream reads in a thread of its own (see prefetch.py)
        return sa.create_engine(
            "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True), poolclass=NullPool
        )
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(parsed, connect_args={"options": "-c default_transaction_read_only=on"})
    try:
        return sa.create_engine(parsed)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"Cannot open {backend} database {url!r}: {exc}") from exc


def _run(row: Any, params: dict[str, str], tags: dict[str, str]) -> MlRun:
    name = getattr(row, "name", None) or tags.get("mlflow.runName")
    return MlRun(
        id=row.run_uuid,
        experiment_id=str(row.experiment_id),
        name=name,
        user=getattr(row, "user_id", None) or tags.get("mlflow.user"),
        status=row.status or "RUNNING",
        start_ms=row.start_time,
        end_ms=row.end_time,
        artifact_uri=row.artifact_uri,
        params=params,
        tags=tags,
    )


def _dataset(row: Any) -> MlDataset:
    return MlDataset(
        id=row.dataset_uuid,
        name=row.name,
        digest=row.digest,
        source_type=row.dataset_source_type,
        source=row.dataset_source,
        schema=row.dataset_schema,
        profile=row.dataset_profile,
    )


def _logged_model(row: Any, tags: dict[str, str], params: dict[str, str]) -> MlLoggedModel:
    return MlLoggedModel(
        id=row.model_id,
        experiment_id=str(row.experiment_id),
        name=row.name,
        artifact_location=row.artifact_location,
        status=_LOGGED_STATUSES.get(int(row.status or 0), "PENDING"),
        model_type=row.model_type or "",
        source_run_id=row.source_run_id,
        created_ms=int(row.creation_timestamp_ms),
        updated_ms=int(row.last_updated_timestamp_ms),
        tags=tags,
        params=params,
    )


def _version(row: Any, tags: dict[str, str]) -> MlModelVersion:
    stage = getattr(row, "current_stage", None)
    return MlModelVersion(
        name=row.name,
        version=int(row.version),
        source=row.source,
        storage_location=getattr(row, "storage_location", None),
        run_id=row.run_id,
        description=row.description or "",
        status=row.status or "READY",
        stage=None if stage in (None, "None") else stage,
        tags=tags,
    )


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__
