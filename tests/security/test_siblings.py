"""Siblings of the hardening defects: model packages, terminal output, names, dataset versions,
flow metrics, store caches after a rollback, and flow results.

SQLite and PostgreSQL where the store is involved.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pytest
from sqlalchemy import insert, select, update

import plinth
from plinth.cli.main import main
from plinth.core.entities import ModelVersion, RunStatus
from plinth.core.errors import IntegrityError, InvalidInput, NotFound, PlinthWarning, StepFailed
from plinth.registry import package
from plinth.registry.flavors.pyfunc import PythonFlavor
from plinth.store import schema as t
from plinth.store.base import NewRun
from plinth.store.blobs import BlobStore
from plinth.tracking.context import Backend

RESOURCES = Path(__file__).parent.parent / "resources"
sys.path.insert(0, str(RESOURCES))
import flows_example as ex  # noqa: E402


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def double(data: Any) -> Any:
    return data * 2


# model packages: manifest paths and linked folders ---------------------------------------------
def forge_paths(be: Backend, mv: ModelVersion, paths: list[str]) -> None:
    """Point `mv` at a manifest listing its model file under `paths`, as a writer of the store could."""
    manifest = json.loads(be.blobs.read_bytes(mv.digest))
    [item] = manifest["files"]
    manifest["files"] = [{**item, "path": path} for path in paths]
    forged, _ = be.blobs.put_bytes(json.dumps(manifest, sort_keys=True, indent=1).encode())
    mvs = t.model_versions
    with be.store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(update(mvs).where(mvs.c.id == mv.id).values(digest=forged))


@pytest.mark.parametrize(
    "paths",
    [
        ["../model.pkl"],
        ["a/../model.pkl"],  # inside the folder once normalised, yet not the name the flavor asks for
        ["/tmp/model.pkl"],
        ["./model.pkl"],
        ["model.pkl/"],
        ["a//model.pkl"],
        ["a\\..\\model.pkl"],
        ["plinth-model.json"],
        ["model.pkl", "model.pkl"],
    ],
)
def test_a_manifest_path_that_is_not_plain_is_refused_before_anything_is_fetched(
    tracking: Backend, monkeypatch: pytest.MonkeyPatch, paths: list[str]
) -> None:
    mv = plinth.register_model("m", double)
    forge_paths(tracking, mv, paths)
    monkeypatch.setattr(BlobStore, "get_file", lambda *a, **k: pytest.fail("a file was fetched"))
    with pytest.raises(IntegrityError, match="which a package cannot hold"):
        plinth.load_model("m")
    assert not (Path(tracking.settings.home) / "cache" / "models").exists()


def test_linked_folders_in_a_package_are_stored_not_skipped(
    tracking: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vocabulary = tmp_path / "vocabulary"
    vocabulary.mkdir()
    (vocabulary / "words.txt").write_text("a b c\n")
    save = PythonFlavor.save

    def save_with_linked_folder(self: PythonFlavor, model: Any, path: str, **options: Any) -> dict[str, Any]:
        os.symlink(vocabulary, os.path.join(path, "vocabulary"))
        return save(self, model, path, **options)

    monkeypatch.setattr(PythonFlavor, "save", save_with_linked_folder)
    mv = plinth.register_model("m", double)
    files = {f.path for f in tracking.store.model_files(mv.id)}
    assert "vocabulary/words.txt" in files
    assert plinth.load_model("m").version == 1  # every file, the linked ones too, checked on load


def test_a_package_folder_linking_into_itself_registers_nothing(
    tracking: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    save = PythonFlavor.save

    def save_with_loop(self: PythonFlavor, model: Any, path: str, **options: Any) -> dict[str, Any]:
        os.mkdir(os.path.join(path, "sub"))
        os.symlink(path, os.path.join(path, "sub", "back"))
        return save(self, model, path, **options)

    monkeypatch.setattr(PythonFlavor, "save", save_with_loop)
    with pytest.raises(InvalidInput, match="links to"):
        plinth.register_model("m", double)
    assert plinth.list_models() == []


def test_a_link_in_the_cached_package_leading_outside_is_refused(tracking: Backend, tmp_path: Path) -> None:
    mv = plinth.register_model("m", double)
    plinth.load_model("m")
    cached = Path(tracking.settings.home) / "cache" / "models" / mv.digest / "model.pkl"
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(cached.read_bytes())  # the very bytes: only where they lie differs
    cached.unlink()
    cached.symlink_to(outside)
    package.VERIFIED.clear()  # the bytes this process verified are kept; a new process reads the file
    with pytest.raises(IntegrityError, match="was modified"):
        plinth.load_model("m")
    assert plinth.load_model("m").version == 1  # a verified copy is fetched again


# terminal output of stored text ------------------------------------------------------------------
ESC = "\x1b]0;pwned\x07\x1b[2J\x1b[31m"  # set the title, clear the screen, turn red
C1 = "\x9b31m"  # the one-byte CSI of C1 controls
MARKUP = "[red]not red[/red] [link=https://example.com]not a link[/link]"


def plant_artifact(be: Backend, run_id: str, path: str, digest: str) -> None:
    """Write an artifact record straight into the database, past every check plinth makes."""
    with be.store.engine.begin() as conn:  # type: ignore[attr-defined]
        key = conn.execute(select(t.runs.c.key).where(t.runs.c.id == run_id)).scalar_one()
        values = {"run_key": key, "path": path, "digest": digest, "size": 1, "created_ms": 0}
        conn.execute(insert(t.artifacts).values(**values))


def plant_run(be: Backend, tmp_path: Path) -> str:
    """A failed run whose stored name, params, tags, artifact path and error hold terminal codes."""
    (tmp_path / "f.txt").write_text("x")
    with plinth.start_run(experiment="e", name="quiet") as run:
        [art] = run.log_artifact(str(tmp_path / "f.txt"))
    store = be.store
    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(update(t.runs).where(t.runs.c.id == run.id).values(name=f"name{ESC}", status="RUNNING"))
    store.log_params(run.id, {f"p{C1}": f"value{ESC}"})
    store.set_tags(run.id, {"markup": MARKUP, "t": f"tag{C1}\u202edesrever"})
    plant_artifact(be, run.id, f"plots/{ESC}.png", art.digest)
    store.end_run(run.id, RunStatus.FAILED, f"boom{ESC}\rhidden", 1)
    return run.id


@pytest.mark.parametrize("command", [["runs", "show"], ["runs", "list"], ["runs", "list", "--json"]])
def test_stored_text_is_printed_escaped_and_never_as_markup(
    tracking: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    run_id = plant_run(tracking, tmp_path)
    args = [*command, run_id] if command[-1] == "show" else command
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    for raw in ("\x1b", "\x07", "\x9b", "\r", "\u202e"):
        assert raw not in out + err
    assert "\\x1b" in out or "\\u001b" in out
    if command[-1] == "show":
        assert MARKUP in out and "\\x9b" in out and "\\u202e" in out and "\\r" in out


def test_error_lines_escape_what_they_quote(capsys: pytest.CaptureFixture[str]) -> None:
    from plinth.cli.render import error

    error(f"bad {ESC} {MARKUP}")
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b]0;pwned\\x07" in err and MARKUP in err


# names, keys and values no store can hold ----------------------------------------------------------
@pytest.mark.parametrize("bad", ["lone\ud800", "esc\x1b", "csi\x9b", "line\u2028break"])
def test_names_and_keys_refuse_what_no_store_or_terminal_takes(tracking: Backend, bad: str) -> None:
    with pytest.raises(InvalidInput, match="Experiment name"):
        plinth.start_run(experiment=bad)
    with pytest.raises(InvalidInput, match="Run name"):
        plinth.start_run(experiment="e", name=bad)
    with pytest.raises(InvalidInput, match="Tag key"):
        plinth.start_run(experiment="e", tags={bad: "v"})
    with pytest.raises(InvalidInput, match="Model name"):
        plinth.register_model(bad, double)
    with plinth.start_run(experiment="e") as run:
        with pytest.raises(InvalidInput, match="Dataset name"):
            run.log_dataset(pd.DataFrame({"a": [1]}), name=bad)
    assert [e.name for e in plinth.list_experiments()] == ["e"]


def test_tag_and_param_values_are_free_text_but_not_lone_surrogates(tracking: Backend) -> None:
    with plinth.start_run(experiment="e", tags={"note": "two\nlines\tand\u2028more"}) as run:
        with pytest.raises(InvalidInput, match=r"value of tag 'k' holds a lone surrogate.*UTF-8"):
            run.set_tag("k", "x\udcff")
        with pytest.raises(InvalidInput, match=r"value of param 'k' holds a lone surrogate"):
            run.log_param("k", "x\ud800")
        with pytest.raises(InvalidInput, match=r"value of tag 'k' holds a control character"):
            run.set_tag("k", "x\x1b[31m")
    stored = plinth.get_run(run.id)
    assert stored.tags["note"] == "two\nlines\tand\u2028more" and "k" not in stored.tags


def test_model_descriptions_are_free_text_but_not_lone_surrogates(tracking: Backend) -> None:
    with pytest.raises(InvalidInput, match="description holds a lone surrogate"):
        plinth.register_model("m", double, description="d\ud800")
    plinth.register_model("m", double, description="two\nlines")
    with pytest.raises(InvalidInput, match="description holds a lone surrogate"):
        plinth.set_model_description("m", "x\udcff", version=1)
    assert plinth.get_model_version("m", 1).description == "two\nlines"


def test_a_run_failing_with_a_lone_surrogate_in_its_message_is_still_ended(tracking: Backend) -> None:
    with pytest.raises(ValueError, match="caf"), plinth.start_run(experiment="e") as run:
        raise ValueError("no file caf\udce9")
    stored = plinth.get_run(run.id)
    assert stored.status is RunStatus.FAILED and stored.error == "ValueError: no file caf\\udce9"


def test_a_step_failing_with_a_lone_surrogate_in_its_message_fails_the_flow_cleanly(
    tracking: Backend,
) -> None:
    with pytest.raises(StepFailed, match="no file caf") as info:
        ex.odd_failure.run()
    result = info.value.flow_run  # type: ignore[attr-defined]
    assert result.status is RunStatus.FAILED and "caf\\udce9" in result.error
    [step] = result.steps
    assert step.status.value == "FAILED" and "caf\\udce9" in (step.error or "")
    assert plinth.get_run(step.id).status is RunStatus.FAILED


# dataset versions no store holds -------------------------------------------------------------------
@pytest.mark.parametrize(
    "version", [10**30, 10**5000, 2**31, -1, 0], ids=["30-digits", "5000-digits", "2**31", "-1", "0"]
)
def test_dataset_versions_no_store_can_hold_are_not_found(tracking: Backend, version: int) -> None:
    with plinth.start_run(experiment="e") as run:
        run.log_dataset(pd.DataFrame({"a": [1]}), name="d")
    with pytest.raises(NotFound, match="has no version"):
        plinth.get_dataset("d", version)
    with pytest.raises(NotFound, match="has no version"):
        plinth.load_dataset("d", version)


def test_a_model_version_of_five_thousand_digits_is_not_found(tracking: Backend) -> None:
    plinth.register_model("m", double)
    with pytest.raises(NotFound, match="has no version above"):
        plinth.get_model_version("m", 10**5000)


def test_dataset_references_past_any_version_are_refused_by_the_cli(
    tracking: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = cli(capsys, "datasets", "show", "d/" + "9" * 30)
    assert code != 0 and "larger than any version" in err and "Traceback" not in err


# flows: metrics the store refuses ------------------------------------------------------------------
def test_a_step_logging_nan_inf_and_huge_values_finishes_with_its_metrics(tracking: Backend) -> None:
    result = ex.extremes.run()
    assert result.status is RunStatus.FINISHED and result.result == "done"
    [step] = result.steps
    metrics = plinth.get_run(step.id).metrics
    assert math.isnan(metrics["nan"]) and metrics["inf"] == math.inf and metrics["-inf"] == -math.inf
    assert metrics["huge"] == 1.7e308 and metrics["ok"] == 1.0 and metrics["plinth.wall_s"] >= 0


def test_a_usage_point_the_store_refuses_loses_nothing_else(
    tracking: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = tracking.store.write_metrics

    def refuse_cpu(points: Any) -> None:
        if any(p[1] == "plinth.cpu_s" for p in points):
            raise InvalidInput("The metadata store refused metric points: poisoned")
        write(points)

    monkeypatch.setattr(tracking.store, "write_metrics", refuse_cpu)
    with pytest.warns(PlinthWarning, match="could not be stored and were dropped"):
        result = ex.pipeline.run(lr=0.2)
    assert result.status is RunStatus.FINISHED and result.result["lr"] == 0.2
    assert {s.status.value for s in result.steps} == {"FINISHED"}
    for step in result.steps:
        metrics = plinth.get_run(step.id).metrics
        assert "plinth.cpu_s" not in metrics and metrics["plinth.wall_s"] >= 0
        assert plinth.get_run(step.id).status is RunStatus.FINISHED
    assert tracking.store.edges(dst=("run", result.steps[-1].id))  # lineage was recorded too


def test_step_arguments_no_param_can_hold_still_run(tracking: Backend) -> None:
    result = ex.echo_flow.run()
    assert result.status is RunStatus.FINISHED and result.result == "esc\x1b lone\ud800"
    assert plinth.get_run(result.steps[0].id).params == {}


def test_flow_logs_are_printed_escaped_unless_raw(
    tracking: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    result = ex.extremes.run()
    code, out, _ = cli(capsys, "flows", "logs", result.id, "log_extremes")
    assert code == 0 and "\x1b" not in out and "\\x1b[31mred" in out
    code, out, _ = cli(capsys, "flows", "logs", result.id, "log_extremes", "--raw")
    assert code == 0 and "\x1b[31mred" in out


# store caches after a rollback ---------------------------------------------------------------------
def new_run(experiment: str, **kw: Any) -> NewRun:
    return NewRun(experiment, None, {}, {}, kw.pop("environment", None), 30.0, "tester", **kw)


def test_an_experiment_created_in_a_rolled_back_transaction_is_created_again(tracking: Backend) -> None:
    taken = plinth.start_run(experiment="old")
    taken.end()
    store = tracking.store
    with pytest.raises(Exception):  # noqa: B017 - the database's own duplicate-key error
        store.create_runs([new_run("fresh"), new_run("fresh"), new_run("fresh", id=taken.id)])
    with plinth.start_run(experiment="fresh") as run:
        run.log_metric("m", 1.0)
    assert run.get().experiment_name == "fresh"
    assert sorted(e.name for e in plinth.list_experiments()) == ["fresh", "old"]


@pytest.mark.store_itself  # a batch is a transaction of the SQL store; a server's is not atomic
def test_environments_and_metric_keys_of_a_rolled_back_batch_are_written_again(tracking: Backend) -> None:
    store = tracking.store
    environment = {"python": {"version": "3"}, "host": "h"}
    with pytest.raises(RuntimeError), store.batch():
        first = store.create_run(
            experiment="e", name=None, params={}, tags={}, environment=environment, heartbeat_s=30.0, user="u"
        )
        store.write_metrics([(first.id, "brand-new", 0, 0, 0, 1.0)])
        raise RuntimeError("rolled back")
    second = store.create_run(
        experiment="e", name=None, params={}, tags={}, environment=environment, heartbeat_s=30.0, user="u"
    )
    store.write_metrics([(second.id, "brand-new", 0, 0, 0, 2.0)])
    assert store.get_run(second.id).environment == environment
    assert store.get_run(second.id).metrics == {"brand-new": 2.0}
    with pytest.raises(NotFound):
        store.get_run(first.id)


# flow results: the bytes unpickled are the bytes hashed ------------------------------------------------
def test_a_stored_flow_result_rewritten_in_place_is_never_unpickled(
    tracking: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = ex.pipeline.run(lr=0.2)
    digest = result.flow_run.result_digest
    assert digest is not None
    blob = Path(tracking.blobs.path_of(digest))
    evil = cloudpickle.dumps(print)
    st = blob.stat()
    os.chmod(blob, 0o644)
    blob.write_bytes(evil.ljust(st.st_size, b".")[: st.st_size])
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))
    monkeypatch.setattr(cloudpickle, "loads", lambda *a, **k: pytest.fail("the rewritten blob was unpickled"))
    with pytest.raises(IntegrityError, match="corrupted"):
        result.result  # noqa: B018
