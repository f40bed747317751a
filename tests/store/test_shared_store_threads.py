"""One store shared by many threads (a team server's requests): none uses a row another thread
has made but not yet committed."""

from __future__ import annotations

import threading
from collections.abc import Callable

from plinth.store.sql import SqlStore


def _together(n: int, work: Callable[[int], object]) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def one(i: int) -> None:
        start.wait()
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_threads_create_runs_in_a_new_experiment_at_once(store_url: str) -> None:
    store = SqlStore(store_url, actor="tester")
    env = {"python": "3.11", "host": "h"}  # one new environment row for all of them, too
    try:
        for round_ in range(3):
            errors = _together(
                12,
                lambda i, name=f"fresh-{round_}": store.create_run(
                    experiment=name,
                    name=f"r{i}",
                    params={},
                    tags={},
                    environment=env,
                    heartbeat_s=10,
                    user="u",
                ),
            )
            assert errors == []
        assert len(store.search_runs(experiments=None, where=None, order_by=[], limit=None, now_ms=0)) == 36
    finally:
        store.close()


def test_threads_log_a_new_metric_key_at_once(store_url: str) -> None:
    store = SqlStore(store_url, actor="tester")
    try:
        runs = [
            store.create_run(
                experiment="e", name=None, params={}, tags={}, environment=None, heartbeat_s=10, user="u"
            )
            for _ in range(12)
        ]
        errors = _together(12, lambda i: store.write_metrics([(runs[i].id, "brand-new", 0, 0, 1, 0.5)]))
        assert errors == []
        assert all(len(store.metric_history(r.id, "brand-new")) == 1 for r in runs)
    finally:
        store.close()
