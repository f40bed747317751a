"""Experiments, runs, metrics, artifacts, datasets, lineage and audit, as a part of `RemoteStore`."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plinth.core.errors import PlinthError
from plinth.store import bodies, rpc
from plinth.store.base import ArtifactRecord, NewDataset, NewRun, PointRow
from plinth.store.http import ServerClient
from plinth.store.points import POINTS, PointColumns
from plinth.store.remote_base import RemoteBase
from plinth.store.remote_held import HeldRuns

log = logging.getLogger("plinth.store")

if TYPE_CHECKING:
    import numpy as np

    from plinth.core.audit import AuditAdoption, AuditCheck, AuditHead
    from plinth.core.entities import (
        Artifact,
        AuditEvent,
        DatasetVersion,
        Experiment,
        LineageEdge,
        LoggedModel,
        Run,
        RunStatus,
    )
    from plinth.core.filters import Expr, OrderKey


class RemoteTracking(RemoteBase):
    """Tracking methods of RemoteStore: each one call to the server (a short run's creation and
    end together, `remote_held`)."""

    def __init__(self, client: ServerClient) -> None:
        super().__init__(client)
        self._held = HeldRuns(self._create_quietly)
        settle = weakref.WeakMethod(self.settle)  # the client must not keep this store alive

        def settle_first() -> None:
            held = settle()
            if held is not None:
                held()

        client.before_request = settle_first

    def close(self) -> None:
        """Send the runs held back, then close the connections to the server."""
        try:
            self.settle()
        except PlinthError as exc:  # closing a store whose server is gone still closes it
            log.warning("Runs held back were lost as the store closed: %s", exc)
        super().close()

    # experiments and runs --------------------------------------------------------------------
    def get_or_create_experiment(self, name: str) -> Experiment:
        return self.call("get_or_create_experiment", name)

    def get_experiment(self, name_or_id: str) -> Experiment:
        return self.call("get_experiment", name_or_id)

    def list_experiments(self) -> list[Experiment]:
        return self.call("list_experiments")

    def set_experiment_tags(self, experiment: str, tags: Mapping[str, str]) -> None:
        self.call("set_experiment_tags", experiment, tags)

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
        """Create a run; the server records the caller's principal as its user, not `user`."""
        return self.call(
            "create_run",
            experiment=experiment,
            name=name,
            params=params,
            tags=tags,
            environment=environment,
            heartbeat_s=heartbeat_s,
            user=user,
        )

    def create_runs(self, specs: Sequence[NewRun]) -> list[Run]:
        return self._create_now(list(specs))

    def _create_now(self, specs: list[NewRun]) -> list[Run]:
        runs: list[Run] = self.call("create_runs", specs)
        self._held.learn(specs, runs)
        return runs

    def _create_quietly(self, specs: list[NewRun]) -> None:
        """Create runs this client made itself (held back): it has them, so the server's answer
        leaves them out."""
        self.call_quietly("create_runs", specs)

    def create_run_deferred(self, spec: NewRun) -> Run:
        """Create a run; a run of an experiment this client has created runs in is made here and
        sent with its end, or with this client's next request (see `remote_held`)."""
        held = self._held.hold(spec, self.settle)
        return held if held is not None else self._create_now([spec])[0]

    def settle(self) -> None:
        self._held.settle()

    def end_runs(self, ends: Sequence[tuple[str, RunStatus, str | None, int]]) -> None:
        rest = self._held.send_with(ends)
        if rest:
            self.call("end_runs", rest)

    def get_run(self, run_id: str, *, now_ms: int | None = None) -> Run:
        return self.call("get_run", run_id, now_ms=now_ms)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        self.call("log_params", run_id, params)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.call("set_tags", run_id, tags)

    def reopen_run(self, run_id: str, now_ms: int) -> None:
        self.call("reopen_run", run_id, now_ms)

    def rename_run(self, run_id: str, name: str) -> None:
        self.call("rename_run", run_id, name)

    def delete_run_tag(self, run_id: str, key: str) -> None:
        self.call("delete_run_tag", run_id, key)

    def heartbeat(self, run_ids: Sequence[str], now_ms: int) -> None:
        self.call("heartbeat", run_ids, now_ms)

    def end_run(self, run_id: str, status: RunStatus, error: str | None, end_ms: int) -> None:
        if self._held.send_with([(run_id, status, error, end_ms)]):
            self.call("end_run", run_id, status, error, end_ms)

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
        return self.call(
            "search_runs",
            experiments=experiments,
            where=where,
            order_by=order_by,
            limit=limit,
            now_ms=now_ms,
            offset=offset,
        )

    def count_runs(self, *, experiments: Sequence[str] | None, where: Expr | None, now_ms: int) -> int:
        return self.call("count_runs", experiments=experiments, where=where, now_ms=now_ms)

    def reap_crashed(self, now_ms: int) -> list[str]:
        return self.call("reap_crashed", now_ms)

    # logged models ---------------------------------------------------------------------------
    def create_logged_model(self, model: LoggedModel) -> LoggedModel:
        return self.call("create_logged_model", model)

    def get_logged_model(self, model_id: str) -> LoggedModel:
        return self.call("get_logged_model", model_id)

    def update_logged_model(
        self,
        model_id: str,
        *,
        status: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> LoggedModel:
        return self.call("update_logged_model", model_id, status=status, tags=tags, params=params)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        self.call("delete_logged_model_tag", model_id, key)

    def search_logged_models(
        self,
        *,
        experiment_ids: Sequence[str] | None,
        run_id: str | None = None,
        name: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[LoggedModel]:
        return self.call(
            "search_logged_models",
            experiment_ids=experiment_ids,
            run_id=run_id,
            name=name,
            limit=limit,
            offset=offset,
        )

    # metrics ---------------------------------------------------------------------------------
    def write_metrics(self, points: Sequence[PointRow]) -> None:
        """Send metric points in one request; retried until the server answers (it skips points a
        lost answer's earlier try already wrote, so none is written twice)."""
        if not points:
            return
        endpoint = rpc.BY_METHOD["write_metrics"]
        columns = PointColumns.from_rows(points)
        if columns is not None:  # as columns: a fraction of the bytes and of the work on both ends
            content, media = columns.to_bytes(), POINTS
        else:  # a point that is not plain: the server checks it and says what is wrong with it
            content, media = bodies.points_json(points), rpc.JSON
        self.client.request(
            endpoint.verb, endpoint.path, content=content, headers={"content-type": media}, idempotent=True
        )

    def metric_history(self, run_id: str, key: str) -> np.ndarray:
        return self.call("metric_history", run_id, key)

    def metric_keys(self, run_id: str) -> list[str]:
        return self.call("metric_keys", run_id)

    # artifacts and datasets ------------------------------------------------------------------
    def add_artifacts(
        self, run_id: str, items: Sequence[ArtifactRecord], replace: str | None = None
    ) -> list[Artifact]:
        return self.call("add_artifacts", run_id, items, replace)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[Artifact]:
        return self.call("list_artifacts", run_id, prefix)

    def delete_artifacts(self, run_id: str, paths: Sequence[str]) -> int:
        return self.call("delete_artifacts", run_id, paths)

    def referenced_digests(self) -> set[str]:
        return self.call("referenced_digests")

    def add_dataset_version(self, new: NewDataset) -> tuple[DatasetVersion, bool]:
        return self.call("add_dataset_version", new)

    def get_dataset_version(self, name: str, version: int | None = None) -> DatasetVersion:
        return self.call("get_dataset_version", name, version)

    def list_dataset_versions(self, name: str | None = None) -> list[DatasetVersion]:
        return self.call("list_dataset_versions", name)

    # lineage and audit -----------------------------------------------------------------------
    def add_edge(self, edge: LineageEdge) -> None:
        self.call("add_edge", edge)

    def add_edges(self, edges: Sequence[LineageEdge]) -> None:
        self.call("add_edges", edges)

    def edges(
        self, *, src: tuple[str, str] | None = None, dst: tuple[str, str] | None = None
    ) -> list[LineageEdge]:
        return self.call("edges", src=src, dst=dst)

    def record_audit(
        self,
        action: str,
        entity_type: str,
        entity_id: str,
        before: str | None,
        after: str | None,
        edges: Sequence[LineageEdge] = (),
    ) -> None:
        self.call("record_audit", action, entity_type, entity_id, before, after, edges=edges)

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
        return self.call(
            "audit_events",
            entity_id=entity_id,
            actor=actor,
            since_ms=since_ms,
            limit=limit,
            user=user,
            actions=actions,
            until_ms=until_ms,
            newest_first=newest_first,
            offset=offset,
        )

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
        return self.call(
            "count_audit_events",
            entity_id=entity_id,
            actor=actor,
            user=user,
            actions=actions,
            since_ms=since_ms,
            until_ms=until_ms,
        )

    def audit_actions(self) -> list[str]:
        return self.call("audit_actions")

    def verify_audit(self, anchor: AuditHead | None = None) -> AuditCheck:
        """Check the audit chain in the server, with the server's audit key."""
        return self.call("verify_audit", anchor)

    def adopt_audit(self) -> AuditAdoption:
        return self.call("adopt_audit")

    def scrub(self) -> str:
        return self.call("scrub")
