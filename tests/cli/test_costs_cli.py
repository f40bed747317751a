"""`plinth costs`: a table or JSON of resource-hours and cost per experiment, flow or user."""

from __future__ import annotations

import json

import pytest

import plinth
from plinth.cli.main import main


def logged_run(experiment: str, cpu: float, hours: float) -> None:
    with plinth.start_run(experiment, system_metrics=False, tags={"plinth.cpu": cpu, "plinth.gpu": 0}) as run:
        run.log_metrics(
            {"system/wall_hours": hours, "system/cpu_hours": cpu * hours, "system/cpu_hours_used": hours}
        )


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_costs_table_and_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_PRICE_CPU_HOUR", "0.25")
    logged_run("train", cpu=4, hours=2.0)
    logged_run("eval", cpu=1, hours=1.0)
    code, out, _ = cli(capsys, "costs", "--by", "experiment", "--since", "30d")
    assert code == 0
    assert out.index("train") < out.index("eval")  # costliest first
    assert "2.00" in out and "PLINTH_PRICE_" in out
    code, out, _ = cli(capsys, "costs", "--by", "user", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["group"] for r in rows] == ["tester"]
    assert rows[0]["cpu_hours"] == 9.0 and rows[0]["cost"] == pytest.approx(2.25)
    assert rows[0]["cpu_utilization"] == pytest.approx(100 * 3 / 9)


def test_costs_with_nothing_to_count(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "costs", "--by", "flow", "--since", "all")
    assert code == 0 and "No runs" in out


def test_costs_help_names_the_price_settings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "costs", "--help")
    assert code == 0
    assert "PLINTH_PRICE_CPU_HOUR" in out and "PLINTH_PRICE_GPU_HOUR" in out


def test_a_bad_price_is_a_clean_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLINTH_PRICE_CPU_HOUR", "free")
    code, out, err = cli(capsys, "costs")
    assert code != 0 and out == ""
    assert err.startswith("error: ") and "PLINTH_PRICE_CPU_HOUR" in err and "Traceback" not in err
