"""The serving logger gathers a model's logs into columnar segments once enough are written, and
a compaction that fails loses nothing."""

from __future__ import annotations

import pytest

from plinth.core.entities import PredictionLog
from plinth.core.errors import StoreError
from plinth.serving.logger import PredictionLogger
from plinth.store import segments
from plinth.store.sql import SqlStore
from plinth.store.sql.serving import SqlServing
from plinth.tracking.context import Backend


def entry(i: int) -> PredictionLog:
    return PredictionLog(f"r{i}", "m", 1, "primary", i, 1.0, None, f'{{"instances": [[{i}]]}}', "[0]", 200, 1)


def unsegmented(be: Backend) -> int:
    """Logs of "m" still held as rows."""
    store = be.store
    assert isinstance(store, SqlStore)
    return store._unsegmented("m", 10**6)


def test_the_logger_gathers_a_models_logs_into_a_segment(
    tracking: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segments, "COMPACT_ROWS", 5)
    logger = PredictionLogger(tracking.store, 100, interval_s=3600)
    for i in range(4):
        logger.put(entry(i))
    logger.flush()
    assert unsegmented(tracking) == 4  # fewer than COMPACT_ROWS: they wait as rows
    for i in range(4, 12):
        logger.put(entry(i))
    logger.flush()
    assert unsegmented(tracking) == 0
    assert [x.request_id for x in tracking.store.prediction_logs("m")] == [f"r{i}" for i in range(12)]
    assert tracking.store.prediction_table("m").column("at:0").to_pylist() == list(range(12))
    logger.close()


def test_a_failed_compaction_is_counted_and_the_logs_stay_readable(
    tracking: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(segments, "COMPACT_ROWS", 2)

    def unreachable(self: SqlServing, model: str, *, force: bool = False) -> int:
        raise StoreError("The artifact store s3://bucket failed: connection refused")

    monkeypatch.setattr(SqlServing, "compact_prediction_logs", unreachable)
    logger = PredictionLogger(tracking.store, 100, interval_s=3600)
    for i in range(3):
        logger.put(entry(i))
    logger.flush()
    assert (logger.compaction_failures, logger.written, logger.pending) == (1, 3, 0)
    assert "compacting the prediction logs of 'm' failed" in caplog.text
    assert len(tracking.store.prediction_logs("m")) == 3
    logger.close()
