"""The wire format: every entity goes to JSON text and comes back equal, by its type hint."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest

from plinth.core.audit import AuditAdoption, AuditCheck, AuditHead
from plinth.core.entities import (
    AlertState,
    Artifact,
    AuditEvent,
    DatasetVersion,
    Experiment,
    FlowRun,
    Label,
    LineageEdge,
    MetricPoint,
    ModelFile,
    ModelVersion,
    Param,
    PredictionLog,
    RegisteredModel,
    Run,
    RunStatus,
    StepRun,
    StepStatus,
    Tag,
)
from plinth.core.filters import Expr, OrderKey, parse_filter, parse_order_by
from plinth.store import wire
from plinth.store.base import ArtifactRecord, NewDataset, NewRun, PointRow, RemovedPredictions, SealedManifest
from plinth.store.rpc import VersionRequest

ARTIFACT = Artifact("r1", "model.pkl", "a" * 64, 10, 5)
RUN = Run(
    "r1",
    "e1",
    "exp",
    "run-1",
    RunStatus.FAILED,
    "alice",
    1,
    2,
    3,
    10.0,
    params={"lr": "0.1"},
    tags={"team": "vision", "ü": "\u00e9\U0001f600"},
    metrics={"acc": 0.9, "nan": math.nan, "inf": math.inf, "ninf": -math.inf},
    error="boom",
    environment={"python": "3.11", "gpus": [{"name": "H100", "memory": 80.5}], "none": None},
    artifacts=[ARTIFACT],
)
LOG = PredictionLog("q1", "churn", 3, "primary", 10, 1.5, None, '{"x": 1}', "[0]", 200, 1)

ENTITIES: list[tuple[Any, Any]] = [
    (Experiment("e1", "iris", 5, {"k": "v"}), Experiment),
    (Param("lr", "0.1"), Param),
    (Tag("k", "v"), Tag),
    (MetricPoint("loss", 0.5, 3, 7), MetricPoint),
    (ARTIFACT, Artifact),
    (
        DatasetVersion(
            "d1", "iris", 2, "b" * 64, 150, [{"name": "x", "dtype": "f8"}], {"rows": 150}, "s", 9, 12
        ),
        DatasetVersion,
    ),
    (LineageEdge("dataset_version", "d1", "consumed_by", "run", "r1", 4, {"role": "train"}), LineageEdge),
    (AuditEvent(1, 2, "alice", "run.create", "run", "r1", None, "x", "0" * 64, "1" * 64), AuditEvent),
    (RUN, Run),
    (
        ModelVersion(
            "m1",
            "org/churn",
            3,
            "sklearn",
            "c" * 64,
            {"inputs": []},
            {"python": "3.11"},
            "r1",
            "d",
            "bob",
            8,
            ("prod", "canary"),
            "sig",
            "key",
        ),
        ModelVersion,
    ),
    (RegisteredModel("churn", "d", 1, 3, {"prod": 3}), RegisteredModel),
    (ModelFile("model.pkl", "d" * 64, 99), ModelFile),
    (
        FlowRun("f1", "train", RunStatus.RUNNING, {"n": 3, "xs": [1.5, None]}, "src", 1, None, driver_pid=42),
        FlowRun,
    ),
    (
        StepRun("s1", "f1", "train#1", "train", StepStatus.CACHED, 2, 1, 2, "i" * 64, resources={"gpus": 1}),
        StepRun,
    ),
    (LOG, PredictionLog),
    (Label("churn", "q1", "[1]", 11, "subject-7"), Label),
    (AlertState("drift", "churn", 2, True, "inc", 5, math.nan, 6), AlertState),
    (ArtifactRecord("a/b.txt", "e" * 64, 3), ArtifactRecord),
    (
        NewDataset("iris", "f" * 64, 10, 3, [{"name": "x", "dtype": "i8"}], {"mean": math.inf}, "mem"),
        NewDataset,
    ),
    (NewRun("exp", None, {"a": "1"}, {}, None, 10.0, "u", "id-1"), NewRun),
    (RemovedPredictions(1, "a", 2, "b"), RemovedPredictions),
    (RemovedPredictions(3, "a", 1, "b", (("m", 1, 2, 0), ("org/m", 2, 1, 1))), RemovedPredictions),
    (AuditHead(3, "0" * 64, 9, "1" * 64), AuditHead),
    (AuditCheck(3, False, 2, "edited", "edited", True, AuditHead(3, "0" * 64, 9, "1" * 64), 1), AuditCheck),
    (AuditAdoption(3, 4), AuditAdoption),
    (SealedManifest("a" * 64, "sig", "fp"), SealedManifest),
    (
        VersionRequest(
            2, "sklearn", SealedManifest("a" * 64), [ModelFile("m", "b" * 64, 1)], None, {}, None, ""
        ),
        VersionRequest,
    ),
    ([(LOG, '"yes"'), (LOG, None)], list[tuple[PredictionLog, str | None]]),
    ((ARTIFACT, True), tuple[Artifact, bool]),
    ({"a", "b"}, set[str]),
    ([(5, "claimed", None)], list[tuple[int, str, str | None]]),
    ([("r1", "acc", 0, 1, 2, math.nan)], list[PointRow]),
    ([("r1", RunStatus.KILLED, None, 7)], list[tuple[str, RunStatus, str | None, int]]),
    (b"\x00\xffbytes", bytes),
    (None, StepRun | None),
]


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN wherever it sits."""
    return json.dumps(wire.encode(a), sort_keys=True) == json.dumps(wire.encode(b), sort_keys=True)


@pytest.mark.parametrize(("value", "hint"), ENTITIES, ids=lambda v: type(v).__name__)
def test_every_entity_goes_through_json_text_and_back(value: Any, hint: Any) -> None:
    text = wire.dumps(value)
    back = wire.decode(json.loads(text), hint)
    assert same(back, value)
    assert type(back) is type(value)
    if not any(isinstance(v, float) and math.isnan(v) for v in _floats(value)):
        assert back == value


def _floats(value: Any) -> list[Any]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list | tuple):
        return [f for v in value for f in _floats(v)]
    if hasattr(value, "__dataclass_fields__"):
        return [f for name in value.__dataclass_fields__ for f in _floats(getattr(value, name))]
    return []


def test_the_text_is_strict_json_with_non_finite_floats_tagged() -> None:
    text = wire.dumps(RUN).decode()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert '"nan":{"$float":"NaN"}' in text and '"ninf":{"$float":"-Infinity"}' in text
    back = wire.decode(json.loads(text), Run)
    assert math.isnan(back.metrics["nan"]) and back.metrics["inf"] == math.inf
    assert back.status is RunStatus.FAILED and back.artifacts == [ARTIFACT]


def test_untyped_values_keep_their_tagged_floats() -> None:
    profile = {"std": math.inf, "rows": [1, math.nan]}
    back = wire.decode(json.loads(wire.dumps(profile)), dict[str, Any])
    assert back["std"] == math.inf and math.isnan(back["rows"][1])


@pytest.mark.parametrize(
    "text",
    [
        "metrics.acc > 0.9 and params.lr = '0.1'",
        "not (tags.team ilike 'VIS%') or status in ('FAILED', 'KILLED')",
        "metrics.loss < 1e30 and params.x is not null and name not like 'a\\_%'",
        "(metrics.a = 1 or params.b = 2) and (tags.c = '3' or metrics.d != 4.5)",
        "start_time >= '2024-01-01' and params.lr in (0.1, 0.2)",
    ],
)
def test_parsed_filters_and_orders_go_through(text: str) -> None:
    expr = parse_filter(text)
    assert wire.decode(json.loads(wire.dumps(expr)), Expr | None) == expr
    order = parse_order_by(["-metrics.acc", "params.lr"])
    assert tuple(wire.decode(json.loads(wire.dumps(order)), list[OrderKey])) == order


@pytest.mark.parametrize(
    ("data", "hint", "place"),
    [
        ({"id": "e1", "name": "x"}, Experiment, "body.created_ms: expected a value"),
        ({"id": "e1", "name": "x", "created_ms": "5"}, Experiment, "body.created_ms: expected an integer"),
        ({"id": "e1", "name": "x", "created_ms": 5, "extra": 1}, Experiment, "body.extra"),
        ({"id": 1, "name": "x", "created_ms": 5}, Experiment, "body.id: expected a string"),
        ("RUNNING!", RunStatus, "one of 'RUNNING'"),
        ([["r1", "acc", 0, 1, 2]], list[PointRow], "body[0]: expected a list of 6 items"),
        ([["r1", "acc", 0, 1, True, 0.5]], list[PointRow], "expected an integer"),
        ({"$float": "nope"}, float, "expected a number"),
        ({"$float": []}, dict[str, float], "expected a number"),
        ({"a": {"$float": {}}}, dict[str, Any], "expected a number"),
        ({"$type": "Xor", "items": []}, Expr, "body.$type"),
        ("x", bytes, "base64"),
        (5, str | None, "expected str or null"),
        ([1], dict[str, str], "expected an object"),
    ],
)
def test_a_value_of_the_wrong_shape_is_refused_naming_its_place(data: Any, hint: Any, place: str) -> None:
    with pytest.raises(wire.WireError, match=place.replace("$", r"\$").replace("[", r"\[")) as caught:
        wire.decode(data, hint)
    assert caught.value.problems and caught.value.problems[0]["field"].startswith("body")


def test_collections_of_plain_values_keep_every_rule_of_the_long_way() -> None:
    huge = sys.float_info.max
    assert wire.encode({"a": 1.5, "b": math.nan}) == {"a": 1.5, "b": {"$float": "NaN"}}
    assert wire.encode([huge, huge, -math.inf]) == [huge, huge, {"$float": "-Infinity"}]
    assert wire.encode({"a": huge, "b": huge}) == {"a": huge, "b": huge}  # their sum is not finite
    assert wire.encode(["x", 1, True, None]) == ["x", 1, True, None]
    back = wire.decode({"acc": 1, "loss": 0.5}, dict[str, float])
    assert back == {"acc": 1.0, "loss": 0.5} and type(back["acc"]) is float
    assert wire.decode({"a": [1, {"$float": "Infinity"}], "b": "x"}, dict[str, Any]) == {
        "a": [1, math.inf],
        "b": "x",
    }
    with pytest.raises(wire.WireError, match=r"body\.lr: expected a string"):
        wire.decode({"team": "a", "lr": 0.1}, dict[str, str])
    with pytest.raises(wire.WireError, match=r"body\[1\]: expected a string"):
        wire.decode(["a", 2], list[str])
    with pytest.raises(wire.WireError, match=r"body\.flag: expected true or false"):
        wire.decode({"flag": 1}, dict[str, bool])


def test_a_union_decodes_as_its_members_tried_in_order() -> None:
    big = 2**70
    for data, hint, expected in [
        (5, int | float, 5),
        (0.5, int | float | str, 0.5),
        ("3", int | float | str, "3"),
        (big, int | float, float(big)),  # past 64 bits: the integer refuses, the float takes it
        ({"$float": "NaN"}, int | float, math.nan),
        ("aGk=", bytes | str, b"hi"),  # bytes may take text: tried before the text
        ("3", list[str] | str, "3"),
        (["a"], list[str] | str, ["a"]),
    ]:
        back = wire.decode(data, hint)
        assert type(back) is type(expected)
        assert back == expected or (math.isnan(back) and math.isnan(expected))
    compare = wire.decode(json.loads(wire.dumps(parse_filter("params.p = '3' and metrics.m > 1"))), Expr)
    assert [type(c.value) for c in compare.items] == [str, int]  # type: ignore[union-attr]
    with pytest.raises(wire.WireError, match=r"body: expected int or float or str, got true"):
        wire.decode(True, int | float | str)


def test_what_json_cannot_carry_is_refused() -> None:
    with pytest.raises(wire.WireError, match="cannot be sent"):
        wire.encode({"f": print})
    with pytest.raises(wire.WireError, match="text keys"):
        wire.encode({1: "x"})
    with pytest.raises(wire.WireError, match="not valid JSON"):
        wire.loads(b"{nope")


def test_schemas_describe_what_encode_makes() -> None:
    schema = wire.schema(Run)
    assert schema["title"] == "Run" and "status" in schema["required"]
    assert schema["properties"]["status"] == {"enum": [s.value for s in RunStatus]}
    assert wire.schema(Expr)["anyOf"][1]["properties"]["$type"] == {"const": "And"}
