"""Parsing of human units in step options: memory sizes and durations."""

from __future__ import annotations

import re

from plinth.core.errors import InvalidInput

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_DURATION_FACTORS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


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
