"""`StoreThreads`: blocking store calls run in a fixed pool, in the order they came."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading

import pytest

from loops import run_loop
from plinth.server.store_threads import StoreThreads

who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_calls_run_in_the_pool_with_the_callers_context() -> None:
    threads = StoreThreads(2)
    loop_thread = 0

    def call(x: int) -> tuple[int, bool, str]:
        return x * 2, threading.get_ident() != loop_thread, who.get()

    async def main() -> list[tuple[int, bool, str]]:
        nonlocal loop_thread
        loop_thread = threading.get_ident()
        who.set("alice")
        return list(await asyncio.gather(*(threads.run(call, i) for i in range(5))))

    assert run_loop(main()) == [(i * 2, True, "alice") for i in range(5)]
    threads.close()


def test_an_exception_comes_back_to_the_caller() -> None:
    threads = StoreThreads(1)

    def fail() -> None:
        raise LookupError("no such run")

    with pytest.raises(LookupError, match="no such run"):
        run_loop(threads.run(fail))
    threads.close()


def test_no_more_calls_than_threads_run_at_once() -> None:
    threads = StoreThreads(2)
    lock = threading.Lock()
    running, most = 0, 0
    release = threading.Event()

    def call() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(5)
        with lock:
            running -= 1

    async def main() -> None:
        calls = [asyncio.ensure_future(threads.run(call)) for _ in range(6)]
        for _ in range(1_000):  # until both threads hold a call (the other four wait their turn)
            if running == 2:
                break
            await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(*calls)

    run_loop(main())
    assert most == 2
    threads.close()


def test_a_call_whose_caller_went_away_still_runs_and_the_pool_goes_on() -> None:
    threads = StoreThreads(1)
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        finished.set()
        return "late"

    async def main() -> str:
        call = asyncio.ensure_future(threads.run(slow))
        for _ in range(1_000):
            if started.is_set():
                break
            await asyncio.sleep(0.01)
        call.cancel()  # the client went away: its answer is dropped when it comes
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await call
        return await threads.run(lambda: "next")

    assert run_loop(main()) == "next"
    assert finished.is_set()
    threads.close()


def test_closing_ends_the_threads_and_refuses_later_calls() -> None:
    threads = StoreThreads(2)
    before = set(threading.enumerate())
    assert run_loop(threads.run(lambda: 1)) == 1
    running = [t for t in set(threading.enumerate()) - before if t.name.startswith("plinth-store")]
    assert len(running) == 2
    threads.close()
    for thread in running:
        thread.join(5)
    assert running and not any(t.is_alive() for t in running)
    with pytest.raises(RuntimeError, match="closed"):
        run_loop(threads.run(lambda: 2))


def test_a_pool_no_longer_referenced_ends_its_threads() -> None:
    threads = StoreThreads(2)
    before = set(threading.enumerate())
    assert run_loop(threads.run(lambda: 1)) == 1
    running = [t for t in set(threading.enumerate()) - before if t.name.startswith("plinth-store")]
    del threads
    gc.collect()
    for thread in running:
        thread.join(5)
    assert len(running) == 2 and not any(t.is_alive() for t in running)
