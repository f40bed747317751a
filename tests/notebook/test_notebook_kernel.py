"""The example notebooks, run top to bottom by a real IPython kernel, show what they made as HTML.

Each notebook in examples/notebooks is executed with nbclient on an ipykernel kernel of this
Python, with its own PLINTH_HOME. The notebooks print the ids and values they create as plain
text; the tests read those lines and find the same values in the cells' text/html outputs.
One notebook's HTML outputs are then joined into a page and opened in Chromium.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from notebook_markup import charts, checked, table, text_of, with_data

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("notebook-kernel")]  # one worker runs each once

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "notebooks"
UI_URL = "http://127.0.0.1:5050"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@dataclass(frozen=True)
class Cell:
    """One executed code cell: what it printed, the text/html of the value it ended with (`html`,
    at most one) and of what it displayed on the way (live views, in their final state)."""

    source: str
    printed: str
    html: list[str]
    displayed: list[str]

    def line(self, prefix: str) -> list[str]:
        """The words of the printed line that starts with `prefix`, after it."""
        for line in self.printed.splitlines():
            if line.startswith(prefix + " "):
                return line[len(prefix) + 1 :].split()
        raise AssertionError(f"no printed line starts with {prefix!r} in:\n{self.printed}")

    @property
    def only_html(self) -> str:
        assert len(self.html) == 1, f"expected one HTML output, found {len(self.html)}"
        return self.html[0]


@dataclass(frozen=True)
class Executed:
    """A notebook after a kernel ran it."""

    cells: list[Cell]

    def printing(self, prefix: str) -> Cell:
        """The cell that printed a line starting with `prefix`."""
        found = [c for c in self.cells if any(ln.startswith(prefix + " ") for ln in c.printed.splitlines())]
        assert len(found) == 1, f"{len(found)} cells printed {prefix!r}"
        return found[0]

    def running(self, code: str) -> Cell:
        """The cell whose source holds `code`."""
        found = [c for c in self.cells if code in c.source]
        assert len(found) == 1, f"{len(found)} cells run {code!r}"
        return found[0]


def _kernel_manager(kernels: Path) -> KernelManager:
    """A manager for a kernel of this very Python (the .venv's), through a kernelspec of our own."""
    spec = kernels / "plinth-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "plinth", "language": "python"})
    )
    specs = KernelSpecManager(kernel_dirs=[str(kernels)])
    return KernelManager(kernel_name="plinth-test", kernel_spec_manager=specs)


def _environment(home: Path, **extra: str) -> dict[str, str]:
    """The kernel's environment: ours without PLINTH_* settings, then a fresh home and a user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    return {**env, "PLINTH_HOME": str(home), "PLINTH_USER": "tester", **extra}


def _read(notebook: Any) -> Executed:
    """The code cells of an executed notebook, each checked to have run without error or stderr."""
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None, f"a cell did not run:\n{cell.source}"
        kinds = {o.output_type for o in cell.outputs}
        assert "error" not in kinds, f"a cell failed:\n{cell.source}"
        streams = [o for o in cell.outputs if o.output_type == "stream"]
        assert [o.text for o in streams if o.name == "stderr"] == [], (
            f"a cell wrote to stderr:\n{cell.source}"
        )
        cells.append(Cell(cell.source, "".join(o.text for o in streams), *_html_of(cell.outputs)))
    return Executed(cells)


def _html_of(outputs: list[Any]) -> tuple[list[str], list[str]]:
    """The text/html of the cell's value and of its other displays, each checked well formed."""
    found: dict[str, list[str]] = {"execute_result": [], "display_data": []}
    for output in outputs:
        if "text/html" in output.get("data", {}):
            found[output.output_type].append(output.data["text/html"])
    for markup in [*found["execute_result"], *found["display_data"]]:
        checked(markup)  # no script, every element closed, SVG that parses
    return found["execute_result"], found["display_data"]


@pytest.fixture(scope="module")
def run_notebook(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Executed]:
    """`run_notebook(name, **env)`: execute examples/notebooks/NAME.ipynb once per module."""
    done: dict[tuple[str, frozenset[tuple[str, str]]], Executed] = {}

    def run(name: str, **env: str) -> Executed:
        key = (name, frozenset(env.items()))
        if key not in done:
            where = tmp_path_factory.mktemp(name)
            notebook = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
            assert all(not c.get("outputs") for c in notebook.cells), f"{name}.ipynb is stored with outputs"
            client = NotebookClient(
                notebook,
                km=_kernel_manager(where / "kernels"),
                timeout=120,
                resources={"metadata": {"path": str(where)}},  # the kernel's working folder
            )
            try:
                client.execute(env=_environment(where / "home", **env))
            finally:  # kept next to its home, to read when a test fails
                nbformat.write(notebook, where / f"{name}.executed.ipynb")
            done[key] = _read(notebook)
        return done[key]

    return run


def test_the_stored_notebooks_are_the_generators_cells() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import make_notebooks
    finally:
        sys.path.remove(str(EXAMPLES))
    for name in ("tracking", "flows", "models"):
        assert (EXAMPLES / f"{name}.ipynb").read_text() == make_notebooks.text_of(name), name


def test_the_tracking_notebook_shows_runs_history_and_dataset(run_notebook: Callable[..., Executed]) -> None:
    nb = run_notebook("tracking")
    grid = nb.printing("run")
    made = dict(zip(grid.printed.split()[1::4], grid.printed.split()[3::4], strict=True))  # id -> alpha
    assert len(made) == 3 and grid.html == []

    runs = nb.printing("found").only_html
    assert with_data(runs, "div", plinth="runs", count="3")
    rows = table(runs, "runs")
    assert set(rows) == set(made)
    assert nb.printing("found").line("found")[2:] == list(rows)  # the table keeps search order
    assert all(made[run_id] in cells for run_id, cells in rows.items())  # params.alpha per run

    best_id, _, alpha, _, accuracy = nb.printing("best run").line("best run")
    shown = nb.printing("best run").only_html
    assert with_data(shown, "div", plinth="run", run_id=best_id, status="FINISHED")
    assert table(shown, "params")["alpha"][-1] == alpha == made[best_id]
    assert table(shown, "metrics")["accuracy"][-1] == f"{float(accuracy):#.3g}".rstrip(".")
    assert "tester" in text_of(shown)

    history = nb.printing("accuracy by epoch").only_html
    assert with_data(history, "div", plinth="metric-history", run_id=best_id, key="accuracy", points="8")
    [chart] = charts(history)
    assert chart.alt.startswith("accuracy by step: 8 points") and len(chart.all("path")) == 1

    frame = nb.running('search_runs(experiment="digits", as_frame=True)').only_html  # pandas draws it
    assert 'class="dataframe' in frame and best_id in frame and 'data-plinth="' not in frame

    name, _, rows_count = nb.printing("dataset").line("dataset")
    dataset = nb.printing("dataset").only_html
    assert with_data(dataset, "div", plinth="dataset", dataset=name) and name == "digits/1"
    assert rows_count == "1797" and "1797" in text_of(dataset).replace(",", "")
    assert len(table(dataset, "profile")) == 65  # 64 pixels and the target

    lineage = nb.printing("lineage of").only_html
    assert with_data(lineage, "div", plinth="lineage")
    assert all(f"consumed by run {run_id}" in text_of(lineage) for run_id in made)


def test_the_tracking_notebook_leaves_a_live_run_s_final_charts(
    run_notebook: Callable[..., Executed],
) -> None:
    cell = run_notebook("tracking").printing("live run")
    run_id, _, accuracy = cell.line("live run")
    assert cell.html == [] and len(cell.displayed) == 1  # one output, redrawn in place
    [live] = cell.displayed
    assert with_data(live, "div", plinth="run-live", run_id=run_id, status="FINISHED", final="true")
    assert with_data(live, "div", metric="accuracy", points="8", x="step")
    [chart] = [c for c in charts(live) if c.alt.startswith("accuracy by step")]
    assert f"last {float(accuracy):#.3g}".rstrip(".") + " at 7" in chart.alt


def test_the_flows_notebook_draws_its_dag_cache_lineage_and_costs(
    run_notebook: Callable[..., Executed],
) -> None:
    nb = run_notebook("flows")
    cells = [c for c in nb.cells if c.printed.startswith("flow run ")]
    assert len(cells) == 2
    first, again = cells
    first_id, status, *_ = first.line("flow run")
    assert status == "FINISHED"
    calls = ["load#0", "train#0", "train#1", "train#2", "pick_best#0"]
    # the live view ended as the flow run's view; the result the cell ends with points at it
    assert [graphs(h) for h in [*first.displayed, *first.html]] == [1, 0]
    [drawn] = first.displayed
    assert with_data(first.only_html, "div", plinth="flow-result", flow_run_id=first_id, drawn="above")
    assert with_data(drawn, "div", plinth="flow-run", flow_run_id=first_id, status="FINISHED")
    nodes = {a["data-node-id"]: a["data-status"] for a in with_data(drawn, "g") if "data-node-id" in a}
    assert nodes == dict.fromkeys(calls, "FINISHED")
    assert list(table(drawn, "steps")) == calls
    assert "wine-grid" in text_of(drawn)

    again_id, again_status, _, *cached = again.line("flow run")
    assert again_id != first_id and again_status == "FINISHED"
    assert cached == ["train#0", "train#1", "train#2"]
    assert [graphs(h) for h in [*again.displayed, *again.html]] == [1, 0]
    [redrawn] = again.displayed
    assert with_data(redrawn, "div", plinth="flow-run", flow_run_id=again_id)
    assert {a["data-node-id"] for a in with_data(redrawn, "g", status="CACHED")} == set(cached)

    later = nb.printing("shown again")  # a later cell showing the first result draws it in full
    assert later.line("shown again") == [first_id] and later.displayed == []
    assert graphs(later.only_html) == 1
    assert with_data(later.only_html, "div", plinth="flow-run", flow_run_id=first_id, status="FINISHED")

    step_id, call = nb.printing("lineage of").line("lineage of")
    lineage = nb.printing("lineage of").only_html
    assert call == "pick_best#0" and with_data(lineage, "div", plinth="lineage")
    assert step_id in text_of(lineage) and "train#0" in text_of(lineage)

    costs = nb.printing("cost groups").only_html
    assert with_data(costs, "div", plinth="costs", groups="1")
    assert table(costs, "costs")["wine-grid"][1] == str(2 * len(calls) - len(cached))  # calls that ran


def test_the_models_notebook_shows_the_version_its_data_and_lineage(
    run_notebook: Callable[..., Executed],
) -> None:
    nb = run_notebook("models", PLINTH_UI_URL=UI_URL)
    name, _, _, run_id = nb.printing("registered").line("registered")
    assert name == "iris-clf/1"
    version = nb.printing("model iris-clf/1 aliases").only_html
    assert with_data(version, "div", plinth="model-version", model="iris-clf", version="1")
    assert "@champion" in text_of(version) and run_id in text_of(version)
    assert f'href="{UI_URL}/runs/{run_id}"' in version
    assert f'href="{UI_URL}/models/iris-clf/versions/1"' in version
    assert list(table(version, "signature-inputs"))[:1] == ["sepal length (cm)"]

    dataset = nb.printing("dataset").only_html
    assert with_data(dataset, "div", plinth="dataset", dataset=nb.printing("dataset").line("dataset")[0])

    lineage = text_of(nb.printing("lineage of").only_html)
    assert f"produced by run {run_id}" in lineage and "iris-train/1" in lineage
    assert "300 requests, 300 labeled" in lineage

    costs = nb.printing("cost groups").only_html
    assert with_data(costs, "div", plinth="costs") and table(costs, "costs")["iris"][1] == "1"


def test_the_models_notebook_monitors_what_it_served(run_notebook: Callable[..., Executed]) -> None:
    nb = run_notebook("models", PLINTH_UI_URL=UI_URL)
    assert nb.printing("served").line("served") == ["300", "requests"]
    drifted = " ".join(nb.printing("labels logged").line("drifted features"))
    drift = nb.printing("labels logged").only_html
    assert drifted == "petal length (cm)"
    assert with_data(drift, "div", plinth="model-drift", model="iris-clf", drifted=drifted)

    accuracy = nb.printing("accuracy").line("accuracy")[0]
    performance = nb.printing("accuracy").only_html
    assert table(performance, "performance")["accuracy"][1] == f"{float(accuracy):#.3g}".rstrip(".")
    assert "300 of 300 predictions labeled" in text_of(performance)

    operations = nb.running("plinth.operations(").only_html
    assert table(operations, "versions")["1"][1] == "300"
    assert "not measured" not in text_of(operations)  # served here: latency was measured

    report = nb.running("plinth.monitoring_report(").only_html
    assert with_data(report, "div", plinth="monitoring-report", drifted=drifted)
    assert "plotly" not in report.lower()


def graphs(html: str) -> int:
    """How many flow graphs (pictures of step-call boxes) `html` draws."""
    return sum(1 for chart in charts(html) if chart.svg.find(".//{*}g[@class='node']") is not None)


@pytest.fixture
def chromium_page(tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    """A page of Debian's Chromium (as the web UI tests drive it) and the errors its console logs."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/test-services.sh (installs Debian's chromium).")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
        yield page, errors
        browser.close()


SHOWN_BOXES = """
(selector) => [...document.querySelectorAll(selector)]
  .filter((el) => !el.closest("details:not([open])"))
  .map((el) => {
    const box = el.getBoundingClientRect();
    const view = el.closest("[data-plinth]");
    return {view: view ? view.dataset.plinth : "", width: box.width, height: box.height,
            loaded: el.tagName !== "IMG" || (el.complete && el.naturalWidth > 0)};
  })
"""
ROWS_SHOWN = """
(table) => [...table.querySelectorAll("tbody tr")]
  .map((tr) => [tr.querySelector("td").innerText.trim(), tr.querySelector("td").getBoundingClientRect().top])
  .sort((a, b) => a[1] - b[1])
  .map(([text]) => text)
"""
"""The first cell's text of each row of a table, top to bottom as the page shows them."""


def open_page(page: Any, path: Path, outputs: list[str]) -> None:
    """Open the notebook `outputs` (HTML) in `page`, one section each, as a notebook stacks them."""
    sections = "\n".join(f'<section class="output">{h}</section>' for h in outputs)
    path.write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><title>{path.stem}</title></head>'
        f'<body style="margin:24px">{sections}</body></html>'
    )
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=str(path.with_suffix(".png")), full_page=True)


def outputs_of(nb: Executed) -> list[str]:
    return [h for cell in nb.cells for h in [*cell.displayed, *cell.html]]


def untrusted(html: str) -> str:
    """What JupyterLab's sanitizer leaves of an output in an untrusted notebook (packages/apputils/
    src/sanitizer.ts): no <style>, no custom property in a style attribute, no id or name, no
    data-* attribute, every input disabled."""
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    html = re.sub(r"--[\w-]+:[^;\"]*;?", "", html)
    html = re.sub(r' (?:id|name|data-[\w-]+)="[^"]*"', "", html)
    return html.replace("<input ", "<input disabled ")


def test_the_models_notebook_renders_in_chromium(
    run_notebook: Callable[..., Executed], chromium_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    nb = run_notebook("models", PLINTH_UI_URL=UI_URL)
    page, errors = chromium_page
    open_page(page, tmp_path / "models.html", outputs_of(nb))

    tables = page.evaluate(SHOWN_BOXES, "div.plinth table")
    pictures = page.evaluate(SHOWN_BOXES, "div.plinth img.chart")
    views = {"model-version", "dataset", "model-drift", "performance", "operations", "monitoring-report"}
    shown = set(page.eval_on_selector_all("[data-plinth]", "(els) => els.map((el) => el.dataset.plinth)"))
    assert views | {"lineage", "costs"} <= shown
    assert views <= {t["view"] for t in tables if t["width"] > 0 and t["height"] > 0}
    drawn = {c["view"] for c in pictures if c["width"] > 0 and c["height"] > 0 and c["loaded"]}
    assert {"dataset", "model-drift", "performance", "operations", "monitoring-report", "costs"} <= drawn
    assert all(t["width"] > 0 and t["height"] > 0 for t in tables)
    assert all(c["width"] > 0 and c["height"] > 0 and c["loaded"] for c in pictures)
    assert (
        page.locator('[data-plinth="model-drift"] tr.drifted')
        .first.inner_text()
        .startswith("petal length (cm)")
    )
    assert errors == [], "the browser console had errors"


def test_the_tracking_and_flows_notebooks_render_sort_and_end_their_live_views_in_chromium(
    run_notebook: Callable[..., Executed], chromium_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    tracking, flows = run_notebook("tracking"), run_notebook("flows")
    grid = tracking.printing("run").printed.split()
    alpha = dict(zip(grid[1::4], map(float, grid[3::4]), strict=True))  # run id -> alpha
    found = tracking.printing("found").line("found")[2:]  # by accuracy, best first
    page, errors = chromium_page
    open_page(page, tmp_path / "tracking-flows.html", [*outputs_of(tracking), *outputs_of(flows)])

    shown = set(page.eval_on_selector_all("[data-plinth]", "(els) => els.map((el) => el.dataset.plinth)"))
    assert {"runs", "run", "metric-history", "dataset", "run-live", "flow-run", "flow-result"} <= shown
    pictures = page.evaluate(SHOWN_BOXES, "div.plinth img.chart")
    drawn = {c["view"] for c in pictures if c["width"] > 0 and c["height"] > 0 and c["loaded"]}
    assert {"metric-history", "dataset", "run-live", "flow-run", "costs"} <= drawn
    assert all(c["width"] > 0 and c["height"] > 0 and c["loaded"] for c in pictures)

    runs = page.locator('[data-plinth="runs"]')
    table = runs.locator("table")

    def click(header: str) -> list[str]:
        runs.locator("th", has_text=header).locator("label >> visible=true").click()
        return list(table.evaluate(ROWS_SHOWN))

    assert table.evaluate(ROWS_SHOWN) == found  # as the search ordered them
    assert click("metrics.accuracy") == found[::-1]  # up: the least accurate run first
    assert click("metrics.accuracy") == found  # down again
    assert click("params.alpha") == sorted(found, key=alpha.__getitem__)
    sorted_by = runs.locator("th", has_text="params.alpha").locator("label >> visible=true")
    assert sorted_by.evaluate('(el) => getComputedStyle(el, "::after").content') == '" \u25b2"'  # up
    assert errors == [], "the browser console had errors"


def test_the_runs_table_reads_in_search_order_where_a_sanitizer_drops_its_styles(
    run_notebook: Callable[..., Executed], chromium_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    nb = run_notebook("tracking")
    cell = nb.printing("found")
    page, errors = chromium_page
    open_page(page, tmp_path / "untrusted.html", [untrusted(cell.only_html)])
    table = page.locator("table")
    headers = [h.strip() for h in table.locator("th").all_inner_texts()]
    assert headers[:5] == ["run", "name", "status", "started", "duration"]  # each header once
    assert "metrics.accuracy" in headers and "params.alpha" in headers
    assert table.evaluate(ROWS_SHOWN) == cell.line("found")[2:]
    table.locator("th", has_text="metrics.accuracy").click()  # nothing to click: nothing moves
    assert table.evaluate(ROWS_SHOWN) == cell.line("found")[2:]
    assert errors == [], "the browser console had errors"
