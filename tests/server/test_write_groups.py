"""Group commit: tracking writes that wait while a group is being made go together in the next
one, each answered as it would have been alone (on SQLite, then PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from plinth.core.entities import RunStatus
from plinth.core.errors import NotFound, RunNotActive
from plinth.server import write_groups
from plinth.server.write_groups import GroupedWrite, WriteGroups
from plinth.store.http import ServerClient
from plinth.store.remote import RemoteStore

API = "/api/v1"


def remote(server: Any) -> RemoteStore:
    return RemoteStore(ServerClient(server.url, token=server.admin_token))


def new_run(store: RemoteStore) -> str:
    return store.create_run(
        experiment="groups", name=None, params={}, tags={}, environment=None, heartbeat_s=60.0, user="u"
    ).id


class Gate:
    """Holds the first group made after it is set up until `expected` writes have arrived, so
    the writes that did not make it into that group wait together; records every group's size."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, expected: int) -> None:
        self.sizes: list[int] = []
        self.arrived = 0
        self.expected = expected
        self.released = False
        make_group, run = write_groups.make_group, WriteGroups.run

        def gated(writes: Sequence[GroupedWrite]) -> list[Any]:
            self.sizes.append(len(writes))
            if not self.released:
                self.released = True
                deadline = time.monotonic() + 30
                while self.arrived < self.expected and time.monotonic() < deadline:
                    time.sleep(0.005)
            return make_group(writes)

        async def counted(groups: WriteGroups, write: GroupedWrite) -> Any:
            self.arrived += 1  # on the event loop, just before the write joins its queue
            return await run(groups, write)

        monkeypatch.setattr(write_groups, "make_group", gated)
        monkeypatch.setattr(WriteGroups, "run", counted)


@pytest.fixture
def concurrently() -> Iterator[Callable[..., list[Any]]]:
    """Call each function in a thread of its own, all at once; their results or errors, in order."""
    pool = ThreadPoolExecutor(16)

    def call(*fns: Callable[[], Any]) -> list[Any]:
        futures = [pool.submit(fn) for fn in fns]
        outcomes: list[Any] = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=60))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    yield call
    pool.shutdown(wait=True)


def points(run_id: str, n: int = 10) -> list[tuple[str, str, int, int, int, float]]:
    return [(run_id, "loss", s, s, 1_000 + s, s / 7) for s in range(n)]


def test_writes_waiting_together_are_made_in_one_group(
    team_server: Any, monkeypatch: pytest.MonkeyPatch, concurrently: Callable[..., list[Any]]
) -> None:
    store = remote(team_server)
    runs = [new_run(store) for _ in range(8)]
    gate = Gate(monkeypatch, expected=8)
    stores = [remote(team_server) for _ in runs]
    outcomes = concurrently(
        *(lambda s=s, r=r: s.write_metrics(points(r)) for s, r in zip(stores, runs, strict=True))
    )
    assert outcomes == [None] * 8
    assert len(gate.sizes) == 2 and sum(gate.sizes) == 8  # those after the first group's start: one group
    for run_id in runs:
        assert len(store.metric_history(run_id, "loss")) == 10
        assert store.get_run(run_id).metrics == {"loss": 9 / 7}
    events = store.audit_events(actions=["run.metrics.log"])
    assert sorted(e.entity_id for e in events) == sorted(runs)  # one event per write


def test_a_write_that_fails_in_a_group_fails_alone(
    team_server: Any, monkeypatch: pytest.MonkeyPatch, concurrently: Callable[..., list[Any]]
) -> None:
    store = remote(team_server)
    first, good, ended, other = (new_run(store) for _ in range(4))
    store.end_run(ended, RunStatus.FINISHED, None, 5)
    gate = Gate(monkeypatch, expected=6)
    clients = [remote(team_server) for _ in range(5)]

    def bad_body() -> int:
        with team_server.client() as http:
            json_type = {"content-type": "application/json"}
            answer = http.post(f"{API}/metrics", content=b"{not json", headers=json_type)
        return answer.status_code

    outcomes = concurrently(
        lambda: clients[0].write_metrics(points(first)),  # the group held at the gate
        lambda: clients[1].write_metrics(points(good)),
        lambda: clients[2].log_params(ended, {"lr": "0.1"}),  # an ended run: refused
        lambda: clients[3].end_run("no-such-run", RunStatus.FINISHED, None, 5),  # unknown: refused
        bad_body,  # refused before the group's transaction
        lambda: clients[4].set_tags(other, {"stage": "b"}),
    )
    assert len(gate.sizes) == 2 and sum(gate.sizes) == 6
    assert outcomes[0] is None and outcomes[1] is None and outcomes[5] is None
    assert isinstance(outcomes[2], RunNotActive)
    assert isinstance(outcomes[3], NotFound)
    assert outcomes[4] == 400
    assert len(store.metric_history(good, "loss")) == 10
    assert store.get_run(ended).params == {}
    assert store.get_run(other).tags["stage"] == "b"
    written = {e.entity_id for e in store.audit_events(actions=["run.metrics.log"])}
    assert written == {first, good}


def test_runs_created_and_ended_in_a_group_are_whole(
    team_server: Any, monkeypatch: pytest.MonkeyPatch, concurrently: Callable[..., list[Any]]
) -> None:
    store = remote(team_server)
    held = new_run(store)
    gate = Gate(monkeypatch, expected=7)
    clients = [remote(team_server) for _ in range(7)]

    def lifecycle(client: RemoteStore) -> str:
        run_id = new_run(client)
        client.write_metrics(points(run_id, 3))
        client.end_run(run_id, RunStatus.FINISHED, None, 10)
        return run_id

    outcomes = concurrently(
        lambda: clients[0].heartbeat([held], 1), *(lambda c=c: lifecycle(c) for c in clients[1:])
    )
    assert sum(gate.sizes[:2]) == 7  # the creations went with the held group, or in the one after it
    for run_id in outcomes[1:]:
        run = store.get_run(run_id)
        assert run.status is RunStatus.FINISHED and run.metrics == {"loss": 2 / 7}
        assert len(store.metric_history(run_id, "loss")) == 3
