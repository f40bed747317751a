"""Reading ahead in a thread: the source's next runs are fetched while the last ones are written.

Reading MLflow's rows and writing plinth's both spend much of their time in database drivers that
release the GIL, so a reader thread and the writing thread overlap on two cores.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_JOIN_S = 60.0
"""How long a reader stopped early may take to notice (a fetch in flight finishes first)."""


class _End(Generic[T]):
    """What the reader puts after its last item: nothing, or the error that stopped it."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def prefetched(produce: Callable[[], Iterator[T]], depth: int = 4) -> Iterator[T]:
    """The items of `produce()`, made in a thread of their own at most `depth` ahead.

    The iterator is created and closed in that thread (a database connection opened there is
    used there only). An error it raises is raised here, after the items before it. Stopping
    early (an error while consuming, or closing this generator) stops the reader too.
    """
    items: queue.Queue[T | _End[T]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: T | _End[T]) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        error: BaseException | None = None
        try:
            source = produce()
            try:
                for item in source:
                    if not put(item):
                        return
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # handed to the consumer, who raises it
            error = exc
        put(_End(error))

    thread = threading.Thread(target=read, name="plinth-import-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=_JOIN_S)
