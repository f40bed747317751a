"""Entities built the fast way are the same values as those built the usual way."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from plinth.core.entities import Run, RunStatus


def fields() -> dict[str, Any]:
    return {
        "id": "r1",
        "experiment_id": "e1",
        "experiment_name": "iris",
        "name": "run-1",
        "status": RunStatus.FINISHED,
        "user": "ana",
        "start_ms": 1_000,
        "end_ms": 3_500,
        "heartbeat_ms": 3_000,
        "heartbeat_s": 10.0,
        "params": {"lr": "0.1"},
        "tags": {"team": "vision"},
        "metrics": {"acc": 0.93},
        "error": None,
        "environment": {"python": "3.11"},
        "artifacts": [],
    }


def test_run_of_equals_the_constructed_run() -> None:
    fast, usual = Run.of(**fields()), Run(**fields())
    assert fast == usual
    assert fast.duration_s == 2.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.name = "other"  # type: ignore[misc]


def test_run_of_refuses_missing_and_unknown_fields() -> None:
    missing = fields()
    del missing["artifacts"]
    with pytest.raises(TypeError, match="artifacts"):
        Run.of(**missing)
    with pytest.raises(TypeError, match="colour"):
        Run.of(**fields(), colour="red")
