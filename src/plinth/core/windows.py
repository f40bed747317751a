"""Time windows: the span a monitoring question covers, and the length of the parts it is cut into.

`plinth.drift`, `drift_over_time`, `performance`, `operations` and `monitoring_report` take one
`Window` (or the `since=`/`start=`/`end=`/`every=` keywords that build it), so a window is parsed
and checked in one place and reads the same everywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from plinth.core.errors import InvalidInput
from plinth.core.ids import now_ms
from plinth.core.units import parse_duration

Moment = str | int | float | dt.datetime | None
"""A point in time: ISO text ('2026-11-23T10:00'), a datetime (naive means UTC) or epoch ms."""

Period = str | int | float
"""A length of time: text ('10m', '1h', '7d') or seconds."""

MAX_PARTS = 10_000
"""The most parts a window may be cut into (a guard against `every='1s'` over a year)."""

_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000))


@dataclass(frozen=True)
class Window:
    """A half-open time range [start_ms, end_ms), cut into parts of `every_ms` where given.

    An open end (None) reaches the first or last logged time. Build one from the keywords users
    type with `Window.parse`; the monitoring functions accept either.

    Args:
        start_ms: first included time, epoch milliseconds; None for the beginning.
        end_ms: first excluded time; None for now.
        every_ms: length of consecutive parts (charts, drift over time); None for no parts.

    Raises:
        InvalidInput: `every_ms` is not positive.

    Example:
        >>> Window.parse(since="7d", every="1h").every_ms
        3600000
    """

    start_ms: int | None = None
    end_ms: int | None = None
    every_ms: int | None = None

    def __post_init__(self) -> None:
        if self.every_ms is not None and self.every_ms <= 0:
            raise InvalidInput(f"every={self.every_ms} ms must be a positive period such as 10m or 1h.")

    @classmethod
    def parse(
        cls,
        since: Period | None = None,
        start: Moment = None,
        end: Moment = None,
        every: Period | None = None,
    ) -> Window:
        """The window `since` ago until `end` (default now), or from `start` to `end`.

        Args:
            since: a period back from `end`, e.g. '1h' or '7d' (or seconds).
            start: where the window begins (ISO text, datetime or epoch ms).
            end: where it ends (excluded).
            every: the length of its parts, e.g. '1h' (or seconds).

        Raises:
            InvalidInput: both `since` and `start`, an unreadable time or period, or an empty range.
        """
        if since is not None and start is not None:
            raise InvalidInput("Give either since= (e.g. '1h') or start=/end=, not both.")
        end_ms = _moment(end, "end")
        start_ms: int | None
        if since is not None:
            start_ms = (end_ms if end_ms is not None else now_ms()) - period_ms(since, "since")
        else:
            start_ms = _moment(start, "start")
        if start_ms is not None and end_ms is not None and end_ms <= start_ms:
            raise InvalidInput(f"The window ends ({_fmt(end_ms)}) before it starts ({_fmt(start_ms)}).")
        return cls(start_ms, end_ms, None if every is None else period_ms(every, "every"))

    @property
    def every(self) -> str | None:
        """The parts' length as text ('1h', '90m'), or None."""
        return None if self.every_ms is None else format_period(self.every_ms)

    def describe(self) -> str:
        """Human form, e.g. '2026-11-23 10:00 → now'."""
        return f"{_fmt(self.start_ms) if self.start_ms else 'the start'} → {_fmt(self.end_ms) or 'now'}"

    def cut(self, every: Period) -> Window:
        """This window with parts of length `every` ('1h' or seconds)."""
        return replace(self, every_ms=period_ms(every, "every"))

    def parts(self, first_ms: int, last_ms: int) -> list[Window]:
        """Consecutive windows of `every_ms` covering this one (open ends: first_ms..last_ms).

        An open start is rounded down to a whole part, so parts line up with the clock.

        Raises:
            InvalidInput: the window has no `every_ms`, or would make more than 10,000 parts.
        """
        step = self.every_ms
        if step is None:
            raise InvalidInput("This window has no every= period to cut it into parts; give e.g. every='1h'.")
        start = self.start_ms if self.start_ms is not None else first_ms - first_ms % step
        end = self.end_ms if self.end_ms is not None else last_ms + 1
        if (end - start) / step > MAX_PARTS:
            raise InvalidInput(
                f"every={self.every} would make more than 10,000 windows; use a longer period."
            )
        return [Window(a, min(a + step, end)) for a in range(start, end, step)]


def as_window(
    window: Window | None,
    *,
    since: Period | None = None,
    start: Moment = None,
    end: Moment = None,
    every: Period | None = None,
) -> Window:
    """`window` as given, or one built from the keywords; both at once is an error.

    Raises:
        InvalidInput: `window` and a keyword together, or what `Window.parse` refuses.
    """
    if window is None:
        return Window.parse(since, start, end, every)
    keywords = {"since": since, "start": start, "end": end, "every": every}
    given = "=, ".join(name for name, value in keywords.items() if value is not None)
    if given:
        raise InvalidInput(f"Give window= or {given}=, not both; Window.parse builds a window from them.")
    return window


def period_ms(value: Period, what: str = "every") -> int:
    """Milliseconds of a positive period ('10m', '1h', '7d', or seconds).

    Raises:
        InvalidInput: the period is not readable, or is zero.
    """
    try:
        seconds = parse_duration(value)
    except InvalidInput:
        seconds = None
    if not seconds:
        raise InvalidInput(f"{what}={value!r} must be a period such as 10m, 1h or 7d (or seconds).")
    return int(seconds * 1000)


def format_period(ms: int) -> str:
    """A period as the shortest text that reads back to it: 3600000 -> '1h', 5400000 -> '90m'."""
    for unit, size in _UNITS:
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _moment(value: Moment, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{what}= must be a time, not {value!r}.")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, str):
        try:
            return _moment(dt.datetime.fromisoformat(value), what)
        except ValueError:
            pass
    raise InvalidInput(f"{what}={value!r} is not a time; use ISO text (2026-11-23T10:00), a datetime or ms.")


def _fmt(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
