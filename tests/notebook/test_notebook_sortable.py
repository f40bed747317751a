"""A runs table sorts by a click on a header with CSS alone: what its HTML carries for that."""

from __future__ import annotations

import math
import re

import pytest
from notebook_markup import checked, table_rows

from plinth.notebook.sortable import SortableTable, ranks


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.5, 0.1, None, 0.5, math.nan], [2, 1, None, 2, None]),  # ties share a rank, gaps have none
        (["b", "A", "a", "c"], [2, 1, 1, 3]),  # text ignores case
        (["x", 2.0, 10.0], [3, 1, 2]),  # numbers as numbers, before text
        ([], []),
    ],
)
def test_ranks_go_up_from_one(values: list[float | str | None], expected: list[int | None]) -> None:
    assert ranks(values) == expected


def sample() -> str:
    table = SortableTable(("run", "metrics.acc"), numeric=frozenset({1}), name="runs")
    table.add(["<code>r1</code>", "0.5"], ["r1", 0.5], key="r1")
    table.add(["<code>r2</code>", ""], ["r2", None], key="r2")
    table.add(["<code>r3</code>", "0.9"], ["r3", 0.9], key="r3")
    return table.render()


def test_rows_keep_their_order_and_carry_their_rank_per_column() -> None:
    html = sample()
    assert [key for key, _ in table_rows(html, "runs")] == ["r1", "r2", "r3"]
    styles = [a.get("style") for t, a in checked(html).elements if t == "tr" and "data-key" in a]
    assert styles == ["--a0:1;--a1:1", "--a0:2", "--a0:3;--a1:2"]  # r2 has no accuracy to rank
    assert html == sample()  # nothing random: one output's HTML is the same each time


def test_each_header_sorts_up_then_down_through_one_radio_group() -> None:
    elements = checked(sample()).elements
    radios = [a for t, a in elements if t == "input"]
    assert [(a["type"], a["name"], a["value"]) for a in radios] == [
        ("radio", "sort", "0u"),
        ("radio", "sort", "0d"),
        ("radio", "sort", "1u"),
        ("radio", "sort", "1d"),
    ]
    labels = [a for t, a in elements if t == "label"]
    assert [a.get("style", "") for a in labels] == ["", "display:none"] * 2  # one name per header unstyled
    assert not any("id" in a or "for" in a for t, a in elements)  # labels wrap their radios: no ids
    forms = [a for t, a in elements if t == "form"]
    assert forms == [{"class": "sortable"}]  # its own form: its own radio group


def test_a_rule_per_column_and_way_orders_the_cells() -> None:
    css = re.search(r"<style>(.*)</style>", sample(), flags=re.S)
    assert css is not None
    rules = css.group(1)
    assert 'input[value="1u"]:checked) td { order: var(--a1, 1000000); }' in rules
    assert 'input[value="1d"]:checked) td { order: calc(-1 * var(--a1, -1000000)); }' in rules


def test_an_empty_table_draws_nothing() -> None:
    assert SortableTable(("run",)).render() == ""
