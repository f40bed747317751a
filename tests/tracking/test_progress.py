"""The one progress bar: drawn on stderr when it is a terminal, silent when piped, hidden or trivial."""

from __future__ import annotations

import re
import sys

import pytest

from plinth.tracking.progress import progress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def as_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the captured stderr a terminal (in the test itself: capsys swaps stderr until then)."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "120")  # not the width of the terminal the tests run in


@pytest.mark.parametrize(
    ("total", "unit", "counted"),
    [(10, "rows", "10/10 rows"), (None, "rows", "10/? rows"), (10, "files", "10/10 files")],
)
def test_progress_bar_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    total: int | None,
    unit: str,
    counted: str,
) -> None:
    as_terminal(monkeypatch)
    with progress("Scoring", total, unit=unit) as advance:
        advance(4)
        advance(6)
    drawn = capsys.readouterr()
    assert drawn.out == ""  # stdout stays clean for what the command prints
    assert "Scoring" in drawn.err and counted in ANSI.sub("", drawn.err)


def test_progress_bar_draws_nothing_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    with progress("Scoring", 10) as advance:  # stderr is a pipe here
        advance(10)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(("total", "show"), [(10, False), (1, True), (0, True)])
def test_progress_bar_draws_nothing_when_hidden_or_trivial(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], total: int, show: bool
) -> None:
    as_terminal(monkeypatch)
    with progress("Scoring", total, show=show) as advance:
        advance(total)
    assert capsys.readouterr() == ("", "")
