"""Prediction logs, labels, drift references and alert states, as a part of `RemoteStore`.

Reading raw logs (inputs, outputs, subject ids) needs the `raw` right in the workspace; counts
and statistics need only `read`. Segment tables travel as Arrow IPC streams.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from plinth.store import bodies, rpc
from plinth.store.base import RemovedPredictions
from plinth.store.remote_base import RemoteBase

if TYPE_CHECKING:
    import pyarrow as pa

    from plinth.core.entities import AlertState, Label, PredictionLog


class RemoteServing(RemoteBase):
    """Serving methods of RemoteStore."""

    def write_prediction_logs(self, logs: Sequence[PredictionLog]) -> None:
        self.call("write_prediction_logs", logs)

    def write_prediction_columns(self, model: str, tables: Sequence[pa.Table]) -> int:
        """Send segment tables as Arrow IPC streams in one request."""
        endpoint = rpc.BY_METHOD["write_prediction_columns"]
        response = self.send(endpoint, {"model": model}, content=bodies.pack_tables(tables))
        return self.result(endpoint, response)

    def prediction_table(
        self,
        model: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
        text: bool = False,
    ) -> pa.Table:
        return self.call(
            "prediction_table", model, since_ms=since_ms, until_ms=until_ms, version=version, text=text
        )

    def compact_prediction_logs(self, model: str, *, force: bool = False) -> int:
        return self.call("compact_prediction_logs", model, force=force)

    def remove_predictions(
        self, *, subject_id: str | None = None, before_ms: int | None = None, dry_run: bool = False
    ) -> RemovedPredictions:
        return self.call("remove_predictions", subject_id=subject_id, before_ms=before_ms, dry_run=dry_run)

    def sweep_prediction_blobs(self, *, min_age_s: float = 0.0) -> list[str]:
        return self.call("sweep_prediction_blobs", min_age_s=min_age_s)

    def window_labels(
        self,
        model: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
    ) -> dict[str, str]:
        return self.call("window_labels", model, since_ms=since_ms, until_ms=until_ms, version=version)

    def prediction_logs(
        self,
        model: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
        limit: int | None = None,
    ) -> list[PredictionLog]:
        return self.call(
            "prediction_logs", model, since_ms=since_ms, until_ms=until_ms, version=version, limit=limit
        )

    def delete_prediction_logs(
        self, *, subject_id: str | None = None, before_ms: int | None = None, dry_run: bool = False
    ) -> tuple[int, str]:
        return self.call(
            "delete_prediction_logs", subject_id=subject_id, before_ms=before_ms, dry_run=dry_run
        )

    def count_prediction_logs(self, *, subject_id: str | None = None, before_ms: int | None = None) -> int:
        return self.call("count_prediction_logs", subject_id=subject_id, before_ms=before_ms)

    def prediction_stats(
        self, model: str, *, since_ms: int | None = None, until_ms: int | None = None
    ) -> list[tuple[int, int, str, float, int, int]]:
        return self.call("prediction_stats", model, since_ms=since_ms, until_ms=until_ms)

    def find_prediction(self, request_id: str) -> PredictionLog | None:
        return self.call("find_prediction", request_id)

    def label_of(self, model: str, request_id: str) -> str | None:
        return self.call("label_of", model, request_id)

    def prediction_counts(self, model: str, version: int) -> tuple[int, int]:
        return self.call("prediction_counts", model, version)

    def write_labels(self, model: str, labels: Sequence[Label]) -> int:
        return self.call("write_labels", model, labels)

    def labeled_predictions(
        self,
        model: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
    ) -> list[tuple[PredictionLog, str | None]]:
        return self.call("labeled_predictions", model, since_ms=since_ms, until_ms=until_ms, version=version)

    def delete_labels(
        self, *, subject_id: str | None = None, before_ms: int | None = None, dry_run: bool = False
    ) -> tuple[int, str]:
        return self.call("delete_labels", subject_id=subject_id, before_ms=before_ms, dry_run=dry_run)

    def count_labels(self, *, subject_id: str | None = None, before_ms: int | None = None) -> int:
        return self.call("count_labels", subject_id=subject_id, before_ms=before_ms)

    def set_reference(self, model: str, dataset_version_id: str) -> None:
        self.call("set_reference", model, dataset_version_id)

    def get_reference(self, model: str) -> str | None:
        return self.call("get_reference", model)

    def alert_states(self, rule: str | None = None) -> list[AlertState]:
        return self.call("alert_states", rule)

    def save_alert_state(
        self, state: AlertState, *, action: str | None = None, detail: str | None = None
    ) -> None:
        self.call("save_alert_state", state, action=action, detail=detail)
