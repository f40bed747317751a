"""Flows defined in a notebook cell (IPython's `__main__`, which has no file) run, their steps
travel by value, and they resume from the same session; elsewhere resume says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import plinth
from plinth.core.errors import InvalidInput
from plinth.flows.source import load_object
from plinth.tracking.context import Backend

CELL = """
import os

import plinth
from plinth import flow, step

@step
def double(x: int) -> int:
    return 2 * x

@step
def total(xs: list) -> int:
    return sum(xs)

@step
def fails_once(x: int, marker: str) -> int:
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first time")
    return x + 1

@flow
def cell_flow(n: int = 3, marker: str = "") -> int:
    return fails_once(total(double.map(range(n))), marker)
"""


@pytest.fixture
def shell() -> InteractiveShell:
    shell = InteractiveShell.instance()
    yield shell
    shell.reset()


def run_cell(shell: InteractiveShell, code: str) -> None:
    result = shell.run_cell(code)
    assert result.success, result.error_in_exec or result.error_before_exec


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_flow_defined_in_a_cell_runs_and_resumes_in_its_session(
    tracking: Backend, shell: InteractiveShell, tmp_path: Path
) -> None:
    run_cell(shell, CELL)
    marker = tmp_path / "failed-once"
    run_cell(shell, f"failed = cell_flow.run(n=4, marker={str(marker)!r}, raise_on_failure=False)")
    failed = shell.user_ns["failed"]
    assert failed.flow_run.status.value == "FAILED"
    assert failed.flow_run.source == "<interactive>:cell_flow"
    run_cell(shell, "again = plinth.resume_flow(failed.id)")
    again = shell.user_ns["again"]
    assert again.result == 2 * (0 + 1 + 2 + 3) + 1
    assert [s.status.value for s in again.steps].count("CACHED") == 5  # only the failed call ran again


def test_resuming_outside_the_session_says_what_to_do() -> None:
    with pytest.raises(InvalidInput, match="defined in a notebook or an interactive session"):
        load_object("<interactive>:no_such_flow_here")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_lineage_of_a_flow_run_reaches_its_steps_and_their_results(
    tracking: Backend, shell: InteractiveShell, tmp_path: Path
) -> None:
    run_cell(shell, CELL)
    marker = tmp_path / "m"
    marker.touch()  # fails_once does not fail
    run_cell(shell, f"done = cell_flow.run(n=2, marker={str(marker)!r})")
    done = shell.user_ns["done"]
    graph = plinth.lineage(done.id)
    assert graph.root == ("flow_run", done.id)
    ran = {dst for src, relation, dst in graph.edges if src == graph.root and relation == "ran"}
    assert ran == {("run", s.id) for s in done.steps}
    assert any(relation == "produced" for _, relation, _ in graph.edges)  # and on to the results
