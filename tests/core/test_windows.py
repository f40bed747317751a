"""`Window`: one value for the span a monitoring question covers and the length of its parts."""

from __future__ import annotations

import datetime as dt

import pytest

from plinth import Window
from plinth.core.errors import InvalidInput
from plinth.core.windows import as_window, format_period, period_ms

HOUR = 3_600_000
NOON = int(dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC).timestamp() * 1000)


def test_since_counts_back_from_the_end() -> None:
    assert Window.parse(since="2h", end=NOON) == Window(NOON - 2 * HOUR, NOON)


def test_start_and_end_read_iso_text_datetimes_and_milliseconds() -> None:
    expected = Window(NOON, NOON + HOUR)
    assert Window.parse(start="2026-11-23T12:00", end="2026-11-23T13:00") == expected
    assert Window.parse(start=dt.datetime(2026, 11, 23, 12), end=NOON + HOUR) == expected


@pytest.mark.parametrize(("every", "ms"), [("1h", HOUR), ("10m", 600_000), (90, 90_000), (1.5, 1500)])
def test_every_is_text_or_seconds_and_kept_in_milliseconds(every: str | float, ms: int) -> None:
    assert Window.parse(every=every).every_ms == ms


def test_every_prints_back_as_the_shortest_text() -> None:
    assert Window(every_ms=HOUR).every == "1h"
    periods = [format_period(ms) for ms in (86_400_000, 5_400_000, 90_000, 1500)]
    assert periods == ["1d", "90m", "90s", "1500ms"]
    assert Window().every is None


def test_parts_cover_the_window_and_line_up_with_the_clock() -> None:
    parts = Window(every_ms=HOUR).parts(first_ms=NOON + 10, last_ms=NOON + HOUR + 10)
    assert parts == [Window(NOON, NOON + HOUR), Window(NOON + HOUR, NOON + HOUR + 11)]
    ninety = Window(NOON, NOON + 90 * 60_000).cut("1h")
    assert ninety.parts(0, 0) == [Window(NOON, NOON + HOUR), Window(NOON + HOUR, NOON + 90 * 60_000)]


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"since": "1h", "start": NOON}, "either since"),
        ({"start": NOON, "end": NOON - 1}, "ends .* before it starts"),
        ({"since": "soon"}, "since='soon' must be a period"),
        ({"every": "0m"}, "every='0m' must be a period"),
        ({"start": "yesterday"}, "start='yesterday' is not a time"),
        ({"end": True}, "end= must be a time"),
    ],
)
def test_unreadable_windows_say_what_to_write(keywords: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Window.parse(**keywords)  # type: ignore[arg-type]


def test_parts_need_every_and_a_sane_count() -> None:
    with pytest.raises(InvalidInput, match="no every="):
        Window(NOON, NOON + HOUR).parts(NOON, NOON)
    with pytest.raises(InvalidInput, match="more than 10,000 windows"):
        Window(0, 365 * 24 * HOUR, every_ms=1000).parts(0, 0)


def test_a_window_or_the_keywords_but_not_both() -> None:
    given = Window(NOON, NOON + HOUR)
    assert as_window(given) is given
    assert as_window(None, since="1h", end=NOON) == Window(NOON - HOUR, NOON)
    with pytest.raises(InvalidInput, match="window= or since=, every=, not both"):
        as_window(given, since="1h", every="1m")


def test_period_ms_refuses_text_that_is_not_a_period() -> None:
    assert period_ms("7d") == 7 * 24 * HOUR
    with pytest.raises(InvalidInput, match="every='weekly'"):
        period_ms("weekly")
