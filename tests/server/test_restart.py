"""Faults of a running `plinth server`: a restart while clients log, revocation on every worker.

- The server is killed (SIGKILL, as a crash) and started again on the same port while 20
  clients write metric points through the remote store. Clients retry with back-off; afterwards
  each run holds exactly the points its client was told were written: none lost, none twice.
- With two worker processes, a revoked token is refused (401) by every worker once the
  authorizer's cache (at most 5 s) has run out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from plinth.core.ids import now_ms
from plinth.core.settings import Settings
from plinth.store.open import open_store
from waiting import wait_until

CLIENTS = 20
BATCH = 25
CACHE_S = 5.0  # the authorizer keeps a decision at most this long


class Logger(threading.Thread):
    """One client: writes batches of points to its run until told to stop, counting the acknowledged."""

    def __init__(self, settings: Settings, run_id: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.settings, self.run_id, self.stop = settings, run_id, stop
        self.acknowledged = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        store = open_store(self.settings)
        try:
            while not self.stop.is_set():
                step = self.acknowledged
                batch = [(self.run_id, "loss", step + k, 0, now_ms(), float(step + k)) for k in range(BATCH)]
                store.write_metrics(batch)  # returns once the server has it durably, retries otherwise
                self.acknowledged += len(batch)
        except BaseException as exc:
            self.failure = exc
        finally:
            store.close()


@pytest.mark.slow
def test_a_restart_loses_and_doubles_nothing(
    server_process: Callable[..., Any], store_url: str, tmp_path: Path
) -> None:
    server = server_process(store_url)
    settings = Settings(home=str(tmp_path / "client"), store_url=server.url, token=server.admin_token)
    store = open_store(settings)
    runs = [
        store.create_run(
            experiment="restart",
            name=f"client-{i}",
            params={},
            tags={},
            environment=None,
            heartbeat_s=3600,
            user="tester",
        ).id
        for i in range(CLIENTS)
    ]
    stop = threading.Event()
    loggers = [Logger(settings, run_id, stop) for run_id in runs]
    for logger in loggers:
        logger.start()

    def written() -> int:
        assert not [lg.failure for lg in loggers if lg.failure], [lg.failure for lg in loggers]
        return sum(lg.acknowledged for lg in loggers)

    wait_until(lambda: written() >= CLIENTS * BATCH * 4, "the clients to log before the crash")
    server.kill()
    before_restart = written()
    server.start()
    wait_until(
        lambda: written() >= before_restart + CLIENTS * BATCH * 4, "the clients to log after the restart"
    )
    stop.set()
    for logger in loggers:
        logger.join(timeout=120)
    assert [lg.failure for lg in loggers if lg.failure] == []
    for logger in loggers:
        history = store.metric_history(logger.run_id, "loss")
        assert len(history) == logger.acknowledged, logger.run_id
        assert sorted(int(s) for s in history["step"]) == list(range(logger.acknowledged))
    store.close()


def fresh_status(url: str, token: str, client: int = 1) -> int:
    """The status of whoami on a new connection (so either worker may take it), from `client`
    (its own address, as a proxy would say: the back-off counts refusals per client)."""
    headers = {
        "authorization": f"Bearer {token}",
        "connection": "close",
        "x-forwarded-for": f"10.0.0.{client}",
    }
    return httpx.get(f"{url}/api/v1/whoami", headers=headers, timeout=30).status_code


@pytest.mark.slow
def test_a_revoked_token_is_refused_by_every_worker(
    server_process: Callable[..., Any], tmp_path: Path
) -> None:
    from plinth.store.sql.identity import SqlIdentity

    server = server_process(f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}", workers=2)
    token = server.issue("ci", "editor")
    for _ in range(20):
        assert fresh_status(server.url, token) == 200
    identity = SqlIdentity.from_settings(server.settings)
    try:
        identity.revoke_token("ci", by="tests")
    finally:
        identity.close()
    revoked_at = time.monotonic()
    wait_until(lambda: time.monotonic() - revoked_at > CACHE_S + 0.2, "the authorizer's cache to run out")
    assert [fresh_status(server.url, token, client) for client in range(20)] == [401] * 20
