"""Erasure and retention receipts in lineage: linked from every model version whose prediction
logs they removed, described with their counts, the subject only for those who may see it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

import plinth
from plinth.cli.main import main
from plinth.core.entities import LineageEdge, PredictionLog
from plinth.core.errors import InvalidInput
from plinth.core.ids import new_id, now_ms
from plinth.governance.erasure import ERASED
from plinth.governance.lineage import LineageGraph, lineage
from plinth.tracking.context import Backend

pytestmark = pytest.mark.usefixtures("logs_in")

DAY_MS = 86_400_000


class Doubler:
    def predict(self, data: object) -> object:
        return np.asarray(data).sum(axis=1) * 2


def two_versions() -> str:
    """Model d, versions 1 and 2, from one run; returns the run's id."""
    data = np.arange(12.0).reshape(6, 2)
    with plinth.start_run(experiment="lin") as run:
        run.log_dataset(data, name="train-set", role="train")
        run.log_model(Doubler(), name="d", input_example=data[:2])
        run.log_model(Doubler(), name="d", input_example=data[:2])
    return run.id


def logs(be: Backend, version: int, subjects: list[str], *, age_ms: int = 0) -> list[str]:
    at = now_ms() - age_ms
    entries = [
        PredictionLog(new_id(), "d", version, "primary", at, 1.0, s, '{"instances": [[1, 2]]}', "[6]")
        for s in subjects
    ]
    be.store.write_prediction_logs(entries)
    return [e.request_id for e in entries]


def utc(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def receipt_nodes(graph: LineageGraph) -> set[str]:
    return {i for t, i in graph.labels if t == "receipt"}


def test_an_erasure_receipt_is_linked_from_each_version_it_removed_logs_of(
    tracking: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = two_versions()
    logs(tracking, 1, ["alice", "bob"])
    second = logs(tracking, 2, ["alice", "alice"])[1]
    plinth.log_labels("d", [(second, 6)])

    receipt = plinth.erase_subject("alice")

    assert receipt.versions == (("d", 1, 1, 0), ("d", 2, 2, 1))
    assert receipt.id.startswith(f"erasure-{receipt.time_ms}-") and len(receipt.id) == 34
    [event] = [e for e in tracking.store.audit_events(entity_id="alice") if e.action == "governance.erasure"]
    recorded = json.loads(event.after or "{}")
    assert recorded["id"] == receipt.id and recorded["versions"] == [["d", 1, 1, 0], ["d", 2, 2, 1]]
    node = ("receipt", receipt.id)
    text = f"erasure receipt {utc(receipt.time_ms)}: 3 prediction logs and 1 labels removed (subject alice)"
    for version in (1, 2):  # version 2 kept none of its logs: its predictions stay a node
        down = plinth.lineage(f"d/{version}", "down")
        assert (("predictions", f"d/{version}"), "erased by", node) in down.edges
        assert down.labels[node] == text
        assert f"└── erased by: {text}" in "\n".join(down.tree("down"))
    assert "bob" not in text and plinth.verify_audit().ok

    up = plinth.lineage(receipt.id, "up")  # from the receipt to what it touched, and on to the data
    assert up.root == node
    assert {(a, r) for a, r, b in up.edges if b == node} == {
        (("predictions", "d/1"), "erased by"),
        (("predictions", "d/2"), "erased by"),
    }
    shown = "\n".join(up.tree("up"))
    assert "erased: prediction logs of d/1 (1 requests, 0 labeled)" in shown
    assert "erased: prediction logs of d/2 (0 requests, 0 labeled)" in shown
    assert run_id in shown and "dataset train-set/1" in shown

    assert main(["lineage", "d/2", "--direction", "down"]) == 0
    assert f"erased by: {text}" in capsys.readouterr().out
    assert main(["lineage", "d/1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"type": "receipt", "id": receipt.id, "label": text} in doc["nodes"]
    erased = next(e for e in doc["edges"] if e["relation"] == "erased by")
    assert (erased["reads"], erased["reads_back"], erased["to"]) == ("erased by", "erased", list(node))
    again = LineageGraph.from_dict(doc)
    assert (again.labels, again.edges) == (plinth.lineage("d/1").labels, plinth.lineage("d/1").edges)


def test_the_subject_of_a_receipt_is_left_out_for_those_who_may_not_see_it(tracking: Backend) -> None:
    two_versions()
    logs(tracking, 1, ["s-42", "s-7"])
    receipt = plinth.erase_subject("s-42")
    hidden = lineage(tracking.store, "d/1", "down", personal=False)
    assert hidden.labels[("receipt", receipt.id)] == (
        f"erasure receipt {utc(receipt.time_ms)}: 1 prediction logs and 0 labels removed"
    )
    assert "s-42" not in "\n".join(hidden.tree("down"))
    assert "(subject s-42)" in lineage(tracking.store, "d/1", "down").labels[("receipt", receipt.id)]


def test_a_retention_receipt_says_from_before_when(tracking: Backend) -> None:
    two_versions()
    logs(tracking, 1, ["old-1", "old-2"], age_ms=100 * DAY_MS)
    logs(tracking, 2, ["old-3"], age_ms=100 * DAY_MS)
    logs(tracking, 2, ["new"])

    receipt = plinth.apply_retention("90d")

    assert receipt.id.startswith("retention-") and receipt.versions == (("d", 1, 2, 0), ("d", 2, 1, 0))
    assert receipt.before_ms is not None
    text = (
        f"retention pass {utc(receipt.time_ms)}: 3 prediction logs and 0 labels "
        f"older than {utc(receipt.before_ms)} removed"
    )
    for version in (1, 2):
        graph = lineage(tracking.store, f"d/{version}", "down", personal=False)
        assert (("predictions", f"d/{version}"), "erased by", ("receipt", receipt.id)) in graph.edges
        assert graph.labels[("receipt", receipt.id)] == text


def test_a_dry_run_links_nothing(tracking: Backend) -> None:
    two_versions()
    logs(tracking, 1, ["alice"])
    logs(tracking, 2, ["alice"], age_ms=100 * DAY_MS)
    erasure = plinth.erase_subject("alice", dry_run=True)
    retention = plinth.apply_retention("90d", dry_run=True)
    assert erasure.versions == (("d", 1, 1, 0), ("d", 2, 1, 0)) and erasure.id == ""
    assert retention.versions == (("d", 2, 1, 0),) and retention.id == ""
    for version in (1, 2):
        mv = tracking.store.get_model_version("d", version)
        assert not [e for e in tracking.store.edges(src=("model_version", mv.id)) if e.relation == ERASED]
        assert not receipt_nodes(plinth.lineage(f"d/{version}", "down"))
    assert not [e for e in tracking.store.audit_events() if e.action.startswith("governance.")]


def test_an_erasure_of_nothing_and_of_unregistered_models_links_nothing(tracking: Backend) -> None:
    two_versions()
    tracking.store.write_prediction_logs(
        [PredictionLog(new_id(), "elsewhere", 1, "primary", now_ms(), 1.0, "alice", "{}", "[]")]
    )
    receipt = plinth.erase_subject("alice")  # logs of a model the registry does not hold
    assert receipt.versions == (("elsewhere", 1, 1, 0),) and receipt.prediction_logs == 1
    assert not tracking.store.edges(dst=("receipt", receipt.id))
    assert plinth.erase_subject("nobody").versions == ()


def test_an_audit_event_links_only_receipts_into_lineage(tracking: Backend) -> None:
    stray = LineageEdge("dataset_version", "x", "consumed_by", "run", "y", now_ms())
    with pytest.raises(InvalidInput, match="links only receipts"):
        tracking.store.record_audit("governance.erasure", "subject", "s", None, "{}", [stray])
    assert not tracking.store.edges(dst=("run", "y"))
    assert not [e for e in tracking.store.audit_events() if e.action == "governance.erasure"]


def test_a_model_whose_name_is_longer_than_an_edge_id_is_linked_all_the_same(tracking: Backend) -> None:
    name = "org/" + "long-model-name-" * 6  # 'NAME/1' is longer than the lineage table's ids
    with plinth.start_run(experiment="lin") as run:
        run.log_model(Doubler(), name=name, input_example=np.ones((2, 2)))
    tracking.store.write_prediction_logs(
        [PredictionLog(new_id(), name, 1, "primary", now_ms(), 1.0, "alice", "{}", "[]")]
    )
    receipt = plinth.erase_subject("alice")
    graph = plinth.lineage(f"{name}/1", "down")
    assert (("predictions", f"{name}/1"), "erased by", ("receipt", receipt.id)) in graph.edges
