"""The `Store` interface every capability talks to. No SQL leaks through it."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plinth.core.entities import RunStatus

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from plinth.core.audit import AuditAdoption, AuditCheck, AuditHead
    from plinth.core.entities import (
        AlertState,
        Artifact,
        AuditEvent,
        DatasetVersion,
        Experiment,
        FlowRun,
        Label,
        LineageEdge,
        LoggedModel,
        ModelFile,
        ModelVersion,
        PredictionLog,
        RegisteredModel,
        Run,
        StepRun,
    )
    from plinth.core.filters import Expr, OrderKey

# (run_id, metric key, step, seq, timestamp_ms, value): the wire shape of the metric hot path.
PointRow = tuple[str, str, int, int, int, float]


@dataclass(frozen=True)
class ArtifactRecord:
    """What a caller hands the store after the bytes are safely in the blob store."""

    path: str
    digest: str
    size: int


@dataclass(frozen=True)
class NewDataset:
    """A dataset version to record (the bytes are already in the blob store)."""

    name: str
    digest: str
    size: int
    rows: int
    schema: list[dict[str, str]]
    profile: dict[str, Any]
    source: str


@dataclass(frozen=True)
class NewRun:
    """A run to create (see `Store.create_runs`); `id` may be chosen by the caller, and
    `start_ms` too (None: now), for runs imported or started elsewhere.

    `end_status` (a terminal status, with `end_ms`, None: now, and `end_error`) records the run
    as ended already: its start and its end in one write, as a client that held a short run's
    creation back until it ended sends it.
    """

    experiment: str
    name: str | None
    params: Mapping[str, str]
    tags: Mapping[str, str]
    environment: Mapping[str, Any] | None
    heartbeat_s: float
    user: str
    id: str | None = None
    start_ms: int | None = None
    end_status: RunStatus | None = None
    end_ms: int | None = None
    end_error: str | None = None


def default_run_name(run_id: str) -> str:
    """The name of a run created without one."""
    return f"run-{run_id[-8:].lower()}"


class TrackingStore(ABC):
    """Metadata of experiments, runs, metrics, artifacts, datasets, lineage and audit."""

    def batch_is_atomic(self) -> bool:
        """True when a `batch()` opened now is a transaction of its own, so that a failure inside
        it leaves nothing written (not by default, nor inside another `batch()`)."""
        return False

    def batch(self) -> AbstractContextManager[None]:
        """A block whose writes (from this thread) are applied together; by default each on its own."""
        return contextlib.nullcontext()

    # experiments -------------------------------------------------------------------------
    @abstractmethod
    def get_or_create_experiment(self, name: str) -> Experiment:
        """Return the experiment called `name`, creating it on first use."""

    @abstractmethod
    def get_experiment(self, name_or_id: str) -> Experiment:
        """Return an experiment by name or id; raise NotFound."""

    @abstractmethod
    def list_experiments(self) -> list[Experiment]:
        """All experiments, oldest first."""

    @abstractmethod
    def set_experiment_tags(self, experiment: str, tags: Mapping[str, str]) -> None:
        """Set (or overwrite) tags of an experiment, by name or id; raise NotFound."""

    # runs --------------------------------------------------------------------------------
    @abstractmethod
    def create_run(
        self,
        *,
        experiment: str,
        name: str | None,
        params: Mapping[str, str],
        tags: Mapping[str, str],
        environment: Mapping[str, Any] | None,
        heartbeat_s: float,
        user: str,
    ) -> Run:
        """Create a RUNNING run (and its experiment if new) with its params and tags."""

    def create_run_deferred(self, spec: NewRun) -> Run:
        """`create_runs([spec])`, where the store may write the run with its next write
        transaction (the run's first points, its end), one commit fewer, and within a fraction of
        a second either way; reads through this store see the run at once. Stores that cannot
        hold a write back create it now."""
        return self.create_runs([spec])[0]

    def settle(self) -> None:
        """Write what this store holds back (`create_run_deferred`); nothing where it holds nothing."""
        return None

    @abstractmethod
    def create_runs(self, specs: Sequence[NewRun]) -> list[Run]:
        """Create many RUNNING runs in one transaction."""

    @abstractmethod
    def end_runs(self, ends: Sequence[tuple[str, RunStatus, str | None, int]]) -> None:
        """End many runs in one transaction: (run_id, status, error, end_ms) each."""

    @abstractmethod
    def get_run(self, run_id: str, *, now_ms: int | None = None) -> Run:
        """Return one run with params, tags, latest metrics, environment and artifacts."""

    @abstractmethod
    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Record params; re-logging a key with another value raises ConflictError."""

    @abstractmethod
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set (or overwrite) tags of a run, running or ended (tags annotate a run after it ends)."""

    @abstractmethod
    def reopen_run(self, run_id: str, now_ms: int) -> None:
        """Set an ended run RUNNING again (its end and error cleared, its heartbeat now), as MLflow's
        `start_run(run_id=...)` does; nothing for a running run; NotFound for an unknown one."""

    @abstractmethod
    def rename_run(self, run_id: str, name: str) -> None:
        """Give a run (running or ended) another name; NotFound for an unknown run."""

    @abstractmethod
    def delete_run_tag(self, run_id: str, key: str) -> None:
        """Remove one tag of a run (running or ended); raise NotFound if the run or tag is absent."""

    @abstractmethod
    def write_metrics(self, points: Sequence[PointRow]) -> None:
        """Durably write metric points in one transaction."""

    @abstractmethod
    def metric_history(self, run_id: str, key: str) -> np.ndarray:
        """All points of one metric as a structured array (step, timestamp_ms, value)."""

    @abstractmethod
    def metric_keys(self, run_id: str) -> list[str]:
        """Names of the metrics a run has logged."""

    @abstractmethod
    def heartbeat(self, run_ids: Sequence[str], now_ms: int) -> None:
        """Record that these runs are alive."""

    @abstractmethod
    def end_run(self, run_id: str, status: RunStatus, error: str | None, end_ms: int) -> None:
        """Move a RUNNING run to a terminal status."""

    @abstractmethod
    def search_runs(
        self,
        *,
        experiments: Sequence[str] | None,
        where: Expr | None,
        order_by: Sequence[OrderKey],
        limit: int | None,
        now_ms: int,
        offset: int = 0,
    ) -> list[Run]:
        """Runs matching a parsed filter, ordered, at most `limit`, after skipping `offset`."""

    @abstractmethod
    def count_runs(self, *, experiments: Sequence[str] | None, where: Expr | None, now_ms: int) -> int:
        """How many runs match a parsed filter (what `search_runs` pages through)."""

    @abstractmethod
    def reap_crashed(self, now_ms: int) -> list[str]:
        """Record CRASHED for RUNNING runs whose heartbeat is stale; return their ids."""

    # artifacts ---------------------------------------------------------------------------
    @abstractmethod
    def add_artifacts(
        self, run_id: str, items: Sequence[ArtifactRecord], replace: str | None = None
    ) -> list[Artifact]:
        """Record files logged by a run, running or ended (the blobs must already be stored).

        `replace`: a path whose earlier file, or folder of files, these items supersede.
        """

    @abstractmethod
    def list_artifacts(self, run_id: str, prefix: str = "") -> list[Artifact]:
        """Artifacts of a run whose path is `prefix` or lies under it."""

    @abstractmethod
    def delete_artifacts(self, run_id: str, paths: Sequence[str]) -> int:
        """Remove the records of a run's artifacts at exactly these paths, in one transaction;
        returns how many were removed (paths not recorded are skipped).

        The blobs stay until `plinth gc` finds them referenced by nothing.
        """

    @abstractmethod
    def referenced_digests(self) -> set[str]:
        """Every blob digest some entity refers to (for garbage collection)."""

    # logged models (MLflow 3) ------------------------------------------------------------
    @abstractmethod
    def create_logged_model(self, model: LoggedModel) -> LoggedModel:
        """Record a logged model with the id it was given; its run and experiment must exist.

        Raises:
            ConflictError: a logged model with that id exists.
            NotFound: no such experiment or run.
            InvalidInput: a bad id, status, name, tag or param.
        """

    @abstractmethod
    def get_logged_model(self, model_id: str) -> LoggedModel:
        """One logged model; raise NotFound."""

    @abstractmethod
    def update_logged_model(
        self,
        model_id: str,
        *,
        status: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> LoggedModel:
        """Change a logged model's status and set (or overwrite) tags and params; returns it."""

    @abstractmethod
    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        """Remove one tag of a logged model; raise NotFound if the model or tag is absent."""

    @abstractmethod
    def search_logged_models(
        self,
        *,
        experiment_ids: Sequence[str] | None,
        run_id: str | None = None,
        name: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[LoggedModel]:
        """Logged models of these experiments (all when None), of a run, of a name: newest first."""

    # datasets ----------------------------------------------------------------------------
    @abstractmethod
    def add_dataset_version(self, new: NewDataset) -> tuple[DatasetVersion, bool]:
        """Record a dataset version; identical content under one name is stored once.

        Returns the version and whether it was created (False: it existed).
        """

    @abstractmethod
    def get_dataset_version(self, name: str, version: int | None = None) -> DatasetVersion:
        """One version of a dataset (latest when `version` is None); raise NotFound."""

    @abstractmethod
    def list_dataset_versions(self, name: str | None = None) -> list[DatasetVersion]:
        """Dataset versions, all or of one name, by name then version."""

    # lineage and audit -------------------------------------------------------------------
    @abstractmethod
    def add_edge(self, edge: LineageEdge) -> None:
        """Record a lineage edge (idempotent)."""

    @abstractmethod
    def add_edges(self, edges: Sequence[LineageEdge]) -> None:
        """Record many lineage edges in one transaction (idempotent)."""

    @abstractmethod
    def edges(
        self, *, src: tuple[str, str] | None = None, dst: tuple[str, str] | None = None
    ) -> list[LineageEdge]:
        """Edges from `src` and/or into `dst`, each given as (type, id)."""

    @abstractmethod
    def record_audit(
        self,
        action: str,
        entity_type: str,
        entity_id: str,
        before: str | None,
        after: str | None,
        edges: Sequence[LineageEdge] = (),
    ) -> None:
        """Append an audit event for a mutation made outside the store's own methods.

        `edges` link what it records into lineage, in the same transaction: each must lead
        into a ("receipt", id) node (an erasure's or retention pass's receipt).

        Raises:
            InvalidInput: an edge that does not lead into a receipt.
        """

    @abstractmethod
    def audit_events(
        self,
        *,
        entity_id: str | None = None,
        actor: str | None = None,
        since_ms: int | None = None,
        limit: int | None = None,
        user: str | None = None,
        actions: Sequence[str] | None = None,
        until_ms: int | None = None,
        newest_first: bool = False,
        offset: int = 0,
    ) -> list[AuditEvent]:
        """Audit events, oldest first (newest first with `newest_first`), each filter narrowing them.

        Args:
            entity_id: only events about this entity.
            actor: only events whose actor is exactly this.
            since_ms: only events at or after this time.
            limit: at most this many (after `offset`).
            user: only events by this principal, with any of its tokens (`alice (token ci)`).
            actions: only events of these actions (none at all for an empty sequence).
            until_ms: only events at or before this time.
            newest_first: order by sequence number descending.
            offset: skip this many of the matching events first, in the order asked for.
        """

    @abstractmethod
    def count_audit_events(
        self,
        *,
        entity_id: str | None = None,
        actor: str | None = None,
        user: str | None = None,
        actions: Sequence[str] | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> int:
        """How many audit events the same filters as `audit_events` keep."""

    @abstractmethod
    def audit_actions(self) -> list[str]:
        """The distinct actions of the audit log, sorted."""

    @abstractmethod
    def verify_audit(self, anchor: AuditHead | None = None) -> AuditCheck:
        """Check the audit chain with the store's key, and against `anchor` (a head written out
        earlier) when given; events written before keying fail it as "not keyed" until adopted.

        Raises:
            WrongAuditKey: no keyed hash verifies under the store's key and nothing else is wrong.
        """

    @abstractmethod
    def adopt_audit(self) -> AuditAdoption:
        """Key the events written before the store was keyed, as they stand, up to the first damage
        to their plain hash chain; audited as an `audit.adopt` event (see `store.audit`).

        Raises:
            AuditTampered: unkeyed events follow keyed ones, or keyed events lost their head.
            WrongAuditKey: the head does not verify under the store's key.
        """

    @abstractmethod
    def scrub(self) -> str:
        """After rows were removed, overwrite what the backend's files still hold of them where it
        can; returns, in words, what may still hold them and until when."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


@dataclass(frozen=True)
class SealedManifest:
    """A version's stored manifest: its digest, and its signature where a signing key is set."""

    digest: str
    signature: str | None = None  # base64 Ed25519 signature (plinth.registry.signing)
    signing_key: str | None = None  # fingerprint of the key that made it


@dataclass(frozen=True)
class NewModelVersion:
    """A model version to record (its files are already in the blob store).

    `seal(version)` stores the manifest for the number the store assigns, inside the store's
    transaction, so the manifest and its signature name the version they belong to.
    """

    name: str
    flavor: str
    seal: Callable[[int], SealedManifest]
    files: list[ModelFile]
    signature: dict[str, Any] | None
    environment: dict[str, Any]
    run_id: str | None
    description: str
    source: str | None = None  # where its files came from (kept on the version)


class ModelRegistryStore(ABC):
    """The registry's part of the Store: model versions, aliases, descriptions."""

    @abstractmethod
    def create_model_version(self, new: NewModelVersion) -> ModelVersion:
        """Record the next version of `new.name` (creating the name on first use)."""

    @abstractmethod
    def get_model_version(self, name: str, version: int | None = None) -> ModelVersion:
        """One version (the latest when `version` is None); raise NotFound."""

    @abstractmethod
    def list_model_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first (none for a name created without versions yet);
        raise NotFound for an unknown name."""

    @abstractmethod
    def list_registered_models(self) -> list[RegisteredModel]:
        """Every model name with its latest version (0 while it has none), aliases and tags."""

    @abstractmethod
    def create_registered_model(self, name: str, description: str) -> RegisteredModel:
        """Record a model name with no versions yet; raise ConflictError if it exists."""

    @abstractmethod
    def get_registered_model(self, name: str) -> RegisteredModel:
        """One model name with its latest version (0 while it has none), aliases and tags; raise NotFound."""

    @abstractmethod
    def set_registered_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        """Set (or overwrite) tags of a model name; raise NotFound."""

    @abstractmethod
    def delete_registered_model_tag(self, name: str, key: str) -> None:
        """Remove one tag of a model name; raise NotFound if the model or tag is absent."""

    @abstractmethod
    def set_model_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        """Set (or overwrite) tags of one model version; raise NotFound."""

    @abstractmethod
    def delete_model_version_tag(self, name: str, version: int, key: str) -> None:
        """Remove one tag of a model version; raise NotFound if the version or tag is absent."""

    @abstractmethod
    def model_files(self, version_id: str) -> list[ModelFile]:
        """Files of a model version's package."""

    @abstractmethod
    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point `alias` at `version` (which must exist); return the version it pointed at before."""

    @abstractmethod
    def delete_alias(self, name: str, alias: str) -> int:
        """Remove an alias; return the version it pointed at; raise NotFound if absent."""

    @abstractmethod
    def resolve_alias(self, name: str, alias: str) -> int:
        """The version an alias points at; raise NotFound if absent."""

    @abstractmethod
    def set_model_description(self, name: str, version: int | None, description: str) -> None:
        """Change the description of a model (version None) or of one version."""

    @abstractmethod
    def sign_model_version(
        self, name: str, version: int, digest: str, signature: str, signing_key: str
    ) -> ModelVersion:
        """Record a signature of a version whose digest is still `digest` (ConflictError if not)."""


class FlowStore(ABC):
    """The flows' part of the Store: flow runs and their step calls."""

    @abstractmethod
    def create_flow_run(self, run: FlowRun) -> None:
        """Record a flow run (its tracked run must exist already, with the same id)."""

    @abstractmethod
    def finish_flow_run(
        self, run_id: str, status: RunStatus, end_ms: int, result_digest: str | None, error: str | None
    ) -> None:
        """Record how a flow run ended (a run already marked CRASHED keeps that status)."""

    @abstractmethod
    def crash_flow_run(self, run_id: str, end_ms: int, error: str) -> None:
        """Mark a RUNNING flow run, its RUNNING step calls and their tracked runs CRASHED."""

    @abstractmethod
    def get_flow_run(self, run_id: str, *, now_ms: int | None = None) -> FlowRun:
        """One flow run (CRASHED when its driver stopped beating); raise NotFound."""

    @abstractmethod
    def list_flow_runs(self, flow: str | None = None, limit: int | None = 50) -> list[FlowRun]:
        """Flow runs, newest first; at most `limit` (every one when None)."""

    @abstractmethod
    def save_step_runs(self, steps: Sequence[StepRun]) -> None:
        """Insert or update step runs (by id) in one transaction."""

    @abstractmethod
    def step_runs(self, flow_run_id: str) -> list[StepRun]:
        """Every step call of a flow run, in the order they were made."""

    @abstractmethod
    def cached_step(self, cache_key: str) -> StepRun | None:
        """The newest step with a stored result for this cache key, if any."""

    @abstractmethod
    def claim_trigger(self, flow: str, scheduled_ms: int, status: str) -> bool:
        """Record a schedule time of a flow once; False when it was already recorded."""

    @abstractmethod
    def set_trigger_run(self, flow: str, scheduled_ms: int, flow_run_id: str) -> None:
        """Link a claimed schedule time to the flow run it started."""

    @abstractmethod
    def triggers(self, flow: str) -> list[tuple[int, str, str | None]]:
        """(scheduled_ms, status, flow_run_id) of every recorded schedule time, oldest first."""


@dataclass(frozen=True)
class RemovedPredictions:
    """What `ServingStore.remove_predictions` removed (or would): counts and sha256 digests of
    the removed rows, as `delete_prediction_logs` and `delete_labels` compute them."""

    logs: int
    logs_digest: str
    labels: int
    labels_digest: str
    versions: tuple[tuple[str, int, int, int], ...] = ()
    """(model, version, logs, labels) of every model version that had logs or labels removed,
    sorted; a label counts for the version whose (non-shadow) log it labels."""


class ServingStore(ABC):
    """Serving's part of the Store: prediction logs.

    Every log has a row (lookups, counts, labels). Its inputs and outputs go to a columnar
    segment (plinth.store.segments, a blob in the artifact store): a large batch as a segment of
    its own, a small one as JSON in its rows until `compact_prediction_logs` gathers them.
    `prediction_table` reads a window as columns; every method sees rows and segments alike.
    """

    @abstractmethod
    def write_prediction_logs(self, logs: Sequence[PredictionLog]) -> None:
        """Append prediction logs in one transaction."""

    @abstractmethod
    def write_prediction_columns(self, model: str, tables: Sequence[pa.Table]) -> int:
        """Append requests given as segment tables (plinth.store.segments.encode_frame), each a
        segment of its own, all in one transaction; returns how many requests were written."""

    @abstractmethod
    def prediction_table(
        self,
        model: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
        text: bool = False,
    ) -> pa.Table:
        """Logged requests of a model in [since_ms, until_ms) as one segment table, oldest first
        (the columns of plinth.store.segments; the logged text only when `text`)."""

    @abstractmethod
    def compact_prediction_logs(self, model: str, *, force: bool = False) -> int:
        """Gather a model's logs still held as rows into segments once enough wait, and merge its
        small segments once there are enough (`force`: whatever there is); returns how many logs
        moved into segments. A store without an artifact store does nothing."""

    @abstractmethod
    def remove_predictions(
        self, *, subject_id: str | None = None, before_ms: int | None = None, dry_run: bool = False
    ) -> RemovedPredictions:
        """Remove the labels and logs of a subject, or older than a time, in one transaction.

        Segments holding removed logs are rewritten without them first, and their old blobs
        are deleted as soon as the transaction commits (blobs left over by earlier crashes are
        deleted first). Labels are found through their logs too, as in `delete_labels`.
        """

    @abstractmethod
    def sweep_prediction_blobs(self, *, min_age_s: float = 0.0) -> list[str]:
        """Delete segment blobs left behind by crashed writers or interrupted rewrites (those
        being written only once recorded `min_age_s` ago); returns their digests."""

    @abstractmethod
    def window_labels(
        self,
        model: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
    ) -> dict[str, str]:
        """The label JSON of each labeled request logged in the window, by request id."""

    @abstractmethod
    def prediction_logs(
        self,
        model: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
        limit: int | None = None,
    ) -> list[PredictionLog]:
        """Logged predictions of a model in a time window, oldest first."""

    @abstractmethod
    def delete_prediction_logs(
        self, *, subject_id: str | None = None, before_ms: int | None = None, dry_run: bool = False
    ) -> tuple[int, str]:
        """Remove the logs of a subject, or older than a time; returns (count, sha256 of what went).

        The digest covers the removed rows (request id, model, version, time) in a stable order,
        so a receipt can prove what was removed without keeping it.
        """

    @abstractmethod
    def count_prediction_logs(self, *, subject_id: str | None = None, before_ms: int | None = None) -> int:
        """How many logs match (used to verify an erasure)."""

    @abstractmethod
    def prediction_stats(
        self, model: str, *, since_ms: int | None = None, until_ms: int | None = None
    ) -> list[tuple[int, int, str, float, int, int]]:
        """(time_ms, version, route, latency_ms, status, n_rows) of each logged request, oldest first."""

    @abstractmethod
    def find_prediction(self, request_id: str) -> PredictionLog | None:
        """The (non-shadow) log of one request id, or None."""

    @abstractmethod
    def label_of(self, model: str, request_id: str) -> str | None:
        """The label JSON of one request, or None."""

    @abstractmethod
    def prediction_counts(self, model: str, version: int) -> tuple[int, int]:
        """(logged requests, labeled requests) of one model version."""

    @abstractmethod
    def write_labels(self, model: str, labels: Sequence[Label]) -> int:
        """Store delayed labels (a later label for the same request replaces the earlier one), audited.

        Returns how many were written.
        """

    @abstractmethod
    def labeled_predictions(
        self,
        model: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
    ) -> list[tuple[PredictionLog, str | None]]:
        """Answered (status 200, non-shadow) prediction logs in a window with their label JSON or None."""

    @abstractmethod
    def delete_labels(
        self, *, subject_id: str | None = None, before_ms: int | None = None, dry_run: bool = False
    ) -> tuple[int, str]:
        """Remove the labels of a subject (by their own subject id or their request's), or older ones.

        Labels of requests whose logs match are included, so call this before removing the logs.
        Returns (count, sha256 of what went).
        """

    @abstractmethod
    def count_labels(self, *, subject_id: str | None = None, before_ms: int | None = None) -> int:
        """How many labels match (used to verify an erasure)."""

    @abstractmethod
    def set_reference(self, model: str, dataset_version_id: str) -> None:
        """Make a dataset version the drift reference of a model (audited)."""

    @abstractmethod
    def get_reference(self, model: str) -> str | None:
        """The dataset version id set as a model's drift reference, if any."""

    @abstractmethod
    def alert_states(self, rule: str | None = None) -> list[AlertState]:
        """Stored alert states, of one rule or all."""

    @abstractmethod
    def save_alert_state(
        self, state: AlertState, *, action: str | None = None, detail: str | None = None
    ) -> None:
        """Insert or replace one alert state; `action` (e.g. 'alert.fire') also appends an audit event."""


class Store(TrackingStore, ModelRegistryStore, FlowStore, ServingStore):
    """Everything plinth keeps in its metadata store; `SqlStore` implements it."""


class ServerSide(ABC):
    """A store whose server computes what reads raw prediction logs (the remote store).

    Drift, performance, operations, monitoring reports and lineage read logged inputs and
    subject ids, which only some roles may see; a client of a team server asks the server for
    the result instead, so the raw logs never leave it (`plinth.server.compute_routes`).
    """

    @abstractmethod
    def compute(self, name: str, result: Any, arguments: Mapping[str, Any]) -> Any:
        """Have the server compute `name` from `arguments`; decode the answer as `result` (a type)."""
