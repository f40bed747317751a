"""The keyed audit chain (cut tails, rewrites, stripped keyed hashes, wrong keys, anchors and their
targets, adopting an old chain, concurrent appenders, the key file) and erasures that leave nothing
in SQLite's files."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

import plinth
from plinth.cli.errors import exit_code_for
from plinth.cli.main import main
from plinth.core.entities import Label, PredictionLog
from plinth.core.errors import (
    AuditTampered,
    ConfigError,
    InvalidInput,
    NotFound,
    StoreError,
    WrongAuditKey,
)
from plinth.core.ids import new_id, now_ms
from plinth.core.settings import Settings
from plinth.governance.api import adopt_audit, anchor_audit
from plinth.store.audit_check import GENESIS, event_hash
from plinth.store.audit_key import audit_key_env, audit_secret
from plinth.store.sql import SqlStore
from plinth.tracking.context import Backend

KEY = "k3y-for-tests-" + "0" * 20
sys.path.insert(0, str(Path(__file__).parent.parent / "resources"))
FIELDS = ("seq", "time_ms", "actor", "action", "entity_type", "entity_id", "before", "after")


def events(be: Backend, n: int = 6) -> int:
    """Record `n` audit events; returns how many the log holds."""
    for i in range(n):
        be.store.record_audit("test.event", "thing", f"t{i}", None, str(i))
    return len(be.store.audit_events())


def sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def rewrite(engine: Engine, seq: int, actor: str, *, head: bool = True) -> None:
    """What someone who can write the database but lacks the key can do: change event `seq` and
    recompute every later hash (and the head's), so the plain hash chain holds again."""
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT * FROM audit_events ORDER BY seq")).mappings().all()
        previous = GENESIS
        for row in rows:
            fields = {f: row[f] for f in FIELDS}
            if row["seq"] == seq:
                fields["actor"] = actor
            digest = event_hash(previous, fields) if row["seq"] >= seq else row["hash"]
            conn.execute(
                text("UPDATE audit_events SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :s"),
                {"a": fields["actor"], "p": previous, "h": digest, "s": row["seq"]},
            )
            previous = digest
        if head:
            conn.execute(text("UPDATE audit_head SET hash = :h"), {"h": previous})


def store(be: Backend, key: str | None) -> SqlStore:
    """Another store object on the same database, with its own key."""
    return SqlStore(be.settings.resolved_store_url, actor="other", audit_key=key)


@pytest.mark.parametrize("cut", ["last rows", "all rows"])
def test_cutting_the_tail_is_caught(tracking: Backend, cut: str) -> None:
    total = events(tracking)
    engine = tracking.store.engine  # type: ignore[attr-defined]
    keep = total - 2 if cut == "last rows" else 0
    sql(engine, "DELETE FROM audit_events WHERE seq > :k", k=keep)
    check = plinth.verify_audit()
    assert (check.ok, check.first_bad_seq, check.problem) == (False, keep + 1, "missing tail")
    assert f"{total}" in (check.reason or "")
    sql(engine, "DELETE FROM audit_head")  # the head too: keyed events without a head
    if keep:
        check = plinth.verify_audit()
        assert (check.ok, check.problem) == (False, "missing head")


def test_a_chain_rewritten_with_recomputed_hashes_is_caught(
    tracking: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    events(tracking)
    engine = tracking.store.engine  # type: ignore[attr-defined]
    rewrite(engine, 3, "mallory")
    check = plinth.verify_audit()
    assert (check.ok, check.first_bad_seq, check.problem) == (False, 3, "rewritten")
    assert main(["audit", "verify"]) == exit_code_for(AuditTampered)
    assert "broken at event 3 (rewritten)" in capsys.readouterr().err
    with pytest.raises(AuditTampered):
        check.raise_if_broken()


def test_an_event_whose_mac_is_removed_or_edited_is_caught(tracking: Backend) -> None:
    events(tracking)
    engine = tracking.store.engine  # type: ignore[attr-defined]
    sql(engine, "UPDATE audit_events SET mac = NULL WHERE seq = 2")
    assert (plinth.verify_audit().first_bad_seq, plinth.verify_audit().problem) == (2, "rewritten")
    sql(engine, "UPDATE audit_events SET mac = :m WHERE seq = 2", m="0" * 64)
    assert plinth.verify_audit().first_bad_seq == 2


def test_a_wrong_key_is_reported_as_a_wrong_key(tracking: Backend) -> None:
    events(tracking)
    stranger = store(tracking, "another-key-" + "1" * 20)
    with pytest.raises(WrongAuditKey, match="PLINTH_AUDIT_KEY"):
        stranger.verify_audit()
    with pytest.raises(WrongAuditKey):  # and it appends nothing under its own key
        stranger.record_audit("x", "thing", "t", None, None)
    assert plinth.verify_audit().ok
    engine = tracking.store.engine  # type: ignore[attr-defined]
    sql(engine, "DELETE FROM audit_events WHERE seq > 3")  # damage that needs no key is still damage
    tampered = stranger.verify_audit()
    assert (tampered.ok, tampered.problem) == (False, "missing tail")
    assert "PLINTH_AUDIT_KEY" in (tampered.reason or "")
    stranger.close()


@pytest.mark.store_itself  # the key is the store's: a client of a team server never holds it
def test_the_cli_names_a_wrong_key(tracking: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    events(tracking)
    plinth.configure(replace(tracking.settings, audit_key="another-key-" + "2" * 20))
    assert main(["audit", "verify"]) == exit_code_for(WrongAuditKey)
    assert "not the one this store's audit log was written with" in capsys.readouterr().err


def test_the_head_edited_alone_stops_appends(tracking: Backend) -> None:
    events(tracking)
    engine = tracking.store.engine  # type: ignore[attr-defined]
    sql(engine, "UPDATE audit_head SET mac = :m", m="0" * 64)
    assert plinth.verify_audit().problem == "head"
    with pytest.raises(AuditTampered, match="audit head"):
        tracking.store.record_audit("x", "thing", "t", None, None)


def test_an_anchor_in_a_file_catches_a_log_emptied_or_rewritten_with_the_key(
    tracking: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    total = events(tracking)
    anchor = tmp_path / "anchors" / "audit.json"  # a local file's folder is made
    assert main(["audit", "anchor", "-o", str(anchor)]) == 0
    written = json.loads(anchor.read_text())
    assert written["seq"] == total and set(written) == {"seq", "hash", "time_ms", "time", "mac"}
    events(tracking, 2)
    assert main(["audit", "verify", "--anchor", str(anchor)]) == 0
    assert "up to the anchor" in capsys.readouterr().out
    engine = tracking.store.engine  # type: ignore[attr-defined]
    # someone holding the key (it sits beside the database) rewrites event 2 and re-keys the chain
    rewrite(engine, 2, "mallory", head=False)
    sql(engine, "UPDATE audit_events SET mac = NULL")
    sql(engine, "DELETE FROM audit_head")
    assert store(tracking, tracking.settings.audit_key).adopt_audit().keyed == total + 2
    assert plinth.verify_audit().ok  # keyed again, looks intact
    check = plinth.verify_audit(str(anchor))
    assert (check.ok, check.first_bad_seq, check.problem) == (False, total, "rewritten")
    sql(engine, "DELETE FROM audit_events")  # or empties the log, head and all
    sql(engine, "DELETE FROM audit_head")
    assert plinth.verify_audit().ok  # as a fresh store would be: only the anchor tells them apart
    emptied = plinth.verify_audit(str(anchor))
    assert (emptied.ok, emptied.first_bad_seq, emptied.problem) == (False, 1, "missing tail")


def test_a_rewrite_from_the_first_event_takes_an_anchor_to_tell_from_a_wrong_key(
    tracking: Backend, tmp_path: Path
) -> None:
    events(tracking)
    anchor = tmp_path / "a.json"
    anchor_audit(str(anchor))
    rewrite(tracking.store.engine, 1, "mallory")  # type: ignore[attr-defined]
    with pytest.raises(WrongAuditKey, match="check it against an anchor"):
        plinth.verify_audit()  # every keyed hash fails, as under another key
    check = plinth.verify_audit(str(anchor))  # the anchor verifies: the key is right
    assert (check.ok, check.first_bad_seq, check.problem) == (False, 1, "rewritten")


def test_an_anchor_from_another_store_is_refused(tracking: Backend, tmp_path: Path) -> None:
    events(tracking)
    anchor = tmp_path / "a.json"
    anchor_audit(str(anchor))
    forged = json.loads(anchor.read_text()) | {"mac": "1" * 64}
    anchor.write_text(json.dumps(forged))
    assert plinth.verify_audit(str(anchor)).problem == "anchor"
    anchor.write_text("{}")
    with pytest.raises(InvalidInput, match="not an audit anchor"):
        plinth.verify_audit(str(anchor))


def test_an_anchor_on_an_object_store(settings: Settings, s3_server: str, s3_bucket: str) -> None:
    be = plinth.configure(replace(settings, storage_options={"endpoint_url": s3_server}))
    total = events(be)
    url = s3_bucket.replace("/artifacts", "/anchors/audit.json")
    assert anchor_audit(url).seq == total
    assert plinth.verify_audit(url).ok
    sql(be.store.engine, "DELETE FROM audit_events WHERE seq > 2")  # type: ignore[attr-defined]
    check = plinth.verify_audit(url)
    assert (check.ok, check.first_bad_seq, check.problem) == (False, 3, "missing tail")


def unkeyed(engine: Engine) -> list[int]:
    """The events that carry no keyed hash."""
    with engine.connect() as conn:
        return [
            r[0] for r in conn.execute(text("SELECT seq FROM audit_events WHERE mac IS NULL ORDER BY seq"))
        ]


def test_an_anchor_is_never_written_to_a_bucket_that_does_not_exist(
    settings: Settings, s3_server: str, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    be = plinth.configure(replace(settings, storage_options={"endpoint_url": s3_server}))
    events(be)
    typo = f"typo-{s3_bucket.split('/')[2]}"  # on the same server as a bucket that exists
    target = f"s3://{typo}/anchors/audit.json"
    assert main(["audit", "anchor", "-o", target]) == exit_code_for(ConfigError)
    err = capsys.readouterr().err
    assert f"Cannot write the audit anchor to {target}: the bucket {typo!r} does not exist" in err
    assert "plinth does not create it" in err
    buckets = boto3.client("s3", endpoint_url=s3_server).list_buckets()["Buckets"]
    assert typo not in {b["Name"] for b in buckets}
    with pytest.raises(NotFound, match="No audit anchor at"):
        plinth.verify_audit(target)


def test_an_anchor_target_that_cannot_be_written_is_named_without_a_traceback(
    tracking: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    events(tracking)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound but not listening: connections to it are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/audit.json"
        assert main(["audit", "anchor", "-o", url]) == exit_code_for(ConfigError)
        assert f"Cannot write the audit anchor to {url}" in capsys.readouterr().err
        assert main(["audit", "verify", "--anchor", url]) == exit_code_for(StoreError)
        assert f"Cannot read the audit anchor at {url}" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="Protocol not known: nosuchproto"):
        anchor_audit("nosuchproto://x/a.json")


def test_a_chain_stripped_of_its_keyed_hashes_and_head_is_not_vouched_for(
    tracking: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    total = events(tracking)
    engine = tracking.store.engine  # type: ignore[attr-defined]
    # someone who can write the database but lacks the key rewrites event 1, recomputes every hash
    # and removes every keyed hash and the head: the chain looks as if written before keying
    rewrite(engine, 1, "mallory", head=False)
    sql(engine, "UPDATE audit_events SET mac = NULL")
    sql(engine, "DELETE FROM audit_head")
    check = plinth.verify_audit()
    assert (check.ok, check.problem, check.first_bad_seq, check.unkeyed) == (False, "not keyed", 1, total)
    assert main(["audit", "verify"]) == exit_code_for(AuditTampered)
    err = capsys.readouterr().err
    assert f"{total} events (1 to {total}) are not keyed" in err and "their MACs were removed" in err
    assert "run `plinth audit adopt` once" in err and "intact" not in err
    events(tracking, 2)  # appends go on, keyed, and key nothing older
    later = plinth.verify_audit()
    assert (later.ok, later.problem, later.unkeyed, later.events) == (False, "not keyed", total, total + 2)
    assert unkeyed(engine) == list(range(1, total + 1))  # neither verifying nor appending keyed them


def test_a_chain_written_before_keying_fails_until_adopted(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    old = SqlStore(settings.resolved_store_url, actor="old", audit_key=None)
    for i in range(4):
        old.record_audit("old.event", "thing", f"t{i}", None, None)
    be = plinth.configure(settings)
    events(be, 2)  # a keyed writer appends after them, keyed, with a head
    check = plinth.verify_audit()
    assert (check.ok, check.problem, check.unkeyed) == (False, "not keyed", 4)
    assert check.head is not None and check.head.seq == 6
    assert main(["audit", "adopt"]) == 0
    assert (
        "Keyed events 1 to 4 of the audit log as they stand (recorded as event 7)" in capsys.readouterr().out
    )
    [adopted] = [e for e in be.store.audit_events() if e.action == "audit.adopt"]
    assert (adopted.seq, adopted.entity_id, json.loads(adopted.after or "{}")["events"]) == (7, "1-4", 4)
    assert plinth.verify_audit().ok
    assert main(["audit", "adopt"]) == 0 and "Nothing to adopt" in capsys.readouterr().out
    rewrite(be.store.engine, 2, "mallory")  # type: ignore[attr-defined]
    assert plinth.verify_audit().first_bad_seq == 2  # from now on, they are vouched for
    old.close()


def test_adopting_keys_an_old_chain_up_to_its_damage(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    old = SqlStore(settings.resolved_store_url, actor="old", audit_key=None)
    for i in range(5):
        old.record_audit("old.event", "thing", f"t{i}", None, None)
    sql(old.engine, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
    be = plinth.configure(settings)
    be.store.record_audit("new.event", "thing", "t", None, None)
    check = plinth.verify_audit()
    assert (check.ok, check.first_bad_seq, check.problem) == (False, 3, "edited")
    assert main(["audit", "adopt"]) == exit_code_for(AuditTampered)
    out, err = capsys.readouterr()
    assert "Keyed events 1 to 2" in out and "broken at event 3" in err and "stay unkeyed" in err
    assert unkeyed(old.engine) == [3, 4, 5]  # nothing from the damage on is vouched for
    assert plinth.verify_audit().first_bad_seq == 3
    old.close()


@pytest.mark.parametrize("damage", ["keyed hash removed mid-chain", "head deleted"])
def test_adopting_refuses_a_keyed_chain_that_lost_keyed_hashes_or_its_head(
    tracking: Backend, damage: str
) -> None:
    events(tracking)
    engine = tracking.store.engine  # type: ignore[attr-defined]
    if damage == "head deleted":
        sql(engine, "DELETE FROM audit_head")
    else:
        sql(engine, "UPDATE audit_events SET mac = NULL WHERE seq > 3")
    with pytest.raises(AuditTampered, match="cannot be adopted"):
        adopt_audit()
    assert not plinth.verify_audit().ok


def test_a_store_upgraded_from_0005_appends_and_is_adopted_once(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from alembic import command

    from plinth.store.engine import make_engine, writing
    from plinth.store.migrate import alembic_config

    engine = make_engine(settings.resolved_store_url)
    with writing(engine) as conn:
        command.upgrade(alembic_config(conn), "0005")
    previous = GENESIS
    with writing(engine) as conn:  # as plinth before 0006 wrote them: hash-chained, no MAC, no head
        for seq in range(1, 4):
            fields = dict(
                zip(FIELDS, (seq, now_ms(), "old", "run.create", "run", f"r{seq}", None, "x"), strict=True)
            )
            digest = event_hash(previous, fields)
            conn.execute(
                text(
                    "INSERT INTO audit_events (seq, time_ms, actor, action, entity_type, entity_id, "
                    '"before", "after", prev_hash, hash) VALUES (:seq, :time_ms, :actor, :action, '
                    ":entity_type, :entity_id, :before, :after, :prev, :hash)"
                ),
                {**fields, "prev": previous, "hash": digest},
            )
            previous = digest
    engine.dispose()
    plinth.configure(settings)  # upgrades the store to 0006
    with plinth.start_run(experiment="after-upgrade", params={"a": 1}) as run:
        run.log_metric("m", 0.5)
    check = plinth.verify_audit()
    assert (check.ok, check.problem, check.unkeyed) == (False, "not keyed", 3)
    assert main(["audit", "adopt"]) == 0 and "Keyed events 1 to 3" in capsys.readouterr().out
    assert main(["audit", "verify"]) == 0 and "intact" in capsys.readouterr().out
    with plinth.start_run(experiment="after-upgrade"):
        pass
    assert plinth.verify_audit().ok


def test_concurrent_appenders_keep_one_valid_chain(tracking: Backend) -> None:
    url, key = tracking.settings.resolved_store_url, tracking.settings.audit_key
    stores = [SqlStore(url, actor=f"w{i}", audit_key=key) for i in range(4)]

    def append(s: SqlStore) -> None:
        for i in range(25):
            s.record_audit("concurrent", "thing", f"{s.actor}-{i}", None, None)

    threads = [threading.Thread(target=append, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check = plinth.verify_audit()
    assert check.ok and check.head is not None and check.head.seq == check.events
    assert sum(e.action == "concurrent" for e in tracking.store.audit_events()) == 100
    for s in stores:
        s.close()


def test_the_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(home=str(tmp_path / "home"))
    keys: list[str] = []
    threads = [threading.Thread(target=lambda: keys.append(audit_secret(settings))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    path = tmp_path / "home" / "audit.key"
    assert len(set(keys)) == 1 and path.read_text().strip() == keys[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["audit.key"]  # nothing half-made left behind
    assert audit_key_env({"PLINTH_HOME": str(tmp_path / "home")}) == {"PLINTH_AUDIT_KEY": keys[0]}
    with pytest.raises(ConfigError, match="at least 16"):
        audit_secret(replace(settings, audit_key="short"))


def test_flow_steps_append_with_the_drivers_key(settings: Settings) -> None:
    be = plinth.configure(replace(settings, audit_key=KEY))  # given in settings only, not the env
    import flows_example as ex

    result = ex.pipeline.run(lr=0.2)
    assert result.status is plinth.RunStatus.FINISHED
    trained = {s.id for s in result.steps if s.call.startswith("train")}  # their metrics: written by workers
    assert {e.entity_id for e in be.store.audit_events() if e.action == "run.metrics.log"} >= trained
    assert plinth.verify_audit().ok


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_ray_steps_append_with_the_drivers_key(settings: Settings) -> None:
    from ray_cluster import shared_cluster

    shared_cluster()
    be = plinth.configure(replace(settings, audit_key=KEY))
    import ray_flows

    result = ray_flows.fan_out.run(n=4)
    assert result.status is plinth.RunStatus.FINISHED
    squared = {s.id for s in result.steps if s.call.startswith("square")}  # metrics logged in Ray tasks
    assert {e.entity_id for e in be.store.audit_events() if e.action == "run.metrics.log"} >= squared
    assert plinth.verify_audit().ok


# erasure ------------------------------------------------------------------------------------------

SECRETS = ("zq-erased-input-4711", "zq-erased-output-0815", "zq-erased-label-2342")


def predictions(be: Backend, subject: str, values: tuple[str, ...] = SECRETS, n: int = 3) -> None:
    """`n` logged predictions of `subject` with their labels: inputs, outputs and labels hold `values`."""
    logs = [
        PredictionLog(
            new_id(), "d", 1, "primary", now_ms(), 1.0, subject, f'[["{values[0]}-{i}"]]', f'["{values[1]}"]'
        )
        for i in range(n)
    ]
    be.store.write_prediction_logs(logs)
    labels = [Label("d", log.request_id, f'"{values[2]}"', now_ms(), subject) for log in logs]
    be.store.write_labels("d", labels)


def files_holding(folder: str, needles: tuple[str, ...]) -> list[str]:
    found = []
    for root, _dirs, names in os.walk(folder):
        for name in names:
            data = Path(root, name).read_bytes()
            found += [f"{name}: {n}" for n in needles if n.encode() in data]
    return found


def test_an_erased_subject_leaves_nothing_in_the_database_files() -> None:
    be = plinth.configure(Settings.from_env())  # SQLite under PLINTH_HOME: every file is under it
    predictions(be, "subject-erase-me")
    predictions(be, "subject-keep", ("kept-input", "kept-output", "kept-label"))
    server = SqlStore(be.settings.resolved_store_url, audit_key=be.settings.audit_key)  # holds it open
    assert len(server.prediction_logs("d")) == 6
    receipt = plinth.erase_subject("subject-erase-me")
    assert receipt.prediction_logs == 3 and receipt.labels == 3
    assert "truncated" in receipt.residue and "could not" not in receipt.residue
    assert len(server.prediction_logs("d")) == 3  # the other connection reads on
    assert files_holding(be.settings.home, SECRETS) == []
    assert len(files_holding(be.settings.home, ("kept-input",))) == 1  # the database keeps the rest
    assert plinth.verify_audit().ok
    server.close()


def test_an_erased_subject_leaves_nothing_in_the_prediction_segments() -> None:
    be = plinth.configure(Settings.from_env())
    predictions(be, "subject-erase-me")
    predictions(be, "subject-keep", ("kept-input", "kept-output", "kept-label"))
    be.store.compact_prediction_logs("d", force=True)  # inputs and outputs move into a segment blob
    held = {b.digest for b in be.blobs.list_blobs()}
    receipt = plinth.erase_subject("subject-erase-me")
    assert receipt.prediction_logs == 3 and receipt.labels == 3
    left = {b.digest for b in be.blobs.list_blobs()}
    assert left and not held & left  # the segment was rewritten and its old blob deleted at once
    logged = " ".join(segment_texts(be, left))
    assert not [s for s in SECRETS if s in logged] and "kept-input" in logged
    assert files_holding(be.settings.home, SECRETS) == []
    assert plinth.verify_audit().ok


def segment_texts(be: Backend, digests: set[str]) -> list[str]:
    """Every value the segments in these blobs hold, as text (their files are compressed)."""
    from plinth.store.segments import from_bytes

    out = []
    for digest in digests:
        table = from_bytes(be.blobs.read_bytes(digest), text=True)
        out += [str(v) for name in table.column_names for v in table.column(name).to_pylist()]
    return out


def test_a_reader_holding_the_log_is_named_in_the_receipt(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("plinth.store.sql.governance.CHECKPOINT_TRIES", 2)  # a shorter wait for the reader
    be = plinth.configure(settings)
    if not be.settings.resolved_store_url.startswith("sqlite"):
        receipt = plinth.apply_retention("1d")
        assert "VACUUM" in receipt.residue and "backups" in receipt.residue
        return
    predictions(be, "subject-erase-me")
    server = SqlStore(be.settings.resolved_store_url, audit_key=be.settings.audit_key)
    with server.engine.connect() as reading:  # a read transaction keeps its snapshot of the log
        reading.execute(text("SELECT count(*) FROM prediction_logs")).scalar()
        receipt = plinth.erase_subject("subject-erase-me")
    assert receipt.prediction_logs == 3
    assert "could not be truncated" in receipt.residue and "run the same command again" in receipt.residue
    again = plinth.erase_subject("subject-erase-me")  # the reader is gone: it truncates now
    assert again.prediction_logs == 0 and "could not" not in again.residue
    assert files_holding(os.path.dirname(be.settings.resolved_store_url[len("sqlite:///") :]), SECRETS) == []
    server.close()
