"""The `logs_in` fixture: a test that uses it runs twice, once with the prediction logs it writes
kept as JSON rows, once with them gathered into columnar segments as soon as they are written.

Every read of prediction logs (monitoring, lineage, erasure) must give the same answers both ways.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from plinth.core.entities import PredictionLog
from plinth.store.sql.serving import SqlServing


@pytest.fixture(params=["rows", "segments"])
def logs_in(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where written prediction logs are read from: their rows, or segments made at once."""
    if request.param == "segments":
        write = SqlServing.write_prediction_logs

        def write_and_compact(self: SqlServing, logs: Sequence[PredictionLog]) -> None:
            write(self, logs)
            for model in {entry.model for entry in logs}:
                self.compact_prediction_logs(model, force=True)

        monkeypatch.setattr(SqlServing, "write_prediction_logs", write_and_compact)
    return str(request.param)
