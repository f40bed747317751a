"""Reading the audit log a page at a time: filters, newest first with an offset, counts and the
log's actions, on every Store implementation (SQLite and PostgreSQL, directly and through a team
server)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from plinth.core.entities import AuditEvent
from plinth.core.errors import InvalidInput
from plinth.store.base import Store

Opener = Callable[..., Store]


def record(store: Store, action: str, entity_id: str, count: int = 1) -> None:
    for i in range(count):
        store.record_audit(action, "thing", entity_id, None, str(i))


def seqs(events: list[AuditEvent]) -> list[int]:
    return [e.seq for e in events]


@pytest.fixture
def log(open_store: Opener, via: str) -> tuple[Store, dict[str, str]]:
    """A log written by alice (twice over: as herself and, on the store itself, with a token),
    alicex and bob, each event's entity naming its writer; the writers' actors as the log names
    them (through a server, with the token the suite gave them)."""
    writers = {
        "alice": open_store(actor="alice"),
        "alicex": open_store(actor="alicex"),
        "bob": open_store(actor="bob"),
    }
    if via == "direct":
        writers["alice-ci"] = open_store(actor="alice (token ci)")
    for round_ in range(3):
        for name, store in writers.items():
            record(store, "thing.make" if round_ < 2 else "thing.drop", name)
    reader = writers["bob"]
    actors = {e.entity_id: e.actor for e in reader.audit_events()}
    return reader, actors


def test_the_defaults_read_the_whole_log_oldest_first(log: tuple[Store, dict[str, str]]) -> None:
    store, _ = log
    events = store.audit_events()
    assert seqs(events) == sorted(seqs(events)) and len(events) == store.count_audit_events()
    assert seqs(store.audit_events(limit=2)) == seqs(events)[:2]


def test_a_user_filter_keeps_the_user_with_any_token_and_no_one_else(
    log: tuple[Store, dict[str, str]],
) -> None:
    store, actors = log
    alices = {name for name in actors if name.startswith("alice") and name != "alicex"}
    events = store.audit_events(user="alice")
    assert {e.entity_id for e in events} == alices and len(events) == 3 * len(alices)
    assert store.count_audit_events(user="alice") == len(events)
    assert all(e.actor == "alice" or e.actor.startswith("alice (token ") for e in events)
    assert {e.entity_id for e in store.audit_events(user="alicex")} == {"alicex"}
    assert {e.actor for e in store.audit_events(user="bob")} == {actors["bob"]}


@pytest.mark.parametrize("user", ["ALICE", "alic", "al_ce", "al%", "%", "_", "alice%", "\\"])
def test_a_user_filter_is_exact_and_case_sensitive_wildcards_included(
    log: tuple[Store, dict[str, str]], user: str
) -> None:
    store, _ = log
    assert store.audit_events(user=user) == []
    assert store.count_audit_events(user=user) == 0


def test_an_actor_filter_is_exact(log: tuple[Store, dict[str, str]]) -> None:
    store, actors = log
    events = store.audit_events(actor=actors["alice"])
    assert {e.entity_id for e in events} == {"alice"} and len(events) == 3
    assert store.count_audit_events(actor=actors["alice"]) == 3


def test_an_actions_filter_keeps_any_of_the_actions_given(log: tuple[Store, dict[str, str]]) -> None:
    store, actors = log
    drops = store.audit_events(actions=["thing.drop"])
    assert {e.action for e in drops} == {"thing.drop"} and len(drops) == len(actors)
    both = store.audit_events(actions=("thing.drop", "thing.make"))
    assert seqs(both) == seqs(store.audit_events())  # every event is one or the other
    assert store.count_audit_events(actions=["thing.make"]) == 2 * len(actors)
    assert store.audit_events(actions=[]) == [] and store.count_audit_events(actions=[]) == 0


def test_filters_narrow_together(log: tuple[Store, dict[str, str]]) -> None:
    store, _ = log
    events = store.audit_events(user="bob", actions=["thing.make"], entity_id="bob")
    assert [(e.entity_id, e.action, e.after) for e in events] == [("bob", "thing.make", "0")] * 2
    assert store.count_audit_events(user="bob", actions=["thing.make"], entity_id="bob") == 2
    assert store.audit_events(user="bob", entity_id="alicex") == []


def test_a_time_range_keeps_its_ends(log: tuple[Store, dict[str, str]]) -> None:
    store, _ = log
    events = store.audit_events()
    middle = events[len(events) // 2].time_ms
    until = store.audit_events(until_ms=middle)
    since = store.audit_events(since_ms=middle)
    assert until and all(e.time_ms <= middle for e in until)
    assert since and all(e.time_ms >= middle for e in since)
    assert seqs(until) == [e.seq for e in events if e.time_ms <= middle]
    assert store.count_audit_events(since_ms=middle, until_ms=middle) == sum(
        e.time_ms == middle for e in events
    )
    assert store.audit_events(since_ms=middle + 1, until_ms=middle) == []


def test_pages_newest_first_cover_the_log_once(log: tuple[Store, dict[str, str]]) -> None:
    store, _ = log
    newest = seqs(store.audit_events())[::-1]
    pages = [seqs(store.audit_events(newest_first=True, offset=o, limit=4)) for o in range(0, len(newest), 4)]
    assert [s for page in pages for s in page] == newest
    assert all(len(page) == 4 for page in pages[:-1])
    assert store.audit_events(newest_first=True, offset=len(newest), limit=4) == []
    assert seqs(store.audit_events(newest_first=True)) == newest
    assert seqs(store.audit_events(offset=3)) == newest[::-1][3:]  # without a limit: the rest
    with pytest.raises(InvalidInput, match="offset"):
        store.audit_events(offset=-1)


def test_pages_of_a_filter_are_pages_of_its_events(log: tuple[Store, dict[str, str]]) -> None:
    store, _ = log
    alice = seqs(store.audit_events(user="alice", newest_first=True))
    page = store.audit_events(user="alice", newest_first=True, offset=1, limit=2)
    assert seqs(page) == alice[1:3]
    assert seqs(store.audit_events(user="alice", offset=1, limit=2)) == alice[::-1][1:3]


def test_the_logs_actions_are_distinct_and_sorted(open_store: Opener) -> None:
    store = open_store()
    assert store.audit_actions() == []
    record(store, "b.two", "x", count=2)
    record(store, "a.one", "x")
    record(store, "c.three", "y")
    assert store.audit_actions() == ["a.one", "b.two", "c.three"]
    assert store.count_audit_events() == 4
