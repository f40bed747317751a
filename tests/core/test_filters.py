"""Tests for the filter language: parse_filter, parse_order_by, fields_of."""

from __future__ import annotations

import pickle

import pytest

from plinth.core.errors import InvalidInput
from plinth.core.filters import (
    And,
    Compare,
    Field,
    FilterSyntaxError,
    Not,
    Or,
    OrderKey,
    fields_of,
    parse_filter,
    parse_order_by,
)

ACC = Field("metrics", "acc")
LR = Field("params", "lr")
TEAM = Field("tags", "team")
STATUS = Field("attributes", "status")
START = Field("attributes", "start_time")

A = "metrics.a > 1"
B = "metrics.b > 2"
C = "metrics.c > 3"
D = "metrics.d > 4"
CA = Compare(Field("metrics", "a"), ">", 1)
CB = Compare(Field("metrics", "b"), ">", 2)
CC = Compare(Field("metrics", "c"), ">", 3)
CD = Compare(Field("metrics", "d"), ">", 4)


def test_brief_examples() -> None:
    assert parse_filter("metrics.acc > 0.9 and params.lr = 0.01") == And(
        (Compare(ACC, ">", 0.9), Compare(LR, "=", "0.01"))
    )
    assert parse_filter("metrics.acc > 0.9 and params.lr = 0.1 and tags.team = 'vision'") == And(
        (Compare(ACC, ">", 0.9), Compare(LR, "=", "0.1"), Compare(TEAM, "=", "vision"))
    )


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t "])
def test_empty_filter_is_none(text: str | None) -> None:
    assert parse_filter(text) is None


def test_a_text_parsed_again_gives_the_same_expression_and_a_bad_one_fails_each_time() -> None:
    text = "metrics.acc > 0.9 and params.lr = '0.01'"
    assert parse_filter(text) is parse_filter(text)
    assert parse_order_by(["-metrics.acc", "name"]) is parse_order_by(("-metrics.acc", "name"))
    for _ in range(2):
        with pytest.raises(FilterSyntaxError):
            parse_filter("metrics.acc >")
        with pytest.raises(FilterSyntaxError, match="already in order_by"):
            parse_order_by(["-metrics.acc", "metrics.acc"])


def test_non_string_filter_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        parse_filter(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{A} or {B} and {C}", Or((CA, And((CB, CC))))),
        (f"{A} and {B} or {C}", Or((And((CA, CB)), CC))),
        (f"{A} and {B} or {C} and {D}", Or((And((CA, CB)), And((CC, CD))))),
        (f"not {A} and {B}", And((Not(CA), CB))),
        (f"not {A} or {B}", Or((Not(CA), CB))),
        (f"{A} AND {B} Or {C}", Or((And((CA, CB)), CC))),
        (f"NOT {A}", Not(CA)),
        (f"not not {A}", Not(Not(CA))),
    ],
)
def test_precedence(text: str, expected: object) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"({A} or {B}) and {C}", And((Or((CA, CB)), CC))),
        (f"{A} and ({B} or {C})", And((CA, Or((CB, CC))))),
        (f"(({A}))", CA),
        (f"({A} and {B}) and {C}", And((CA, CB, CC))),
        (f"{A} and ({B} and ({C} and {D}))", And((CA, CB, CC, CD))),
        (f"{A} or ({B} or {C})", Or((CA, CB, CC))),
        (f"not ({A} or {B})", Not(Or((CA, CB)))),
        (f"({A})and({B})", And((CA, CB))),
    ],
)
def test_parentheses_and_flattening(text: str, expected: object) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "op", "value"),
    [
        ("metrics.acc = 1", "=", 1),
        ("metrics.acc == 1", "=", 1),
        ("metrics.acc != 1", "!=", 1),
        ("metrics.acc <> 1", "!=", 1),
        ("metrics.acc < 1", "<", 1),
        ("metrics.acc <= 1", "<=", 1),
        ("metrics.acc > 1", ">", 1),
        ("metrics.acc >= 1", ">=", 1),
        ("metrics.acc>=1", ">=", 1),
        ("metrics.acc is null", "is null", None),
        ("metrics.acc IS NULL", "is null", None),
        ("metrics.acc is not null", "is not null", None),
        ("metrics.acc Is Not Null", "is not null", None),
    ],
)
def test_operators(text: str, op: str, value: object) -> None:
    assert parse_filter(text) == Compare(ACC, op, value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("-3", -3),
        ("0.5", 0.5),
        (".5", 0.5),
        ("-.5", -0.5),
        ("1.", 1.0),
        ("1e3", 1000.0),
        ("1E-3", 0.001),
        ("-2.5e+2", -250.0),
        ("123456789012345678", 123456789012345678),
        ("1234567890123456789012345", 1.2345678901234568e24),
    ],
)
def test_numbers(literal: str, value: float) -> None:
    expr = parse_filter(f"metrics.acc > {literal}")
    assert expr == Compare(ACC, ">", value)
    assert isinstance(expr, Compare)
    assert type(expr.value) is type(value)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'vision'", "vision"),
        ('"vision"', "vision"),
        ("''", ""),
        ('""', ""),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'a''b'", "a'b"),  # SQL-style doubled quote is an escaped quote
        ("''''", "'"),
        ('"a""b"', 'a"b'),
        ('"it\'s"', "it's"),
        ("'back\\\\slash'", "back\\slash"),
        ("'keep \\n and \\%'", "keep \\n and \\%"),  # other escapes stay verbatim
        ("'a and b or c'", "a and b or c"),
        ("'  spaced  '", "  spaced  "),
        ("'ünï ✓'", "ünï ✓"),
    ],
)
def test_strings(literal: str, value: str) -> None:
    assert parse_filter(f"tags.team = {literal}") == Compare(TEAM, "=", value)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("metrics.acc = 1", Field("metrics", "acc")),
        ("metric.acc = 1", Field("metrics", "acc")),
        ("params.lr = 1", Field("params", "lr")),
        ("param.lr = 1", Field("params", "lr")),
        ("tags.team = 1", Field("tags", "team")),
        ("tag.team = 1", Field("tags", "team")),
        ("attributes.name = 1", Field("attributes", "name")),
        ("attribute.name = 1", Field("attributes", "name")),
        ("name = 1", Field("attributes", "name")),
        ("id = 1", Field("attributes", "id")),
        ("run_id = 1", Field("attributes", "id")),
        ("attributes.run_id = 1", Field("attributes", "id")),
        ("user = 1", Field("attributes", "user")),
        ("experiment_id = 1", Field("attributes", "experiment_id")),
        ("metrics.val.acc = 1", Field("metrics", "val.acc")),
        ("metrics.train/loss-2_x = 1", Field("metrics", "train/loss-2_x")),
        ("metrics.`val loss` = 1", Field("metrics", "val loss")),
        ('metrics."val loss" = 1', Field("metrics", "val loss")),
        ("tags.`a``b` = 1", Field("tags", "a`b")),
        ("tags.`and` = 1", Field("tags", "and")),
        ("tags.and = 1", Field("tags", "and")),
        ("params.`x = 'y'` = 1", Field("params", "x = 'y'")),
        ("attributes.`name` = 1", Field("attributes", "name")),
    ],
)
def test_fields(text: str, field: Field) -> None:
    expr = parse_filter(text)
    assert isinstance(expr, Compare)
    assert expr.field == field


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # params and tags are text: an unquoted number keeps its source spelling...
        ("params.lr = 0.01", "0.01"),
        ("params.lr = '0.01'", "0.01"),
        ("params.lr != 1e-3", "1e-3"),
        ("tags.n = 007", "007"),
        ("name = 5", "5"),
        # ...except with an ordering operator, where it stays a number
        ("params.lr > 0.01", 0.01),
        ("params.epochs <= 10", 10),
        ("params.lr > '0.01'", "0.01"),
    ],
)
def test_numbers_against_text_fields(text: str, value: object) -> None:
    expr = parse_filter(text)
    assert isinstance(expr, Compare)
    assert expr.value == value
    assert type(expr.value) is type(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tags.team in ('vision', 'nlp')", Compare(TEAM, "in", ("vision", "nlp"))),
        ("tags.team IN ('vision')", Compare(TEAM, "in", ("vision",))),
        ("tags.team not in ('a','b','c')", Compare(TEAM, "not in", ("a", "b", "c"))),
        ("tags.team NOT IN ( 'a' )", Compare(TEAM, "not in", ("a",))),
        ("metrics.acc in (1, 2.5, -3)", Compare(ACC, "in", (1, 2.5, -3))),
        ("params.lr in (0.1, 0.01)", Compare(LR, "in", ("0.1", "0.01"))),
        ("status in ('running', 'Failed')", Compare(STATUS, "in", ("RUNNING", "FAILED"))),
        ("start_time in (0, 1000)", Compare(START, "in", (0, 1000))),
    ],
)
def test_in_lists(text: str, expected: Compare) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tags.team like 'vis%'", Compare(TEAM, "like", "vis%")),
        ('tags.team LIKE "%_on"', Compare(TEAM, "like", "%_on")),
        ("tags.team not like 'vis%'", Compare(TEAM, "not like", "vis%")),
        ("tags.team ilike 'VIS%'", Compare(TEAM, "ilike", "VIS%")),
        ("tags.team not ilike 'VIS%'", Not(Compare(TEAM, "ilike", "VIS%"))),
        ("params.opt like 'ad%'", Compare(Field("params", "opt"), "like", "ad%")),
        ("name like '%baseline%'", Compare(Field("attributes", "name"), "like", "%baseline%")),
        ("status like 'RUN%'", Compare(STATUS, "like", "RUN%")),
    ],
)
def test_like(text: str, expected: object) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status = 'RUNNING'", Compare(STATUS, "=", "RUNNING")),
        ("status = 'finished'", Compare(STATUS, "=", "FINISHED")),
        ('status != "Failed"', Compare(STATUS, "!=", "FAILED")),
        ("attributes.status = 'killed'", Compare(STATUS, "=", "KILLED")),
        ("status == 'crashed'", Compare(STATUS, "=", "CRASHED")),
        ("status is null", Compare(STATUS, "is null", None)),
    ],
)
def test_status_normalized(text: str, expected: Compare) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("literal", "epoch_ms"),
    [
        ("'2024-01-01'", 1704067200000.0),
        ("'2024-01-01T00:00:00'", 1704067200000.0),
        ("'2024-01-01 00:00:00'", 1704067200000.0),
        ("'2024-01-01T00:00:00Z'", 1704067200000.0),
        ("'2024-01-01T00:00:00+00:00'", 1704067200000.0),
        ("'2024-01-01T01:00:00+01:00'", 1704067200000.0),
        ("'2023-12-31T19:00:00-05:00'", 1704067200000.0),
        ("'1970-01-01T00:00:00.001500'", 1.5),
        ("'1969-12-31T23:59:59Z'", -1000.0),
        ("1704067200000", 1704067200000),
        ("1.7e12", 1.7e12),
    ],
)
def test_time_conversion(literal: str, epoch_ms: float) -> None:
    for attr in ("start_time", "end_time"):
        expr = parse_filter(f"{attr} >= {literal}")
        assert expr == Compare(Field("attributes", attr), ">=", epoch_ms)
        assert isinstance(expr, Compare)
        assert type(expr.value) is type(epoch_ms)


def test_injection_inside_a_string_is_just_a_value() -> None:
    expr = parse_filter("tags.x = '1''; drop table runs; --'")
    assert expr == Compare(Field("tags", "x"), "=", "1'; drop table runs; --")


def test_ast_is_frozen_and_hashable() -> None:
    expr = parse_filter("metrics.acc > 0.9 and tags.team in ('a', 'b')")
    assert expr is not None
    assert hash(expr) == hash(parse_filter("metrics.acc > 0.9 and tags.team in ('a', 'b')"))
    with pytest.raises(AttributeError):
        expr.items = ()  # type: ignore[misc, union-attr]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, set()),
        ("metrics.acc > 1", {ACC}),
        (
            "metrics.acc > 1 and (params.lr = 1 or not tags.team is null) and metrics.acc < 2",
            {ACC, LR, TEAM},
        ),
        ("run_id = 'x' or id = 'y'", {Field("attributes", "id")}),
        ("tags.team not ilike 'a%'", {TEAM}),
    ],
)
def test_fields_of(text: str | None, expected: set[Field]) -> None:
    assert fields_of(parse_filter(text)) == expected


def test_error_message_format() -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter("metrics.acc > and 1")
    assert str(info.value) == (
        "Invalid filter at position 14: expected a value after '>', found 'and'.\n"
        "  metrics.acc > and 1\n"
        "                ^\n"
        "Example: metrics.acc > 0.9 and params.lr = '0.1'"
    )
    assert info.value.position == 14
    assert info.value.text == "metrics.acc > and 1"
    assert isinstance(info.value, InvalidInput)


def test_error_caret_stays_aligned_with_newlines_and_long_text() -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter("metrics.acc > 1\nand\t;")
    assert info.value.position == 20
    lines = str(info.value).splitlines()
    assert lines[1] == "  metrics.acc > 1 and ;"
    assert lines[2].index("^") == lines[1].index(";")
    text = "metrics.acc > 1 and " * 20 + "!"
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    lines = str(info.value).splitlines()
    assert info.value.position == len(text) - 1
    assert lines[1][lines[2].index("^")] == "!"


def test_error_pickles() -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter("metrics.acc > and 1")
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.position, copy.text, str(copy)) == (14, info.value.text, str(info.value))


BAD_FILTERS = [
    # (text, position, fragment of the message)
    ("metrics.acc > and 1", 14, "expected a value after '>'"),
    ("params.lr = '1'; drop table runs", 15, "unexpected character ';'"),
    ("params.lr = '1' drop table runs", 16, "found 'drop'"),
    ("params.lr = '1' -- comment", 16, "found '-'"),
    ("params.lr = '1' /* c */", 16, "unexpected character '/'"),
    ("tags.x = 'a' 'b'", 13, "found \"'b'\""),
    ("tags.x = 'abc", 9, "never closed"),
    ("tags.x = 'it\\'", 9, "never closed"),
    ("metrics.acc > 0.9 and", 21, "found end of input"),
    ("metrics.acc", 11, "expected an operator"),
    ("metrics.acc 0.9", 12, "expected an operator"),
    ("metrics.acc >> 1", 13, "expected a value"),
    ("metrics.acc ! 1", 12, "unexpected character '!'"),
    ("metrics.acc > -", 14, "expected a value"),
    ("metrics.acc > 0.9 && params.lr = 1", 18, "unexpected character '&'"),
    ("metrics.acc > 1abc", 14, "malformed number"),
    ("metrics.acc > 1.2.3", 14, "malformed number"),
    ("acc > 0.9", 0, "unknown field 'acc'"),
    ("attributes.foo = 1", 0, "unknown field 'foo'"),
    ("Metrics.acc > 1", 0, "lowercase"),
    ("metrix.acc > 1", 0, "unknown field prefix 'metrix'"),
    ("metrics. > 1", 0, "expected a name after 'metrics.'"),
    ("metrics.`` > 1", 0, "expected a name after 'metrics.'"),
    ("metrics.`val loss > 1", 8, "never closed"),
    ("and metrics.acc > 1", 0, "expected a field"),
    ("metrics.acc > 1 or or metrics.acc < 0", 19, "expected a field"),
    ("()", 1, "expected a field"),
    ("(metrics.acc > 1", 16, "expected ')' to close the '(' at position 0"),
    ("metrics.acc > 1)", 15, "found ')'"),
    ("metrics.acc = 'high'", 14, "metrics are numbers"),
    ("metrics.acc in (1, '2')", 19, "all numbers or all strings"),
    ("metrics.acc in ('1', '2')", 16, "metrics are numbers"),
    ("metrics.acc like '%a'", 17, "metrics and times are numbers"),
    ("params.x like 5", 14, "quoted pattern"),
    ("params.x in ()", 13, "at least one value"),
    ("params.x in (1, 'a')", 16, "all numbers or all strings"),
    ("params.x in ('a',)", 17, "expected a value"),
    ("params.x in 'a'", 9, "expected '(' after 'in'"),
    ("params.x in ('a' 'b')", 17, "expected ',' or ')'"),
    ("params.x not = 'a'", 9, "expected an operator"),
    ("status = 'DONE'", 9, "RUNNING, FINISHED, FAILED, KILLED, CRASHED"),
    ("status in ('running', 'done')", 22, "RUNNING"),
    ("status > 'RUNNING'", 9, "status takes"),
    ("status = 1", 9, "status takes"),
    ("start_time > 'yesterday'", 13, "ISO-8601"),
    ("start_time like '2024%'", 16, "metrics and times are numbers"),
    ("tags.x = true", 9, "quote it: 'true'"),
    ("tags.x = FALSE", 9, "quote it: 'FALSE'"),
    ("tags.x = null", 9, "is null"),
    ("tags.x is nul", 10, "expected 'null' after 'is'"),
    ("tags.x is not", 13, "found end of input"),
    ("tags.x = 'a'\n; x", 13, "unexpected character ';'"),
    ("metrics.acc > 1e400", 14, "beyond the range of a 64-bit float"),
    (f"metrics.acc > {'1' * 5000}", 14, "beyond the range of a 64-bit float"),
    ("params.x < -1e400", 11, "beyond the range"),
    ("tags.x like 'a\\\\'", 12, "ends with a backslash"),
]


@pytest.mark.parametrize(("text", "position", "fragment"), BAD_FILTERS)
def test_bad_filters(text: str, position: int, fragment: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert info.value.position == position, str(info.value)
    assert fragment in info.value.reason
    assert info.value.text == text
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"Invalid filter at position {position}: ")
    assert lines[2] == "  " + " " * position + "^"
    assert lines[3].startswith("Example: ")


def test_big_numbers_stay_text_where_params_compare_as_text() -> None:
    digits = "1" * 5000
    assert parse_filter(f"params.seed = {digits}") == Compare(Field("params", "seed"), "=", digits)


def test_nesting_depth_is_limited() -> None:
    assert parse_filter("(" * 50 + A + ")" * 50) == CA
    with pytest.raises(FilterSyntaxError, match="nested more than"):
        parse_filter("(" * 500 + A + ")" * 500)
    with pytest.raises(FilterSyntaxError, match="nested more than"):
        parse_filter("not " * 500 + A)


DESC_ACC = OrderKey(ACC, descending=True)
ASC_ACC = OrderKey(ACC, descending=False)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (None, ()),
        ("", ()),
        ("  ", ()),
        ([], ()),
        ((), ()),
        ("-metrics.acc", (DESC_ACC,)),
        ("+metrics.acc", (ASC_ACC,)),
        ("metrics.acc", (ASC_ACC,)),
        ("metrics.acc desc", (DESC_ACC,)),
        ("metrics.acc DESC", (DESC_ACC,)),
        ("metrics.acc asc", (ASC_ACC,)),
        ("  metrics.acc   Asc ", (ASC_ACC,)),
        ("metric.acc desc", (DESC_ACC,)),
        ("start_time asc", (OrderKey(START, descending=False),)),
        ("+params.lr", (OrderKey(LR, descending=False),)),
        ("name", (OrderKey(Field("attributes", "name"), descending=False),)),
        ("-run_id", (OrderKey(Field("attributes", "id"), descending=True),)),
        ("-metrics.`val loss`", (OrderKey(Field("metrics", "val loss"), descending=True),)),
        ("-metrics.`a,b`", (OrderKey(Field("metrics", "a,b"), descending=True),)),
        (
            "-metrics.acc, start_time asc,params.lr",
            (DESC_ACC, OrderKey(START, False), OrderKey(LR, False)),
        ),
        (
            ["-metrics.acc", "start_time desc", "+params.lr, name"],
            (
                DESC_ACC,
                OrderKey(START, True),
                OrderKey(LR, False),
                OrderKey(Field("attributes", "name"), False),
            ),
        ),
        (("tags.team",), (OrderKey(TEAM, False),)),
    ],
)
def test_order_by(items: object, expected: tuple[OrderKey, ...]) -> None:
    assert parse_order_by(items) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("items", "text", "position", "fragment"),
    [
        ("-metrics.acc desc", "-metrics.acc desc", 13, "use either '-' or desc"),
        ("+metrics.acc asc", "+metrics.acc asc", 13, "not both"),
        ("metrics.acc sideways", "metrics.acc sideways", 12, "expected ',' or the end"),
        ("metrics.acc desc asc", "metrics.acc desc asc", 17, "found 'asc'"),
        ("acc", "acc", 0, "unknown field 'acc'"),
        ("--metrics.acc", "--metrics.acc", 1, "expected a field"),
        ("metrics.acc,,", "metrics.acc,,", 12, "expected a field"),
        ("metrics.acc,", "metrics.acc,", 12, "found end of input"),
        ("desc", "desc", 0, "expected a field"),
        (["metrics.acc", ""], "", 0, "found end of input"),
        (["metrics.acc", " "], " ", 1, "found end of input"),
        ("metrics.acc, metrics.acc desc", "metrics.acc, metrics.acc desc", 13, "already"),
        (["metrics.acc", "-metrics.acc"], "-metrics.acc", 0, "already"),
        (["id", "run_id"], "run_id", 0, "already"),
        ("metrics.acc; drop table runs", "metrics.acc; drop table runs", 11, "';'"),
    ],
)
def test_bad_order_by(items: object, text: str, position: int, fragment: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_order_by(items)  # type: ignore[arg-type]
    assert (info.value.position, info.value.text) == (position, text), str(info.value)
    assert fragment in info.value.reason
    assert str(info.value).startswith(f"Invalid order_by at position {position}: ")
    assert "Example: order_by=[" in str(info.value)


@pytest.mark.parametrize("items", [5, [1], ["metrics.acc", None], {"metrics.acc": 1}])
def test_order_by_wrong_types(items: object) -> None:
    with pytest.raises(InvalidInput, match="order_by must be"):
        parse_order_by(items)  # type: ignore[arg-type]
