"""Group commit: the tracking writes that wait together are made in one transaction.

Under many clients, each write in a transaction of its own pays that transaction's fixed cost
again: SQLite's write lock and commit, PostgreSQL's round trips and its commit's flush, and on
both the audit chain's lock, which every writer of a store takes in turn from the read of the
chain's ends to its commit. So a store's tracking writes (runs created and ended, points,
params, tags, heartbeats) that arrive while one group of them is being made wait, and go
together as the next group, in the order they came: one transaction, one lock, one commit.
Each is answered only once its group has committed, so an answer still means the write is
durable. A write that arrives alone is made alone, at once.

A write that fails fails alone: when any write of a group raises, the group's transaction rolls
back and each of its writes is made again in a transaction of its own, in the same order, so
every request gets the answer it would have had on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from starlette.responses import Response

from plinth.server.context import RequestContext
from plinth.server.store_threads import StoreThreads

log = logging.getLogger("plinth.server")

GROUPED = frozenset(
    {
        "create_run",
        "create_runs",
        "end_run",
        "end_runs",
        "heartbeat",
        "log_params",
        "set_tags",
        "write_metrics",
    }
)
"""The store methods whose requests are grouped: small writes of one run each, many clients'
worth at once, none reading what another request of its group writes."""
MAX_GROUP = 64
"""Writes in one group at most: a group's answers wait for its last write."""


@dataclass
class GroupedWrite:
    """One request in a group: `parse` decodes its arguments (a bad body fails it alone, before
    the group's transaction opens), `call` makes its write and its answer from them."""

    ctx: RequestContext
    parse: Callable[[], dict[str, object]]
    call: Callable[[dict[str, object]], Response]
    future: asyncio.Future[Response] = field(init=False)


class WriteGroups:
    """Queues of grouped writes, one per workspace (each workspace has its store), each made
    by one store thread at a time (see the module's docstring)."""

    def __init__(self, threads: StoreThreads, limit: int = MAX_GROUP) -> None:
        self._threads = threads
        self._limit = limit
        self._queues: dict[str, deque[GroupedWrite]] = {}
        self._draining: set[asyncio.Task[None]] = set()
        self._busy: set[str] = set()

    async def run(self, write: GroupedWrite) -> Response:
        """`write`'s answer, once the group it joined has committed; its error raised here."""
        loop = asyncio.get_running_loop()
        write.future = loop.create_future()
        workspace = write.ctx.workspace
        queue = self._queues.setdefault(workspace, deque())
        queue.append(write)
        if workspace not in self._busy:
            self._busy.add(workspace)
            task = loop.create_task(self._drain(workspace, queue))
            self._draining.add(task)  # kept until done: the loop holds tasks only weakly
            task.add_done_callback(self._draining.discard)
        return await write.future

    async def _drain(self, workspace: str, queue: deque[GroupedWrite]) -> None:
        group: list[GroupedWrite] = []
        try:
            while queue:
                group = [queue.popleft() for _ in range(min(len(queue), self._limit))]
                outcomes = await self._threads.run(make_group, group)
                for write, outcome in zip(group, outcomes, strict=True):
                    _settle(write.future, outcome)
                group = []
        except BaseException as exc:  # the pool is gone (shutdown) or the task was cancelled
            for write in [*group, *queue]:
                _settle(write.future, exc if isinstance(exc, Exception) else RuntimeError("server stopping"))
            queue.clear()
            raise
        finally:
            self._busy.discard(workspace)


def make_group(writes: Sequence[GroupedWrite]) -> list[Response | Exception]:
    """Each write's answer or error, the writes made in one transaction where they all succeed
    (in a store thread)."""
    outcomes: list[Response | Exception | None] = [None] * len(writes)
    ready: list[tuple[int, dict[str, object]]] = []
    for i, write in enumerate(writes):
        try:
            ready.append((i, write.parse()))
        except Exception as exc:
            outcomes[i] = exc
    if len(ready) > 1:
        answers: list[Response] = []
        try:
            store = writes[ready[0][0]].ctx.store  # the workspace's: every write of the group joins its batch
            with store.batch(independent=True):
                for i, arguments in ready:
                    answers.append(writes[i].call(arguments))
        except Exception as exc:  # rolled back: each is made again alone, below
            log.debug("A group of %d writes was rolled back (%r); each is made alone", len(ready), exc)
        else:
            for (i, _arguments), answer in zip(ready, answers, strict=True):
                outcomes[i] = answer
            ready = []
    for i, arguments in ready:
        try:
            outcomes[i] = writes[i].call(arguments)
        except Exception as exc:
            outcomes[i] = exc
    return [outcome if outcome is not None else RuntimeError("unanswered") for outcome in outcomes]


def _settle(future: asyncio.Future[Response], outcome: Response | BaseException) -> None:
    if future.done():  # its request was cancelled (the client went away)
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
