"""The background checkpoint writer: failures stay alone, memory stays bounded, runs wait for it,
and a process killed mid-write leaves no half checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import plinth
from plinth.core.settings import Settings
from plinth.errors import PlinthWarning
from plinth.tracking import checkpoint_buffers, checkpoint_payloads
from plinth.tracking.checkpoint_buffers import buffer_pool
from plinth.tracking.checkpoint_writer import SLOTS, checkpoint_writer
from plinth.tracking.context import Backend
from plinth.tracking.run import attach_run, detach_run
from waiting import wait_until

RESOURCES = Path(__file__).parent.parent / "resources"


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Storing a payload waits until the test sets the event (set at the end in any case)."""
    opened = threading.Event()
    store = checkpoint_payloads.store_payload

    def gated(*args: Any) -> Any:
        opened.wait()
        return store(*args)

    monkeypatch.setattr(checkpoint_payloads, "store_payload", gated)
    yield opened
    opened.set()


def finishes(call: Callable[[], object]) -> tuple[threading.Thread, threading.Event]:
    """Run `call` in a thread; the event is set once it returned."""
    done = threading.Event()

    def target() -> None:
        call()
        done.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, done


def test_a_failing_checkpoint_is_caught_alone_and_the_next_ones_land(tracking: Backend) -> None:
    writer = checkpoint_writer()
    failed = writer.failed
    with plinth.start_run("ckpt") as run:
        poisoned = run.log_checkpoint({"w": torch.ones(2), "fn": lambda: 0}, step=1)  # torch.save refuses it
        good = run.log_checkpoint({"w": torch.ones(2)}, step=2)
        with pytest.raises(Exception, match="lambda"):
            poisoned.wait()
        assert good.wait().step == 2
    assert poisoned.failed() and "failed" in repr(poisoned)
    assert writer.failed == failed + 1
    assert [c.step for c in plinth.list_checkpoints(run.id)] == [2]


def test_a_failure_nobody_waited_for_is_a_warning_when_the_run_ends(tracking: Backend) -> None:
    run = plinth.start_run("ckpt")
    run.log_checkpoint({"w": torch.ones(2), "fn": lambda: 0}, step=7)
    run.log_checkpoint({"w": torch.ones(2)}, step=8)
    with pytest.warns(PlinthWarning, match=f"1 checkpoint of run {run.id} could not be stored.*step 7"):
        run.end()
    assert plinth.get_run(run.id).status is plinth.RunStatus.FINISHED
    assert [c.step for c in plinth.list_checkpoints(run.id)] == [8]


def test_a_third_checkpoint_waits_while_two_are_being_written(
    tracking: Backend, gate: threading.Event
) -> None:
    assert SLOTS == 2
    with plinth.start_run("ckpt") as run:
        first = run.log_checkpoint({"w": torch.full((4,), 1.0)}, step=1)
        second = run.log_checkpoint({"w": torch.full((4,), 2.0)}, step=2)
        _, third_returned = finishes(lambda: run.log_checkpoint({"w": torch.full((4,), 3.0)}, step=3))
        assert not third_returned.wait(0.3)  # back-pressure: no third copy in memory
        assert not first.done() and not second.done()
        gate.set()
        assert third_returned.wait(60)
    assert [c.step for c in plinth.list_checkpoints(run.id)] == [1, 2, 3]
    assert plinth.load_checkpoint(plinth.list_checkpoints(run.id)[2].id)["w"].tolist() == [3.0] * 4


def kept_tensors() -> set[int]:
    """Identities of the tensors the pool keeps."""
    return {id(t) for generation in buffer_pool()._generations for free in generation.values() for t in free}


def test_copies_taken_while_the_writer_is_busy_reuse_two_kept_generations(
    tracking: Backend, gate: threading.Event
) -> None:
    with plinth.start_run("ckpt") as run:
        first = run.log_checkpoint({"w": torch.zeros(1000)}, step=1)
        second = run.log_checkpoint({"w": torch.ones(1000)}, step=2)  # the first is not stored yet
        gate.set()
        first.wait()
        second.wait()
        assert buffer_pool().generations == 2 and buffer_pool().nbytes == 8000
        kept = kept_tensors()
        gate.clear()
        third = run.log_checkpoint({"w": torch.full((1000,), 3.0)}, step=3)
        fourth = run.log_checkpoint({"w": torch.full((1000,), 4.0)}, step=4)
        assert buffer_pool().nbytes == 0  # both copies went into kept memory, none allocated
        gate.set()
        third.wait()
        fourth.wait()
        assert buffer_pool().generations == 2
        assert kept_tensors() == kept
    stored = plinth.list_checkpoints(run.id)
    assert [(c.step, c.load()["w"].unique().tolist()) for c in stored] == [
        (1, [0.0]),
        (2, [1.0]),
        (3, [3.0]),
        (4, [4.0]),
    ]


def test_the_pool_keeps_at_most_two_generations() -> None:
    pool = checkpoint_buffers.BufferPool()
    for value in range(3):
        pool.keep([torch.full((10,), float(value))])
    assert pool.generations == 2 and pool.nbytes == 80
    newest = pool.take((10,), torch.float32)
    assert newest is not None and newest[0].item() == 2.0
    older = pool.take((10,), torch.float32)
    assert older is not None and older[0].item() == 1.0
    assert pool.take((10,), torch.float32) is None and pool.generations == 0


def test_a_stored_checkpoints_memory_is_reused_by_the_next_copy_until_the_run_ends(tracking: Backend) -> None:
    weights = torch.zeros(1000)
    with plinth.start_run("ckpt") as run:
        for value in range(3):
            weights.fill_(value)
            run.log_checkpoint({"w": weights, "epoch": value}, step=value).wait()
            assert buffer_pool().nbytes == 4000  # one copy kept: the last stored
        stored = plinth.list_checkpoints(run.id)
    assert buffer_pool().nbytes == 0
    assert [c.load()["w"].unique().tolist() for c in stored] == [[0.0], [1.0], [2.0]]


def test_copies_in_flight_are_never_reused(tracking: Backend, gate: threading.Event) -> None:
    weights = torch.zeros(100)
    gate.set()
    with plinth.start_run("ckpt") as run:
        run.log_checkpoint({"w": weights}, step=0).wait()  # one copy kept
        gate.clear()
        first = run.log_checkpoint({"w": weights.fill_(1.0)}, step=1)  # takes the kept copy
        second = run.log_checkpoint({"w": weights.fill_(2.0)}, step=2)  # new memory
        gate.set()
        loaded = [plinth.load_checkpoint(h.wait())["w"].unique().tolist() for h in (first, second)]
    assert loaded == [[1.0], [2.0]]


def test_ending_a_run_waits_for_its_checkpoints(tracking: Backend, gate: threading.Event) -> None:
    run = plinth.start_run("ckpt")
    run.log_checkpoint({"w": torch.ones(3)}, step=1)
    thread, ended = finishes(run.end)
    assert not ended.wait(0.3)
    assert plinth.get_run(run.id).status is plinth.RunStatus.RUNNING
    gate.set()
    thread.join(60)
    assert ended.is_set()
    assert plinth.get_run(run.id).status is plinth.RunStatus.FINISHED
    assert [c.step for c in plinth.list_checkpoints(run.id)] == [1]


def test_detaching_a_run_waits_for_its_checkpoints(tracking: Backend, gate: threading.Event) -> None:
    created = plinth.start_run("ckpt")
    attached = attach_run(plinth.get_run(created.id), tracking)
    attached.log_checkpoint({"w": torch.ones(3)}, step=4)
    thread, detached = finishes(lambda: detach_run(attached))
    assert not detached.wait(0.3)
    gate.set()
    thread.join(60)
    assert detached.is_set()
    latest = created.latest_checkpoint()
    assert latest is not None and latest.step == 4
    created.end()


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "PLINTH_HOME": settings.home,
        "PLINTH_STORE": settings.resolved_store_url,
        "PLINTH_TOKEN": settings.token or "",
        "PLINTH_SYSTEM_METRICS": "0",
        "PLINTH_HEARTBEAT_S": "0.2",
    }


@pytest.mark.slow
def test_a_checkpoint_half_written_when_the_process_died_is_never_listed(settings: Settings) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(RESOURCES / "checkpoint_killed.py")],
        env=_env(settings),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        payload = proc.stdout.readline().strip()  # checkpoint 2's payload blob is stored...
        word, run_id = proc.stdout.readline().split()  # ...and its manifest is being written
        assert word == "writing"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    be = plinth.configure(settings)
    assert len(payload) == 64 and be.blobs.exists(payload)
    latest = plinth.latest_checkpoint(run_id)
    assert latest is not None and latest.step == 1
    assert latest.load()["w"].tolist() == [0.0] * 4
    assert [c.step for c in plinth.list_checkpoints(run_id)] == [1]
    assert payload not in be.store.referenced_digests()  # an orphan blob: `plinth gc` collects it
    wait_until(
        lambda: plinth.get_run(run_id).status is plinth.RunStatus.CRASHED, "the killed run to read CRASHED"
    )
