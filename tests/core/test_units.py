"""Human units: what people read in tables (numbers, sizes, durations) and what options accept."""

from __future__ import annotations

import pytest

from plinth.core.errors import InvalidInput
from plinth.core.units import format_duration, format_number, format_size, parse_duration, parse_memory


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0120413, "0.0120"),
        (0.975926, "0.976"),
        (0.95, "0.950"),
        (1.0, "1"),
        (4.99925, "5.00"),
        (12.345, "12.3"),
        (123.4, "123"),
        (35940.2, "35940"),
        (4.291e-28, "4.29e-28"),
        (-0.5, "-0.500"),
        (float("nan"), "nan"),
    ],
)
def test_numbers_have_three_significant_digits(value: float, text: str) -> None:
    assert format_number(value) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [(210, "210 B"), (1257, "1.26 kB"), (2.94154e08, "294 MB"), (1.5e9, "1.50 GB")],
)
def test_sizes_read_in_decimal_units(n: float, text: str) -> None:
    assert format_size(n) == text
    assert parse_memory(text.replace(" ", "")) == pytest.approx(n, rel=0.01, abs=1)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0456, "45.6 ms"), (0.309556, "310 ms"), (1.72446, "1.72 s"), (184, "3m 04s"), (7500, "2h 05m")],
)
def test_durations_read_in_the_largest_fitting_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_options_refuse_what_is_not_a_size_or_a_time() -> None:
    with pytest.raises(InvalidInput, match="'2GB'"):
        parse_memory("lots")
    with pytest.raises(InvalidInput, match="'10m'"):
        parse_duration("soon")
