"""What a notebook shows for a flow run: its graph of step calls, facts and steps, and a group's ranks."""

from __future__ import annotations

import sys
from pathlib import Path

from notebook_markup import checked, table, table_rows, text_of, with_data

from plinth.core.entities import StepRun, StepStatus
from plinth.notebook import to_html
from plinth.notebook.flows import ranks_html, steps_table
from plinth.tracking.context import Backend

RESOURCES = Path(__file__).parent.parent / "resources"
sys.path.insert(0, str(RESOURCES))
import flows_example as ex  # noqa: E402


def edges_of(html: str) -> set[tuple[str, str]]:
    return {
        (a["data-from"], a["data-to"]) for t, a in checked(html).elements if t == "g" and "data-from" in a
    }


def test_a_flow_result_draws_its_dag_by_depth_with_statuses(tracking: Backend) -> None:
    result = ex.pipeline.run(lr=0.2)
    html = to_html(result)
    assert with_data(html, "div", plinth="flow-run", flow_run_id=result.id, status="FINISHED")
    nodes = {a["data-node-id"]: a for a in with_data(html, "g") if "data-node-id" in a}
    calls = ["load#0", "train#0", "train#1", "train#2", "train#3", "pick_best#0"]
    assert sorted(nodes) == sorted(calls)
    assert {a["data-status"] for a in nodes.values()} == {"FINISHED"}
    fan_in = {(f"train#{i}", "pick_best#0") for i in range(4)}
    assert edges_of(html) == {("load#0", f"train#{i}") for i in range(4)} | fan_in
    x = {call: float(a["transform"].split("(")[1].split(",")[0]) for call, a in nodes.items()}
    assert x["load#0"] < x["train#0"] == x["train#3"] < x["pick_best#0"]  # one layer per depth
    assert [k for k, _ in table_rows(html, "steps")] == [s.call for s in result.steps]
    assert table(html, "steps")["train#2"][1] == "FINISHED"
    text = text_of(html)
    assert "example-train" in text and '"lr": 0.2' in text and "6/6" in text


def test_a_cached_call_says_so_in_graph_and_table(tracking: Backend) -> None:
    ex.pipeline.run(lr=0.2)
    again = ex.pipeline.run(lr=0.2)
    html = to_html(again)
    cached = [a for a in with_data(html, "g", status="CACHED") if "data-node-id" in a]
    assert {a["data-node-id"] for a in cached} == {f"train#{i}" for i in range(4)}
    assert table(html, "steps")["train#0"][3] == "hit"
    assert ("train#1", "pick_best#0") in edges_of(html)  # a reused call stands for the run it reused


def test_a_distributed_step_lists_its_ranks() -> None:
    step = StepRun(
        id="01STEP", flow_run_id="01FLOW", call="fit#0", step="fit", status=StepStatus.FAILED, attempts=2,
        start_ms=1_000, end_ms=61_000, input_digest="d",
        usage={"worker": "node-a", "ranks": [
            {"rank": 1, "worker": "node-b", "outcome": "crashed", "error": "OOM", "cpu_s": 50.0,
             "max_rss": 2_000_000_000, "wall_s": 59.0, "gpus": [1]},
            {"rank": 0, "worker": "node-a", "outcome": "ok", "error": None, "cpu_s": 118.0,
             "max_rss": 294_000_000, "wall_s": 60.0, "gpus": [0]},
        ]},
    )  # fmt: skip
    ranks = ranks_html(step)
    checked(ranks)
    assert [k for k, _ in table_rows(ranks, "ranks-fit#0")] == ["0", "1"]
    assert table(ranks, "ranks-fit#0")["0"] == ["0", "node-a", "OK", "1m 00s", "1m 58s", "294 MB", "0", ""]
    assert (
        table(ranks, "ranks-fit#0")["1"][2:3] == ["CRASHED"] and "OOM" in table(ranks, "ranks-fit#0")["1"][7]
    )
    steps = steps_table([step], flow_start_ms=0)
    assert table(steps, "steps")["fit#0"][4:8] == ["+1 s", "1m 00s", "node-a", "2"]
