"""`plinth flows …` and `plinth scheduler` from the command line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from plinth.cli.main import main

EXAMPLE = str(Path(__file__).parent.parent / "resources" / "flows_example.py")
ULID = re.compile(r"\b01[0-9A-Z]{24}\b")


@pytest.fixture(autouse=True)
def _wide_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _listed(out: str) -> list[str]:
    """The flow run ids of a `flows list` table, top to bottom."""
    return [ln.split("│")[1].strip() for ln in out.splitlines() if ln.startswith("│")]


def test_run_show_logs_list_resume(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "flows", "run", f"{EXAMPLE}:pipeline", "-p", "lr=0.2", "--param", "seed=1")
    assert code == 0, err
    assert "pick_best#0" in out and "FINISHED" in out and "'lr': 0.2" in out
    [run_id] = set(ULID.findall(out))
    code, out, _ = run(capsys, "flows", "show", run_id)
    assert code == 0 and '"seed": 1' in out and "train#3" in out
    code, out, _ = run(capsys, "flows", "logs", run_id, "load")
    assert code == 0 and out == "loading seed 1\n"
    code, out, _ = run(capsys, "flows", "list")
    assert run_id in out and "example-train" in out
    code, out, _ = run(capsys, "flows", "resume", run_id)
    assert code == 0 and out.count("CACHED") == 6
    resumed = re.search(r"Flow example-train (01[0-9A-Z]{24})", out).group(1)  # type: ignore[union-attr]
    code, out, _ = run(capsys, "flows", "list", "-n", "1")
    assert _listed(out) == [resumed]
    code, out, _ = run(capsys, "flows", "list", "--limit", "0")
    assert _listed(out) == [resumed, run_id]
    from plinth.tracking.context import backend

    for flow_run in (run_id, resumed):  # recorded by path: another process can load the file again
        assert backend().store.get_flow_run(flow_run).source == f"{EXAMPLE}:pipeline"


def test_failed_flow_exits_non_zero_with_the_step_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    marker = str(tmp_path / "m")
    code, out, err = run(
        capsys, "flows", "run", f"{EXAMPLE}:flaky_flow", "-p", f"marker={marker}", "-p", "fail_times=9"
    )
    assert code == 1
    assert err.startswith("error: Step flaky#0 failed after 3 attempts") and "Traceback" not in err
    [run_id] = set(ULID.findall(out))
    code, out, err = run(capsys, "flows", "logs", run_id, "nope")
    assert code == 3 and "flaky#0" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("flows", "run", EXAMPLE), "defines"),  # several flows: one must be named
        (("flows", "run", "/no/such/file.py"), "does not exist"),
        (("flows", "run", f"{EXAMPLE}:pipeline", "-p", "nonsense"), "NAME=VALUE"),
        (("flows", "run", f"{EXAMPLE}:pipeline", "-p", "learning_rate=1"), "parameters are"),
        (("flows", "show", "NOPE"), "No flow run"),
    ],
)
def test_bad_input_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], needle: str
) -> None:
    code, _out, err = run(capsys, *args)
    assert code != 0 and err.startswith("error: ") and needle in err and "Traceback" not in err
