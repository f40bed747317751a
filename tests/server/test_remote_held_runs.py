"""A remote store holds a run's creation back: it goes with the run's end (one request), or
ahead of any other request, or alone soon after (on SQLite, then PostgreSQL)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from plinth.core.entities import RunStatus
from plinth.core.errors import InvalidInput, NotFound
from plinth.store import deferral
from plinth.store.base import NewRun
from plinth.store.http import ServerClient
from plinth.store.remote import RemoteStore


def spec(**fields: Any) -> NewRun:
    return NewRun("held", fields.pop("name", None), fields.pop("params", {}), {"team": "a"}, None, 60.0, "me")


class Counted:
    """A remote store whose requests are noted, (verb, path), as they go out."""

    def __init__(self, server: Any) -> None:
        self.store = RemoteStore(ServerClient(server.url, token=server.admin_token))
        self.sent: list[tuple[str, str]] = []
        self.answered: list[int] = []
        send = self.store.client._try

        def noted(verb: str, path: str, *args: Any) -> Any:
            self.sent.append((verb, path))
            answer = send(verb, path, *args)
            self.answered.append(getattr(answer, "status_code", 0))
            return answer

        self.store.client._try = noted  # type: ignore[method-assign]


@pytest.fixture
def slow_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    """Held-back runs wait for a request or `settle()`, never for the thread."""
    monkeypatch.setattr(deferral, "DEFER_S", 3600.0)


@pytest.fixture
def client(team_server: Any, slow_sender: None) -> Iterator[Counted]:
    counted = Counted(team_server)
    yield counted
    counted.store.close()


@pytest.fixture
def other(team_server: Any) -> Iterator[RemoteStore]:
    store = RemoteStore(ServerClient(team_server.url, token=team_server.admin_token))
    yield store
    store.close()


def test_a_short_run_is_created_and_ended_in_one_request(client: Counted, other: RemoteStore) -> None:
    store = client.store
    first = store.create_run_deferred(spec())  # its experiment is new to this client: sent now
    assert client.sent == [("POST", "/runs/batch")]
    store.end_run(first.id, RunStatus.FINISHED, None, first.start_ms + 1)
    client.sent.clear()
    run = store.create_run_deferred(spec(params={"lr": "0.1"}))
    assert client.sent == []  # held back
    assert (run.status, run.user, run.experiment_id) == (RunStatus.RUNNING, first.user, first.experiment_id)
    store.end_run(run.id, RunStatus.FAILED, "diverged", run.start_ms + 5)
    assert client.sent == [("POST", "/runs/batch")]
    assert client.answered[-1] == 204  # the client has the run: the answer leaves it out
    got = other.get_run(run.id)
    assert (got.status, got.error, got.start_ms, got.end_ms) == (
        RunStatus.FAILED,
        "diverged",
        run.start_ms,
        run.start_ms + 5,
    )
    assert (got.name, got.user, got.params, got.tags) == (run.name, run.user, {"lr": "0.1"}, {"team": "a"})
    actions = [e.action for e in other.audit_events(entity_id=run.id)]
    assert sorted(actions) == ["run.create", "run.end"]
    assert other.verify_audit().ok


def test_any_other_request_sends_held_runs_first(client: Counted, other: RemoteStore) -> None:
    store = client.store
    store.create_run_deferred(spec())
    run = store.create_run_deferred(spec(name="points"))
    client.sent.clear()
    store.write_metrics([(run.id, "loss", 0, 0, 1, 0.5)])
    assert client.sent == [("POST", "/runs/batch"), ("POST", "/metrics")]
    late = store.create_run_deferred(spec())
    assert store.get_run(late.id).status is RunStatus.RUNNING  # a read sees it
    store.end_runs([(run.id, RunStatus.FINISHED, None, run.start_ms + 1)])
    assert other.get_run(run.id).metrics == {"loss": 0.5}
    assert other.get_run(run.id).status is RunStatus.FINISHED


def test_settle_and_close_send_held_runs(client: Counted, other: RemoteStore) -> None:
    store = client.store
    store.create_run_deferred(spec())
    settled = store.create_run_deferred(spec())
    with pytest.raises(NotFound):
        other.get_run(settled.id)
    store.settle()
    assert other.get_run(settled.id).status is RunStatus.RUNNING
    closed = store.create_run_deferred(spec())
    store.close()
    assert other.get_run(closed.id).status is RunStatus.RUNNING


def test_the_thread_sends_a_held_run_alone(team_server: Any, other: RemoteStore) -> None:
    store = RemoteStore(ServerClient(team_server.url, token=team_server.admin_token))
    store.create_run_deferred(spec())
    run = store.create_run_deferred(spec())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            found = other.get_run(run.id)
            break
        except NotFound:
            time.sleep(0.05)
    else:
        raise AssertionError("the held run never reached the server")
    assert found.status is RunStatus.RUNNING
    store.close()


def test_a_refused_creation_is_dropped_and_the_request_that_carried_it_goes_on(
    client: Counted, other: RemoteStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = client.store
    store.create_run_deferred(spec())
    bad = store.create_run_deferred(spec(params={"note": "a\x00b"}))  # no store holds a NUL
    with caplog.at_level(logging.WARNING, logger="plinth.store"):
        assert "held" in [e.name for e in store.list_experiments()]
    assert f"Could not create run {bad.id}" in caplog.text
    with pytest.raises(NotFound):
        other.get_run(bad.id)
    ended = store.create_run_deferred(spec(params={"note": "c\x00d"}))
    with pytest.raises(InvalidInput):  # its end cannot be made: the refusal is the caller's
        store.end_run(ended.id, RunStatus.FINISHED, None, ended.start_ms + 1)
    store.end_run(store.create_run_deferred(spec()).id, RunStatus.FINISHED, None, 1)  # the next one works


def test_a_run_created_ended_must_say_how_it_ended(other: RemoteStore) -> None:
    other.create_runs([spec()])
    with pytest.raises(InvalidInput, match="terminal status"):
        other.create_runs([NewRun("held", None, {}, {}, None, 60.0, "me", end_status=RunStatus.RUNNING)])
    with pytest.raises(InvalidInput, match="end time"):
        other.create_runs(
            [NewRun("held", None, {}, {}, None, 60.0, "me", end_status=RunStatus.KILLED, end_ms=-1)]
        )
    (run,) = other.create_runs([NewRun("held", None, {}, {}, None, 60.0, "me", end_status=RunStatus.KILLED)])
    assert run.status is RunStatus.KILLED and run.end_ms is not None
    assert other.get_run(run.id).status is RunStatus.KILLED
