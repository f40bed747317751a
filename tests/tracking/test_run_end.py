"""How a run ends: its last points and its end land together, and every guarantee holds when they cannot."""

from __future__ import annotations

import threading

import pytest

import plinth
from plinth.core.entities import RunStatus
from plinth.core.errors import PlinthWarning, RunNotActive
from plinth.core.ids import now_ms
from plinth.tracking.context import Backend
from plinth.tracking.run import DROPPED_TAG


def test_a_run_ends_with_the_points_it_logged_last(tracking: Backend) -> None:
    with plinth.start_run(experiment="end", params={"lr": 0.1}) as run:
        run.log_metrics({"loss": 0.5, "acc": 0.9})
    got = plinth.get_run(run.id)
    assert got.status is RunStatus.FINISHED and got.end_ms is not None
    assert got.metrics == {"loss": 0.5, "acc": 0.9}
    assert tracking.writer.pending == 0


def test_a_point_refused_at_the_end_is_dropped_alone_and_the_run_still_finishes(tracking: Backend) -> None:
    run = plinth.start_run(experiment="end")
    run.log_metric("good", 1.0)
    tracking.writer.append((run.id, "bad", 0, 1, 0, object()))  # type: ignore[arg-type]
    run.log_metric("also_good", 2.0)
    with pytest.warns(PlinthWarning, match="1 metric point could not be stored"):
        run.end()
    got = plinth.get_run(run.id)
    assert got.status is RunStatus.FINISHED
    assert got.metrics == {"good": 1.0, "also_good": 2.0}
    assert got.tags[DROPPED_TAG] == "1"
    assert plinth.verify_audit().ok


def test_a_run_ended_elsewhere_keeps_its_points_and_says_so(tracking: Backend) -> None:
    run = plinth.start_run(experiment="end")
    run.log_metric("loss", 0.25)
    tracking.store.end_run(run.id, RunStatus.KILLED, "stopped from outside", now_ms())
    with pytest.raises(RunNotActive, match="already ended as KILLED"):
        run.end()
    got = plinth.get_run(run.id)
    assert got.status is RunStatus.KILLED
    assert got.metrics == {"loss": 0.25}


def test_a_failing_run_ends_failed_with_its_points(tracking: Backend) -> None:
    with pytest.raises(ValueError), plinth.start_run(experiment="end") as run:
        run.log_metric("loss", 3.0)
        raise ValueError("diverged")
    got = plinth.get_run(run.id)
    assert got.status is RunStatus.FAILED and got.error == "ValueError: diverged"
    assert got.metrics == {"loss": 3.0}


def test_a_run_ended_inside_an_open_batch_lands_with_it(tracking: Backend) -> None:
    run = plinth.start_run(experiment="end")
    run.log_metric("loss", 0.5)
    with tracking.store.batch():
        tracking.store.set_tags(run.id, {"stage": "last"})
        run.end()
    got = plinth.get_run(run.id)
    assert got.status is RunStatus.FINISHED
    assert got.metrics == {"loss": 0.5} and got.tags["stage"] == "last"


def test_runs_in_several_threads_keep_one_valid_audit_chain(tracking: Backend) -> None:
    def work(worker: int) -> None:
        for i in range(15):
            with plinth.start_run(experiment="threads", params={"worker": worker, "i": i}) as run:
                run.log_metrics({"m": float(i)})

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = plinth.search_runs(experiment="threads")
    assert len(runs) == 60
    assert all(r.status is RunStatus.FINISHED and r.metrics["m"] == float(r.params["i"]) for r in runs)
    check = plinth.verify_audit()
    assert check.ok and check.head is not None and check.head.seq == check.events
    ended = [e for e in tracking.store.audit_events() if e.action == "run.end"]
    assert len(ended) == 60


def test_runs_of_one_process_record_one_environment(tracking: Backend) -> None:
    with plinth.start_run(experiment="env") as first:
        pass
    with plinth.start_run(experiment="env") as second:
        pass
    one, two = plinth.get_run(first.id), plinth.get_run(second.id)
    assert one.environment is not None and one.environment == two.environment
    assert one.environment["python"]["version"]
