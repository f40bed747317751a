"""Human units: sizes and durations parsed from options; numbers, sizes and durations written for people."""

from __future__ import annotations

import math
import re

from plinth.core.errors import InvalidInput

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_DURATION_FACTORS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def parse_memory(value: str | int | float | None) -> int | None:
    """Bytes from 2147483648, "2GB", "2GiB", "512M" (decimal units; 'i' for binary); None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(f"Memory {value!r} is not a size; use e.g. '2GB', '512MiB' or a number of bytes.")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    binary = "i" in unit
    letter = unit[:1] if unit not in ("b", "") else ""
    factor = 1024 ** "kmgt".index(letter) * 1024 if binary and letter else _SIZE_FACTORS[letter]
    size = int(number * factor)
    if size <= 0:
        raise InvalidInput(f"Memory {value!r} must be more than zero.")
    return size


def parse_duration(value: str | int | float | None) -> float | None:
    """Seconds from 10, 2.5, "500ms", "1s", "10m", "2h"; None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(f"Duration {value!r} is not a time; use e.g. '1s', '10m', '2h' or seconds.")
    return float(match.group(1)) * _DURATION_FACTORS[(match.group(2) or "").lower()]


def format_number(value: float) -> str:
    """`value` with three significant digits: 0.976, 0.0120, 12.3, 4.29e-28; whole numbers whole.

    Numbers from 1,000 to a million keep their integer digits (1234, not 1.23e+03).
    """
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    if 1e3 <= abs(value) < 1e6:
        return f"{value:.0f}"
    return f"{value:#.3g}".rstrip(".")


def format_size(n: float) -> str:
    """Bytes in decimal units with three significant digits: '210 B', '1.26 kB', '294 MB'."""
    value = float(n)
    for unit in _SIZE_UNITS:
        if abs(value) < 999.5 or unit == _SIZE_UNITS[-1]:
            break
        value /= 1000
    return f"{value:.0f} B" if unit == "B" else f"{format_number(value)} {unit}"


def format_duration(seconds: float) -> str:
    """Seconds for people: '250 ms', '1.37 s', '3m 04s', '2h 05m'."""
    if abs(seconds) < 1:
        return f"{format_number(seconds * 1000)} ms"
    if abs(seconds) < 59.95:
        return f"{format_number(seconds)} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
