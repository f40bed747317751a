"""The `plinth` command line, driven in-process through `plinth.cli.main.main` (plus one real process).

Data is made with the Python API, then read back through the CLI. Every failure must be a
short `error: ...` on stderr with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pandas as pd
import pytest

import plinth
from plinth.cli import experiments
from plinth.cli.main import cli, main
from plinth.tracking.context import backend
from waiting import wait_until

ULID = re.compile(r"\b[0-9A-Z]{26}\b")
JSON_HELP = "Print JSON instead of tables (for scripts and jq)."


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Call `plinth ARGS...` in-process; return its exit code, stdout and stderr.

    Output goes to a pipe, so tables are as wide as they need (unless a test sets COLUMNS).
    """

    def call(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


def assert_clean_error(result: Result, code: int, *needles: str) -> None:
    """A failure: the given exit code, `error: ...` on stderr, no traceback, nothing on stdout."""
    assert result.code == code, (result.code, result.out, result.err)
    assert result.err.startswith("error: "), result.err
    assert "Traceback" not in result.err + result.out
    assert result.out == ""
    for needle in needles:
        assert needle in result.err, (needle, result.err)


@dataclass
class Data:
    best: str
    worst: str
    failed: str
    other: str
    ids: list[str]


@pytest.fixture
def data(tmp_path: Path) -> Data:
    """Runs in two experiments: a lr sweep, a failed run, and one with artifacts and datasets."""
    ids = []
    for lr, acc in [(0.1, 0.80), (0.01, 0.95), (0.001, 0.90)]:
        with plinth.start_run(experiment="sweep", params={"lr": lr}, tags={"team": "cv"}) as run:
            for step in range(3):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.log_metric("acc", acc)
        ids.append(run.id)
    with pytest.raises(RuntimeError), plinth.start_run(experiment="sweep", params={"lr": 9}) as failing:
        raise RuntimeError("diverged at step 3")
    files = tmp_path / "files"
    (files / "plots").mkdir(parents=True)
    (files / "plots" / "a.txt").write_text("plot a")
    (files / "plots" / "b.txt").write_text("plot b")
    (files / "report.txt").write_text("all good\n")
    with plinth.start_run(experiment="other", name="with-files") as run:
        run.log_artifact(str(files / "report.txt"))
        run.log_artifact(str(files / "plots"))
        frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "a"]})
        run.log_dataset(frame, name="toy", role="train")
        run.log_dataset(frame.iloc[:2], name="toy", role="train")
        run.log_dataset(frame, name="org/toy", role="test")
    return Data(best=ids[1], worst=ids[0], failed=failing.id, other=run.id, ids=ids)


# version and help ------------------------------------------------------------------------------
def test_version(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("--version")
    assert result.code == 0
    assert result.out.strip() == f"plinth, version {plinth.__version__}"


def _all_commands(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found.extend(_all_commands(command, (*prefix, name)))
    return found


def test_help_explains_every_command_and_option(run_cli) -> None:  # type: ignore[no-untyped-def]
    top = run_cli("--help")
    assert top.code == 0
    for name in ["experiments", "runs", "artifacts", "datasets", "gc", "db", "demo"]:
        line = next(ln for ln in top.out.splitlines() if ln.strip().startswith(name + " "))
        assert len(line.split(maxsplit=1)[1]) > 10 and "..." not in line, line
    assert "PLINTH_STORE" in top.out and "PLINTH_HOME" in top.out
    for path, command in _all_commands(cli):
        assert command.help and command.help.strip(), f"{path} has no help"
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"option {param.name} of {' '.join(path)} has no help"
        result = run_cli(*path, "--help")
        assert result.code == 0 and "Usage: plinth " + " ".join(path) in result.out


def test_unknown_command_is_a_usage_error(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("frobnicate")
    assert result.code == 2
    assert "No such command 'frobnicate'" in result.err
    assert "Traceback" not in result.err


# experiments -----------------------------------------------------------------------------------
def test_experiments_list(run_cli, data: Data) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("experiments", "list")
    assert result.code == 0
    rows = {ln.split("│")[1].strip(): ln for ln in result.out.splitlines() if ln.startswith("│")}
    assert set(rows) == {"sweep", "other"}
    assert rows["sweep"].split("│")[4].strip() == "4"
    assert rows["other"].split("│")[4].strip() == "1"

    as_json = json.loads(run_cli("experiments", "list", "--json").out)
    assert [(e["name"], e["runs"], e["runs_capped"]) for e in as_json] == [
        ("sweep", 4, False),
        ("other", 1, False),
    ]


def test_experiments_list_caps_the_run_count(run_cli, data: Data, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(experiments, "COUNT_CAP", 2)
    as_json = json.loads(run_cli("experiments", "list", "--json").out)
    assert [(e["name"], e["runs"], e["runs_capped"]) for e in as_json] == [
        ("sweep", 2, True),
        ("other", 1, False),
    ]
    assert "2+" in run_cli("experiments", "list").out


def test_empty_store_says_so(run_cli) -> None:  # type: ignore[no-untyped-def]
    assert "No experiments yet" in run_cli("experiments", "list").out
    assert run_cli("runs", "list").out.strip() == "No runs yet."
    assert "No datasets yet" in run_cli("datasets", "list").out
    assert json.loads(run_cli("runs", "list", "--json").out) == []


# runs list -------------------------------------------------------------------------------------
def _listed_ids(out: str) -> list[str]:
    return [m.group(0) for ln in out.splitlines() if ln.startswith("│") for m in [ULID.search(ln)] if m]


def test_runs_list_shows_full_ids_newest_first(run_cli, data: Data) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("runs", "list")
    assert result.code == 0
    assert _listed_ids(result.out) == [data.other, data.failed, *reversed(data.ids)]
    assert "Runs (5)" in result.out
    assert "FAILED" in result.out and "FINISHED" in result.out


def test_runs_list_filters_sorts_and_limits(run_cli, data: Data) -> None:  # type: ignore[no-untyped-def]
    by_acc = run_cli("runs", "list", "-e", "sweep", "-w", "metrics.acc > 0.85", "-o", "-metrics.acc")
    assert by_acc.code == 0
    assert _listed_ids(by_acc.out) == [data.best, data.ids[2]]

    asc = run_cli("runs", "list", "--experiment", "sweep", "--order-by", "metrics.acc", "--limit", "1")
    assert _listed_ids(asc.out) == [data.worst]

    params = run_cli("runs", "list", "--where", "params.lr = 0.01")
    assert _listed_ids(params.out) == [data.best]

    failed = run_cli("runs", "list", "-w", "status = 'FAILED'")
    assert _listed_ids(failed.out) == [data.failed]

    both = run_cli("runs", "list", "-e", "sweep", "-e", "other", "-n", "0")
    assert len(_listed_ids(both.out)) == 5

    none = run_cli("runs", "list", "-w", "metrics.acc > 2")
    assert none.code == 0 and none.out.strip() == "No runs match."


def test_runs_list_json(run_cli, data: Data) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("runs", "list", "-e", "sweep", "-o", "-metrics.acc", "--json")
    assert result.code == 0
    found = json.loads(result.out)
    assert [r["id"] for r in found] == [data.best, data.ids[2], data.worst, data.failed]
    best = found[0]
    assert best["params"] == {"lr": "0.01"}
    assert best["metrics"]["acc"] == pytest.approx(0.95)
    assert best["status"] == "FINISHED" and best["experiment_name"] == "sweep"
    assert "environment" not in best
    assert found[-1]["error"] and "diverged at step 3" in found[-1]["error"]


def test_runs_list_keeps_ids_whole_on_a_narrow_terminal(
    run_cli, data: Data, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "80")
    narrow = run_cli("runs", "list", "-o", "-metrics.acc")
    assert _listed_ids(narrow.out)[:2] == [data.best, data.ids[2]]
    assert all(len(ln) <= 80 for ln in narrow.out.splitlines())
    assert "column(s) hidden; see --json" in narrow.out

    monkeypatch.setenv("COLUMNS", "100")
    wider = run_cli("runs", "list", "-e", "sweep", "-o", "-metrics.acc")
    header = wider.out.splitlines()[2]
    assert header.split("┃")[5].strip() == "acc", header  # the sort key's column comes first


@pytest.fixture
def bookkeeping() -> str:
    """A run with the user's own param and metric beside plinth's bookkeeping metrics."""
    with plinth.start_run(experiment="kept", params={"n_estimators": 60}) as run:
        run.log_metrics(
            {
                "test_f1": 0.975903,
                "plinth.max_rss": 2.94154e8,
                "plinth.wall_s": 1.72446,
                "system/cpu_utilization": 102.7,
            }
        )
    return run.id


def _header(out: str) -> list[str]:
    line = next(ln for ln in out.splitlines() if ln.startswith("┃"))
    return [cell.strip() for cell in line.strip("┃").split("┃")]


def test_runs_list_shows_the_users_keys_and_holds_plinths_back(run_cli, bookkeeping: str) -> None:  # type: ignore[no-untyped-def]
    plain = run_cli("runs", "list", "-e", "kept")
    assert _header(plain.out)[4:] == ["n_estimators", "test_f1"]
    assert "0.976 " in plain.out and "3 column(s) of plinth's bookkeeping held back" in plain.out

    everything = run_cli("runs", "list", "-e", "kept", "--all-columns")
    assert _header(everything.out)[4:] == [
        "n_estimators",
        "test_f1",
        "plinth.max_rss",
        "plinth.wall_s",
        "system/cpu_utilization",
    ]
    assert "294 MB" in everything.out and "1.72 s" in everything.out and "103%" in everything.out

    chosen = run_cli("runs", "list", "-e", "kept", "--columns", "plinth.*", "-c", "params.*")
    assert _header(chosen.out)[4:] == ["n_estimators", "plinth.max_rss", "plinth.wall_s"]

    [found] = json.loads(run_cli("runs", "list", "-e", "kept", "--json").out)
    assert set(found["metrics"]) == {"test_f1", "plinth.max_rss", "plinth.wall_s", "system/cpu_utilization"}


def test_runs_show_lists_the_users_metrics_first_in_units(run_cli, bookkeeping: str) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("runs", "show", bookkeeping).out
    assert out.index("test_f1") < out.index("plinth.max_rss") < out.index("system/cpu_utilization")
    assert "294 MB" in out and "2.94154e+08" not in out and "0.976 " in out


@pytest.mark.parametrize(
    "name",
    ["--json", "--limit", "--since", "--dry-run", "--executor", "--ray-address", "--proba", "--where"],
)
def test_a_shared_option_says_the_same_everywhere(name: str) -> None:
    helps = {
        option.help
        for _, command in _all_commands(cli)
        for option in command.params
        if isinstance(option, click.Option) and name in option.opts
    }
    assert len(helps) == 1, helps
    if name == "--json":
        assert helps == {JSON_HELP}


@pytest.mark.parametrize(
    ("args", "code", "needles"),
    [
        (["-w", "metrics.acc >> 1"], 2, ["position", "^"]),
        (["-w", "metrics.acc > 'x'"], 2, ["metrics"]),
        (["-w", "params.lr = [/]"], 2, ["position", "'['"]),
        (["-o", "+bogus"], 2, ["bogus"]),
        (["-e", "no-such-experiment"], 3, ["no-such-experiment"]),
    ],
)
def test_runs_list_bad_input(run_cli, data: Data, args: list[str], code: int, needles: list[str]) -> None:  # type: ignore[no-untyped-def]
    assert_clean_error(run_cli("runs", "list", *args), code, *needles)


def test_bad_filter_points_at_the_position(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("runs", "list", "--where", "metrics.acc >> 1")
    assert_clean_error(result, 2, "position 13")
    lines = result.err.splitlines()
    text_line = next(i for i, ln in enumerate(lines) if ln.strip() == "metrics.acc >> 1")
    caret = lines[text_line + 1]
    assert caret.strip() == "^"
    assert caret.index("^") - lines[text_line].index("m") == 13


@pytest.mark.parametrize("limit", ["-1", "abc"])
def test_runs_list_bad_limit_is_a_usage_error(run_cli, limit: str) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("runs", "list", "--limit", limit)
    assert result.code == 2
    assert "--limit" in result.err and "Traceback" not in result.err


# runs show -------------------------------------------------------------------------------------
def test_runs_show(run_cli, data: Data) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("runs", "show", data.best)
    assert result.code == 0
    out = result.out
    assert f"Run {data.best}" in out
    for text in ["FINISHED", "sweep", "tester", "duration", "lr", "0.01", "acc", "0.95", "team", "cv"]:
        assert text in out, text
    assert "Environment" in out and "python" in out


def test_runs_show_artifacts_and_failure(run_cli, data: Data) -> None:  # type: ignore[no-untyped-def]
    other = run_cli("runs", "show", data.other).out
    for path in ["report.txt", "plots/a.txt", "plots/b.txt"]:
        assert path in other
    assert f"plinth artifacts get {data.other} " in other

    failed = run_cli("runs", "show", data.failed)
    assert failed.code == 0
    assert "FAILED" in failed.out and "diverged at step 3" in failed.out


def test_runs_show_json(run_cli, data: Data) -> None:  # type: ignore[no-untyped-def]
    found = json.loads(run_cli("runs", "show", data.other, "--json").out)
    assert found["id"] == data.other and found["name"] == "with-files"
    assert sorted(a["path"] for a in found["artifacts"]) == ["plots/a.txt", "plots/b.txt", "report.txt"]
    assert found["environment"]["python"]["version"]
    assert found["duration_s"] >= 0


def test_runs_show_unknown_id(run_cli, data: Data) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("runs", "show", "NO-SUCH-RUN")
    assert_clean_error(result, 3, "NO-SUCH-RUN", "plinth runs list")
    assert len(result.err.strip().splitlines()) == 1


def test_user_text_is_not_read_as_markup(run_cli) -> None:  # type: ignore[no-untyped-def]
    with plinth.start_run(
        experiment="ex[bold]",
        name="n[red]x",
        params={"layers": "[a, b]", "close": "[/]"},
        tags={"t": "[i]hi"},
    ) as run:
        run.log_metric("m", 1.0)
    listed = run_cli("runs", "list")
    assert listed.code == 0, listed.err
    for text in ["ex[bold]", "n[red]x", "[/]", "[a, b]"]:
        assert text in listed.out, text
    shown = run_cli("runs", "show", run.id)
    assert shown.code == 0, shown.err
    for text in ["n[red]x", "[/]", "[a, b]", "[i]hi"]:
        assert text in shown.out, text
    assert "ex[bold]" in run_cli("experiments", "list").out


# runs reap -------------------------------------------------------------------------------------
def test_runs_reap_marks_stale_runs_crashed(run_cli) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("runs", "reap").out.strip() == "Marked 0 run(s) CRASHED."
    # A RUNNING run whose process died: nobody beats its heart.
    dead = backend().store.create_run(
        experiment="jobs", name="dead", params={}, tags={}, environment=None, heartbeat_s=0.01, user="tester"
    )
    wait_until(lambda: plinth.get_run(dead.id).status is plinth.RunStatus.CRASHED, "a stale heartbeat")
    result = run_cli("runs", "reap")
    assert result.code == 0
    assert result.out.splitlines() == ["Marked 1 run(s) CRASHED.", f"  {dead.id}"]
    assert "CRASHED" in run_cli("runs", "show", dead.id).out
    assert run_cli("runs", "reap").out.strip() == "Marked 0 run(s) CRASHED."


# artifacts -------------------------------------------------------------------------------------
def test_artifacts_get_a_file(run_cli, data: Data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    into_dir = tmp_path / "into"
    into_dir.mkdir()
    result = run_cli("artifacts", "get", data.other, "report.txt", str(into_dir))
    assert result.code == 0
    assert (into_dir / "report.txt").read_text() == "all good\n"
    assert "Wrote 1 file(s)" in result.out and str(into_dir / "report.txt") in result.out

    as_name = tmp_path / "renamed.txt"
    assert run_cli("artifacts", "get", data.other, "report.txt", str(as_name)).code == 0
    assert as_name.read_text() == "all good\n"

    new_dir = tmp_path / "new" / "deeper"
    assert run_cli("artifacts", "get", data.other, "report.txt", f"{new_dir}{os.sep}").code == 0
    assert (new_dir / "report.txt").read_text() == "all good\n"

    monkeypatch.chdir(tmp_path)
    assert run_cli("artifacts", "get", data.other, "report.txt").code == 0
    assert (tmp_path / "report.txt").read_text() == "all good\n"


def test_artifacts_get_a_folder(run_cli, data: Data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("artifacts", "get", data.other, "plots", str(tmp_path / "out"))
    assert result.code == 0
    assert "Wrote 2 file(s)" in result.out
    assert (tmp_path / "out" / "plots" / "a.txt").read_text() == "plot a"
    assert (tmp_path / "out" / "plots" / "b.txt").read_text() == "plot b"


@pytest.mark.parametrize(
    ("run", "path", "code", "needle"),
    [
        ("NO-SUCH-RUN", "report.txt", 3, "NO-SUCH-RUN"),
        (None, "missing.txt", 3, "missing.txt"),
        (None, "../etc/passwd", 2, "not a plain relative path"),
    ],
)
def test_artifacts_get_bad_input(
    run_cli, data: Data, tmp_path: Path, run: str | None, path: str, code: int, needle: str
) -> None:  # type: ignore[no-untyped-def]
    assert_clean_error(run_cli("artifacts", "get", run or data.other, path, str(tmp_path)), code, needle)


def test_artifacts_get_into_an_impossible_place(run_cli, data: Data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = run_cli("artifacts", "get", data.other, "report.txt", str(blocker / "sub" / "x.txt"))
    assert result.code != 0
    assert result.err.startswith("error: ") and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_artifacts_get_detects_tampering(run_cli, data: Data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    digest = next(a.digest for a in plinth.get_run(data.other).artifacts if a.path == "report.txt")
    blob = Path(backend().blobs.path_of(digest))
    blob.chmod(0o644)
    blob.write_text("all bad\n")
    result = run_cli("artifacts", "get", data.other, "report.txt", str(tmp_path))
    assert_clean_error(result, 4, "report.txt")


# datasets --------------------------------------------------------------------------------------
def test_datasets_list(run_cli, data: Data) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("datasets", "list")
    assert result.code == 0
    rows = [[c.strip() for c in ln.split("│")[1:-1]] for ln in result.out.splitlines() if ln.startswith("│")]
    assert sorted((r[0], r[1], r[2]) for r in rows) == [
        ("org/toy", "1", "3"),
        ("toy", "1", "3"),
        ("toy", "2", "2"),
    ]

    only = json.loads(run_cli("datasets", "list", "toy", "--json").out)
    assert sorted(d["ref"] for d in only) == ["toy/1", "toy/2"]
    assert all(d["columns"] == 2 for d in only)
    assert run_cli("datasets", "list", "nothing").out.strip() == "No versions of dataset 'nothing'."


def test_datasets_show(run_cli, data: Data) -> None:  # type: ignore[no-untyped-def]
    latest = run_cli("datasets", "show", "toy")
    assert latest.code == 0
    assert "Dataset toy/2" in latest.out
    for text in ["x", "label", "numeric", "float64"]:
        assert text in latest.out

    first = run_cli("datasets", "show", "toy/1")
    assert "Dataset toy/1" in first.out and re.search(r"rows\s+3", first.out)

    slashed = run_cli("datasets", "show", "org/toy")
    assert slashed.code == 0 and "Dataset org/toy/1" in slashed.out
    assert "Dataset org/toy/1" in run_cli("datasets", "show", "org/toy/1").out

    as_json = json.loads(run_cli("datasets", "show", "toy/1", "--json").out)
    assert as_json["rows"] == 3 and [c["name"] for c in as_json["schema"]] == ["x", "label"]
    assert as_json["profile"]["columns"]


@pytest.mark.parametrize(
    ("ref", "code", "needle"),
    [
        ("nothing", 3, "nothing"),
        ("toy/9", 3, "toy/9"),
        ("toy/abc", 3, "NAME/VERSION"),
        ("/1", 2, "no name"),
        ("toy/", 2, "NAME/VERSION"),
        (" ", 2, "NAME/VERSION"),
    ],
)
def test_datasets_show_bad_ref(run_cli, data: Data, ref: str, code: int, needle: str) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("datasets", "show", ref)
    assert_clean_error(result, code, needle)
    assert len(result.err.strip().splitlines()) == 1


# gc and db -------------------------------------------------------------------------------------
def test_gc_dry_run_then_collect(run_cli, data: Data) -> None:  # type: ignore[no-untyped-def]
    orphan, _ = backend().blobs.put_bytes(b"nobody refers to me")
    young = run_cli("gc", "--dry-run")
    assert young.code == 0 and young.out.startswith("Would remove 0 blob(s)")

    dry = run_cli("gc", "--dry-run", "--min-age", "0")
    assert dry.out.splitlines()[0].startswith("Would remove 1 blob(s), 19 B")
    assert f"  {orphan}" in dry.out.splitlines()
    assert backend().blobs.exists(orphan)

    real = run_cli("gc", "--min-age", "0")
    assert real.out.startswith("Removed 1 blob(s), 19 B")
    assert not backend().blobs.exists(orphan)
    assert run_cli("gc", "--dry-run", "--min-age", "0").out.startswith("Would remove 0 blob(s)")
    assert run_cli("runs", "show", data.other).code == 0


def test_gc_refuses_a_negative_age(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("gc", "--min-age", "-5")
    assert result.code == 2 and "--min-age" in result.err


def test_db_upgrade_sqlite(run_cli) -> None:  # type: ignore[no-untyped-def]
    first = run_cli("db", "upgrade")
    assert first.code == 0
    assert re.fullmatch(r"Schema of sqlite:///\S+plinth\.db upgraded to revision \w+\.\n", first.out), (
        first.out
    )
    again = run_cli("db", "upgrade")
    assert "already at revision" in again.out


def test_db_upgrade_migrates_every_workspace(run_cli) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("workspaces", "create", "vision").code == 0
    result = run_cli("db", "upgrade")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 2 and "plinth.ws-vision.db" in lines[1], result.out


def test_db_upgrade_hides_the_password(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from plinth.cli.render import safe_url

    assert safe_url("postgresql+psycopg://me:s3cret@db:5432/x") == "postgresql+psycopg://me:***@db:5432/x"
    monkeypatch.setenv("PLINTH_STORE", "postgresql+psycopg://me:s3cret@127.0.0.1:1/x")
    result = run_cli("db", "upgrade")
    assert_clean_error(result, 5, "metadata store")
    assert "s3cret" not in result.err


# settings errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("PLINTH_STORE", "mysql://x", "Unsupported metadata store 'mysql'"),
        ("PLINTH_STORE", "not a url", "not a database URL"),
        ("PLINTH_HEARTBEAT_S", "abc", "PLINTH_HEARTBEAT_S='abc'"),
        ("PLINTH_FLUSH_S", "-1", "PLINTH_FLUSH_S='-1'"),
    ],
)
@pytest.mark.parametrize("command", [["runs", "list"], ["experiments", "list"], ["db", "upgrade"], ["gc"]])
def test_bad_settings_are_one_clear_line(  # type: ignore[no-untyped-def]
    run_cli, monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str, command: list[str]
) -> None:
    monkeypatch.setenv(name, value)
    result = run_cli(*command)
    assert_clean_error(result, 2, needle)
    assert len(result.err.strip().splitlines()) == 1


def test_unreachable_database_is_one_clear_line(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PLINTH_STORE", "postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    result = run_cli("runs", "list")
    assert_clean_error(result, 5, "metadata store", "PLINTH_STORE")
    assert len(result.err.strip().splitlines()) == 1


def test_unusable_home_is_one_clear_line(run_cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("PLINTH_HOME", str(blocker))
    result = run_cli("runs", "list")
    assert result.code == 2
    assert result.err.startswith("error: ") and "not-a-folder" in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


# PostgreSQL and SQLite -------------------------------------------------------------------------
def test_commands_on_each_store(
    run_cli, store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PLINTH_STORE", store_url)
    assert run_cli("db", "upgrade").code == 0
    assert "already at revision" in run_cli("db", "upgrade").out
    with plinth.start_run(experiment="on-store", params={"k": 1}) as run:
        run.log_metric("score", 0.5)
        run.log_dataset(pd.DataFrame({"a": [1, 2]}), name="tiny")
    assert _listed_ids(run_cli("runs", "list", "-w", "metrics.score >= 0.5").out) == [run.id]
    assert "score" in run_cli("runs", "show", run.id).out
    assert "on-store" in run_cli("experiments", "list").out
    assert "Dataset tiny/1" in run_cli("datasets", "show", "tiny").out
    assert_clean_error(run_cli("runs", "show", "NOPE"), 3, "NOPE")


# demo ------------------------------------------------------------------------------------------
def test_demo_end_to_end_and_its_suggestions_work(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    result = run_cli("demo")
    assert result.code == 0, result.err
    best = re.search(r"Best run ([0-9A-Z]{26}): test F1 (\S+)", result.out)
    assert best, result.out
    best_id, best_f1 = best.group(1), float(best.group(2))
    assert best_f1 > 0.9

    train_filter = "tags.plinth.step = 'train_forest'"
    found = json.loads(
        run_cli(
            "runs", "list", "-e", "demo-digits", "-w", train_filter, "-o", "-metrics.test_f1", "--json"
        ).out
    )
    assert len(found) == 4 and found[0]["id"] == best_id
    assert all(r["status"] == "FINISHED" for r in found)
    assert found[0]["metrics"]["test_f1"] == pytest.approx(best_f1, abs=5e-4)  # printed to 3 digits

    suggested = [shlex.split(ln.strip()) for ln in result.out.splitlines() if ln.startswith("  plinth ")]
    assert [s[:3] for s in suggested] == [
        ["plinth", "runs", "show"],
        ["plinth", "runs", "list"],
        ["plinth", "flows", "show"],
        ["plinth", "datasets", "show"],
        ["plinth", "artifacts", "get"],
        ["plinth", "models", "show"],
    ]
    for command in suggested:
        followed = run_cli(*command[1:])
        assert followed.code == 0, (command, followed.err)

    shown = run_cli("runs", "show", best_id).out
    assert "confusion_matrix.csv" in shown and "n_estimators" in shown and "test_f1" in shown
    assert "Dataset digits-train/1" in run_cli("datasets", "show", "digits-train").out
    matrix = (tmp_path / "confusion_matrix.csv").read_text().splitlines()
    assert len(matrix) == 10 and all(len(row.split(",")) == 10 for row in matrix)
    out = tmp_path / "elsewhere"
    out.mkdir()
    assert run_cli("artifacts", "get", best_id, "confusion_matrix.csv", str(out)).code == 0
    assert (out / "confusion_matrix.csv").read_text() == (tmp_path / "confusion_matrix.csv").read_text()

    history = plinth.metric_history(best_id, "test_accuracy_by_trees")
    assert len(history) == int(found[0]["params"]["n_estimators"])
    assert {d.name for d in plinth.list_datasets()} == {"digits-train", "digits-test"}

    # A second demo reports its own four runs; the datasets are stored once.
    again = run_cli("demo")
    assert again.code == 0
    assert len(_listed_ids(again.out.split("Best run")[0])) == 4 and not set(
        _listed_ids(again.out.split("Best run")[0])
    ) & {r["id"] for r in found}
    assert [d.version for d in plinth.list_datasets("digits-train")] == [1]

    # Each demo serves the champion over HTTP and shows what the server logged.
    assert "Served 600 requests" in result.out and "/metrics summary" in result.out
    assert "Scored 35940 rows" in result.out
    assert len(backend().store.prediction_logs("digits-classifier")) == 1200  # two demos

    # Half its traffic is shifted: the shifted pixels drift, labels arrive late, a report is written,
    # and the served version's lineage reaches back to the training data.
    after = re.search(r"Before the shift: (\d+) drifted features; after: (.*)", result.out)
    assert after, result.out
    moved = set(after.group(2).split(", "))
    assert {"pixel_2_3", "pixel_3_3", "pixel_4_4", "pixel_5_4"} <= moved
    assert int(after.group(1)) < len(moved)
    assert re.search(r"Logged \d+ delayed labels for 600 requests", result.out)
    report = re.search(r"Monitoring report .*: (\S+\.html)", result.out)
    assert report and Path(report.group(1)).is_file()
    assert "Plotly.newPlot" in Path(report.group(1)).read_text()
    lineage = result.out.split("Lineage ")[1]
    came_from, came_of = lineage.split("what came of it:")
    assert "dataset digits-train/1" in came_from and "prediction logs of digits-classifier/1" in came_of
    assert "scored by: run" in came_of and "batch-predict" in came_of  # the batch run, downstream
    assert re.search(r"ran in: flow run \w+ \(demo-digits, FINISHED.*Python 3", came_from)  # its environment
    assert "consumed: dataset digits-train/1" in came_from and "consumed_by" not in lineage
    assert "fed by: run" in came_from and "produced by: run" in came_from

    # Each demo registers its best model and makes it champion; the champion predicts.
    assert "digits-classifier@champion predicts" in result.out
    champion = plinth.load_model("digits-classifier@champion")
    assert champion.version == 2 and champion.model_version.run_id in _listed_ids(
        again.out.split("Best run")[0]
    )
    assert plinth.get_model_version("digits-classifier", 1).run_id == best_id


def test_demo_without_scikit_learn_says_what_to_install(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert_clean_error(run_cli("demo"), 2, "pip install 'plinth[demo]'")


def test_interrupt_is_one_line(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(plinth, "search_runs", interrupted)
    result = run_cli("runs", "list")
    assert result.code == 130
    assert result.err.strip() == "error: aborted"


# the real console script -----------------------------------------------------------------------
def test_console_script_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env["PLINTH_HOME"] = str(tmp_path / "home")
    script = shutil.which("plinth", path=str(Path(sys.executable).parent))
    entry = [script] if script else [sys.executable, "-m", "plinth.cli.main"]
    version = subprocess.run([*entry, "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"plinth, version {plinth.__version__}"

    broken = subprocess.run(
        [sys.executable, "-m", "plinth.cli.main", "runs", "list"],
        capture_output=True,
        text=True,
        env={**env, "PLINTH_STORE": "mysql://x"},
        timeout=60,
    )
    assert broken.returncode == 2
    assert broken.stderr.startswith("error: Unsupported metadata store") and "Traceback" not in broken.stderr


# models ----------------------------------------------------------------------------------------
def test_models_commands(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True, as_frame=True)
    clf = DecisionTreeClassifier(random_state=0).fit(x, y)
    with plinth.start_run(experiment="iris") as run:
        run.log_dataset(x, name="iris-train")
        run.log_model(clf, name="iris-clf", input_example=x[:3])
    plinth.register_model("iris-clf", clf, input_example=x[:3])

    assert (
        run_cli("models", "alias", "iris-clf", "champion", "1").out.strip() == "iris-clf@champion → version 1"
    )
    assert "(was 1)" in run_cli("models", "alias", "iris-clf", "champion", "2").out
    assert "champion→2" in run_cli("models", "list").out
    shown = run_cli("models", "show", "iris-clf/1").out
    assert "petal width (cm)" in shown and "scikit-learn" in shown
    assert run.id in shown and "iris-train/1" in shown  # lineage: model <- run <- dataset
    assert json.loads(run_cli("models", "show", "iris-clf@champion", "--json").out)["version"] == 2

    x[:5].to_csv(tmp_path / "in.csv", index=False)
    printed = run_cli("models", "predict", "iris-clf@champion", "--input", str(tmp_path / "in.csv"))
    assert json.loads(printed.out) == clf.predict(x[:5]).tolist()
    written = run_cli(
        "models",
        "predict",
        "iris-clf@champion",
        "-i",
        str(tmp_path / "in.csv"),
        "-o",
        str(tmp_path / "out.parquet"),
        "--proba",
    )
    assert written.code == 0
    assert pd.read_parquet(tmp_path / "out.parquet").shape == (5, 3)

    x[:2].drop(columns=["petal width (cm)"]).to_json(tmp_path / "bad.json", orient="records")
    bad = run_cli("models", "predict", "iris-clf", "-i", str(tmp_path / "bad.json"))
    assert_clean_error(bad, 2, "petal width (cm): expected float64, got missing")
    assert_clean_error(run_cli("models", "alias", "iris-clf", "champion", "9"), 3, "no version 9")
    assert_clean_error(run_cli("models", "show", "nope@x"), 3, "No model named 'nope'")
    assert "Removed iris-clf@champion" in run_cli("models", "unalias", "iris-clf", "champion").out
