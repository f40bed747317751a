"""Runs left open when the backend closes (at exit, or on `plinth.configure`)."""

from __future__ import annotations

import pytest

import plinth
from plinth.core.entities import RunStatus
from plinth.core.errors import PlinthWarning, StoreError
from plinth.core.settings import Settings
from plinth.tracking import context


def test_closing_the_backend_ends_open_runs_with_their_metrics(settings: Settings) -> None:
    plinth.configure(settings)
    run = plinth.start_run("exit")
    run.log_metric("loss", 0.5)

    context.reset()

    plinth.configure(settings)
    stored = plinth.get_run(run.id)
    assert stored.status is RunStatus.FINISHED
    assert stored.metrics["loss"] == 0.5
    assert plinth.active_run() is None


def test_a_run_that_cannot_end_warns_and_the_others_still_end(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    be = plinth.configure(settings)
    doomed, kept = plinth.start_run("exit"), plinth.start_run("exit")
    end_run = be.store.end_run

    def store_gone(run_id: str, *args: object) -> None:
        if run_id == doomed.id:
            raise StoreError("disk full")
        end_run(run_id, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(be.store, "end_run", store_gone)

    with pytest.warns(PlinthWarning, match=f"{doomed.id}.*disk full.*may be lost"):
        context.reset()

    plinth.configure(settings)
    assert plinth.get_run(kept.id).status is RunStatus.FINISHED
    assert plinth.get_run(doomed.id).status is RunStatus.RUNNING


def test_the_newest_open_run_is_active_until_it_ends(settings: Settings) -> None:
    plinth.configure(settings)
    outer = plinth.start_run("nested")
    inner = plinth.start_run("nested")
    assert plinth.active_run() is inner
    inner.end()
    assert plinth.active_run() is outer
    outer.end()
    assert plinth.active_run() is None
