"""What an MLflow store holds, as the importer reads it: one shape for every kind of source.

A source (`source_sql.SqlSource` over MLflow's database, `source_http.HttpSource` over its
REST API) turns MLflow's rows or JSON into these frozen records, so the importer does not know
where they came from. Times are epoch milliseconds, as MLflow keeps them; ids are MLflow's own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

ENDED = ("FINISHED", "FAILED", "KILLED")
"""MLflow run statuses that end a run; RUNNING and SCHEDULED do not."""


@dataclass(frozen=True)
class MlExperiment:
    """An active MLflow experiment."""

    id: str
    name: str
    artifact_location: str | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MlRun:
    """An active MLflow run with its params and tags (metrics come as `RunPoints`)."""

    id: str
    experiment_id: str
    name: str | None
    user: str | None
    status: str
    start_ms: int | None
    end_ms: int | None
    artifact_uri: str | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        """True when MLflow recorded an end (FINISHED, FAILED or KILLED)."""
        return self.status in ENDED


@dataclass(frozen=True)
class RunPoints:
    """Every metric point of one run, as columns (same length; any order).

    `value` holds NaN where MLflow recorded NaN, and infinities where it recorded one (see
    `restore_infinities`).
    """

    run_id: str
    key: np.ndarray  # str
    step: np.ndarray  # int64
    timestamp_ms: np.ndarray  # int64
    value: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.step)


@dataclass(frozen=True)
class MlDataset:
    """A dataset MLflow recorded as metadata (`log_input`): name, digest, source, schema, profile."""

    id: str
    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None
    profile: str | None


@dataclass(frozen=True)
class MlInput:
    """A dataset a run consumed, with its context (e.g. "training") when MLflow has one."""

    run_id: str
    dataset: MlDataset
    context: str | None


@dataclass(frozen=True)
class MlLoggedModel:
    """An MLflow 3 logged model (`m-<32 hex>` id) and where its files lie."""

    id: str
    experiment_id: str
    name: str
    artifact_location: str | None
    status: str
    model_type: str
    source_run_id: str | None
    created_ms: int
    updated_ms: int
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MlModelVersion:
    """One version of a registered model: where its files are, which run made it, its tags."""

    name: str
    version: int
    source: str | None
    storage_location: str | None
    run_id: str | None
    description: str
    status: str
    stage: str | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MlRegisteredModel:
    """A registered model with its description, tags and aliases (alias -> MLflow version)."""

    name: str
    description: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceFile:
    """A file of a run's or a model's artifacts: its path under that folder, and how to read it."""

    path: str
    size: int | None
    location: str  # a local path, or the address the source reads it from
    local: bool  # True when `location` is a local file the blob store can take as is


class Source(ABC):
    """An MLflow store to import from. Every read returns what is active (not deleted)."""

    url: str

    @abstractmethod
    def describe(self) -> str:
        """The source in words, for messages (never with a password)."""

    @abstractmethod
    def experiments(self) -> list[MlExperiment]:
        """Every active experiment, with its tags."""

    @abstractmethod
    def runs(self, experiment_ids: Sequence[str]) -> list[MlRun]:
        """Every active run of these experiments, with params and tags."""

    @abstractmethod
    def metric_points(self, run_ids: Collection[str], experiment_ids: Sequence[str]) -> Iterator[RunPoints]:
        """The points of each of `run_ids` that has any, one run at a time, each run once.

        Runs of `experiment_ids` outside `run_ids` may be read and skipped; the order of runs
        is the source's (the importer takes them as they come).
        """

    @abstractmethod
    def inputs(self, experiment_ids: Sequence[str]) -> list[MlInput]:
        """The datasets the runs of these experiments consumed."""

    @abstractmethod
    def logged_models(self, experiment_ids: Sequence[str] | None) -> list[MlLoggedModel]:
        """MLflow 3's logged models of these experiments (of all, when None); none in older stores."""

    @abstractmethod
    def registered_models(self) -> list[MlRegisteredModel]:
        """Every registered model, with tags and aliases."""

    @abstractmethod
    def model_versions(self, name: str) -> list[MlModelVersion]:
        """Every version of one registered model, oldest first, with tags."""

    @abstractmethod
    def remote_files(self, kind: str, owner_id: str) -> list[SourceFile] | None:
        """Every file of a run's (`kind` "run") or a logged model's ("model") artifacts as the
        source serves them, or None when it serves none (a database: the files lie elsewhere)."""

    @abstractmethod
    def download(self, file: SourceFile, dest: str) -> None:
        """Write one file `remote_files` listed to the local path `dest`.

        Raises:
            StoreError: the source could not send it.
        """

    def close(self) -> None:  # noqa: B027 - a source without connections has nothing to release
        """Release connections."""


def restore_infinities(values: np.ndarray) -> np.ndarray:
    """`values` with MLflow's stand-ins for infinities made infinite again, in place.

    MLflow's database cannot hold an infinity, so its store writes +-inf as the largest finite
    float (+-1.7976931348623157e308) and answers that number back; plinth stores infinities.
    """
    import numpy as np

    biggest = np.finfo(np.float64).max
    values[values == biggest] = np.inf
    values[values == -biggest] = -np.inf
    return values


def parse_json(text: str | None) -> Any:
    """`text` as JSON, or None where it is empty or not JSON (MLflow keeps some fields as free text)."""
    import json

    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
