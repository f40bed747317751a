"""Background threads outlive any failure: they count it and keep going."""

from __future__ import annotations

import threading

from plinth.tracking.heartbeat import Heartbeat


class _FlakyStore:
    """Heartbeats fail with a raw driver error twice, then land."""

    def __init__(self) -> None:
        self.calls = 0
        self.landed = threading.Event()

    def heartbeat(self, run_ids: list[str], now_ms: int) -> None:
        self.calls += 1
        if self.calls <= 2:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        self.landed.set()


def test_heartbeat_survives_a_raw_store_error() -> None:
    store = _FlakyStore()
    beat = Heartbeat(store, interval_s=0.01)  # type: ignore[arg-type]
    beat.add("run-1")
    try:
        assert store.landed.wait(10)
        assert beat.failures == 2
    finally:
        beat.close()
