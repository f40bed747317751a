"""Typed entities that cross layer boundaries. Frozen: build a new one to change a value."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any, NamedTuple


class RunStatus(enum.StrEnum):
    """Lifecycle of a run. CRASHED is derived: RUNNING with a stale heartbeat."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    CRASHED = "CRASHED"

    @property
    def is_terminal(self) -> bool:
        """True for every status except RUNNING."""
        return self is not RunStatus.RUNNING


@dataclass(frozen=True)
class Experiment:
    """A named group of runs."""

    id: str
    name: str
    created_ms: int
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Param:
    """One hyper-parameter of a run; the value is kept as the string it was logged as."""

    key: str
    value: str


@dataclass(frozen=True)
class Tag:
    """A free-form label on a run."""

    key: str
    value: str


@dataclass(frozen=True)
class MetricPoint:
    """One value of a metric at a step and a time (epoch milliseconds)."""

    key: str
    value: float
    step: int
    timestamp_ms: int


@dataclass(frozen=True)
class Artifact:
    """A file logged by a run: its logical path, content digest (sha256) and size."""

    run_id: str
    path: str
    digest: str
    size: int
    created_ms: int


@dataclass(frozen=True, repr=False)
class DatasetVersion:
    """A stored, content-addressed version of a named dataset with its schema and profile."""

    id: str
    name: str
    version: int
    digest: str
    rows: int
    schema: list[dict[str, str]]
    profile: dict[str, Any]
    source: str
    created_ms: int
    size: int = 0

    def __repr__(self) -> str:
        return f"<DatasetVersion {self.name}/{self.version}: {self.rows} rows, {len(self.schema)} columns>"

    @property
    def ref(self) -> str:
        """`name/version`, the form the CLI accepts."""
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class LineageEdge:
    """A directed edge between two entities, e.g. dataset_version -> run ("consumed_by")."""

    src_type: str
    src_id: str
    relation: str
    dst_type: str
    dst_id: str
    created_ms: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEvent:
    """One mutation: who did what to which entity, chained to the previous event by hash."""

    seq: int
    time_ms: int
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: str | None
    after: str | None
    prev_hash: str
    hash: str


@dataclass(frozen=True, repr=False)
class Run:
    """A tracked execution: params, tags, latest metrics, status, environment and times."""

    id: str
    experiment_id: str
    experiment_name: str
    name: str
    status: RunStatus
    user: str
    start_ms: int
    end_ms: int | None
    heartbeat_ms: int | None
    heartbeat_s: float
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    environment: dict[str, Any] | None = None
    artifacts: list[Artifact] = field(default_factory=list)

    def __repr__(self) -> str:
        where = self.experiment_name or self.experiment_id
        return f"<Run {self.id} {self.name!r} in {where} {self.status.value}>"

    @classmethod
    def of(cls, **fields: Any) -> Run:
        """The same Run as `Run(**fields)`, built faster; every field must be given.

        A frozen dataclass sets its fields one guarded call at a time, a large share of building
        the hundreds of runs a search returns; this fills them in one step.

        Raises:
            TypeError: a field is missing or unknown.
        """
        if fields.keys() != _RUN_FIELDS:
            raise TypeError(f"Run.of needs exactly the fields {sorted(_RUN_FIELDS)}, got {sorted(fields)}")
        run = object.__new__(cls)
        run.__dict__.update(fields)
        return run

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end, or None while running."""
        if self.end_ms is None:
            return None
        return (self.end_ms - self.start_ms) / 1000.0


_RUN_FIELDS = frozenset(f.name for f in dataclass_fields(Run))


@dataclass(frozen=True, repr=False)
class ModelVersion:
    """One registered version of a named model.

    `digest` is the sha256 of the model's manifest (`plinth-model.json`), which lists every
    file of the package by digest; `environment` records the Python and flavor library
    versions needed to load it. `signature` is the input signature; `manifest_signature` is
    an Ed25519 signature (base64) of the name, version, flavor and digest, made by the key
    whose fingerprint is `signing_key` (both None for an unsigned version).
    """

    id: str
    name: str
    version: int
    flavor: str
    digest: str
    signature: dict[str, Any] | None
    environment: dict[str, Any]
    run_id: str | None
    description: str
    creator: str
    created_ms: int
    aliases: tuple[str, ...] = ()
    manifest_signature: str | None = None
    signing_key: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    source: str | None = None  # where its files came from, e.g. an MLflow model's artifact URI

    def __repr__(self) -> str:
        aliases = "".join(f" @{a}" for a in self.aliases)
        return f"<ModelVersion {self.name}/{self.version} {self.flavor}{aliases}>"

    @property
    def ref(self) -> str:
        """`name/version`, the form `load_model` and the CLI accept."""
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class RegisteredModel:
    """A model name with its latest version (0 while it has none), aliases and tags."""

    name: str
    description: str
    created_ms: int
    latest_version: int
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggedModel:
    """A model logged by a run in MLflow 3's sense (`m-<32 hex>` ids), before any registration.

    Its files are artifacts of run `run_id` under `models/{id}/`; `source_run_id` is the run
    the client named as its origin (None when it named none). `status` is PENDING, READY or
    FAILED; `model_type` is free text (e.g. "sklearn").
    """

    id: str
    experiment_id: str
    name: str
    run_id: str
    status: str
    model_type: str
    source_run_id: str | None
    created_ms: int
    updated_ms: int
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


LOGGED_MODEL_STATUSES = ("PENDING", "READY", "FAILED")
"""What `LoggedModel.status` may be."""


@dataclass(frozen=True)
class ModelFile:
    """One file of a model package: its path inside the package, digest and size."""

    path: str
    digest: str
    size: int


class StepStatus(enum.StrEnum):
    """Where a step call of a flow run stands."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    CACHED = "CACHED"  # its result was reused from an earlier identical step (cache or resume)
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"  # the flow's driver died while this call ran

    @property
    def has_result(self) -> bool:
        """True when the step's result is stored."""
        return self in (StepStatus.FINISHED, StepStatus.CACHED)


@dataclass(frozen=True, repr=False)
class FlowRun:
    """One run of a flow: its params, status, result and where its code came from.

    `driver_host`, `driver_pid` and `driver_ns` (the kernel's boot id and the PID namespace) name
    the process that ran the flow body (None for runs recorded before they were kept).
    """

    id: str
    flow: str
    status: RunStatus
    params: dict[str, Any]
    source: str
    start_ms: int
    end_ms: int | None
    result_digest: str | None = None
    error: str | None = None
    resumed_from: str | None = None
    driver_host: str | None = None
    driver_pid: int | None = None
    driver_ns: str | None = None

    def __repr__(self) -> str:
        return f"<FlowRun {self.flow} {self.id} {self.status.value}>"


@dataclass(frozen=True, repr=False)
class StepRun:
    """One call of a step inside a flow run (`call` is e.g. 'train#3'), with its attempts."""

    id: str
    flow_run_id: str
    call: str
    step: str
    status: StepStatus
    attempts: int
    start_ms: int | None
    end_ms: int | None
    input_digest: str
    cache_key: str | None = None
    result_digest: str | None = None
    log_digest: str | None = None
    error: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    reused_from: str | None = None

    def __repr__(self) -> str:
        took = "" if self.duration_s is None else f" {self.duration_s:.3g} s"
        return f"<StepRun {self.call} {self.status.value}{took}>"

    @property
    def duration_s(self) -> float | None:
        """Seconds from first start to end."""
        if self.start_ms is None or self.end_ms is None:
            return None
        return (self.end_ms - self.start_ms) / 1000.0


class PredictionLog(NamedTuple):
    """One served prediction: inputs and outputs (JSON text), who answered, how fast, for whom.

    A named tuple rather than a dataclass: monitoring reads them by the million, and a tuple
    is built several times faster.
    """

    request_id: str
    model: str
    version: int
    route: str  # primary, canary or shadow
    time_ms: int
    latency_ms: float
    subject_id: str | None
    inputs: str
    outputs: str
    status: int = 200  # HTTP status of the answer; outputs is the error message when not 200
    n_rows: int = 1  # rows in the request


@dataclass(frozen=True)
class Label:
    """Delayed ground truth for one served request, joined to its prediction log by request id."""

    model: str
    request_id: str
    label: str  # JSON: one value, or one per row for multi-row requests
    time_ms: int
    subject_id: str | None = None


@dataclass(frozen=True)
class AlertState:
    """Where one alert rule stands on one target: consecutive breaches and the open incident."""

    rule: str
    target: str
    breaches: int
    firing: bool
    incident_id: str | None
    opened_ms: int | None
    value: float | None
    updated_ms: int
