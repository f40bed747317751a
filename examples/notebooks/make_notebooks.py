"""Write the example notebooks of this folder (without outputs) from the cells below.

    python examples/notebooks/make_notebooks.py            # rewrite the .ipynb files
    python examples/notebooks/make_notebooks.py --check    # exit 1 if one differs from its cells

The notebooks are kept as code here so a change is reviewed as code; the .ipynb files are what a
user opens. Each notebook starts with a fresh PLINTH_HOME in a temporary folder (unless
PLINTH_HOME is already set), uses scikit-learn's bundled datasets, and prints the ids and values
it creates as plain text next to the rich views plinth draws for them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """\
import os
import tempfile

# a fresh plinth home for this notebook; point PLINTH_HOME elsewhere to keep what it makes
os.environ.setdefault("PLINTH_HOME", tempfile.mkdtemp(prefix="plinth-notebook-"))
print("PLINTH_HOME", os.environ["PLINTH_HOME"])"""

IMPORT = """\
import plinth  # in a notebook, importing plinth is enough: its objects display as HTML"""

Cell = tuple[str, str]  # ("md" | "code", source)

TRACKING: list[Cell] = [
    (
        "md",
        "# Tracking experiments with plinth\n\n"
        "Train a small grid of classifiers on scikit-learn's digits, one tracked run each, then look "
        "at what was recorded without leaving the notebook.",
    ),
    ("code", SETUP),
    ("code", IMPORT),
    (
        "code",
        """\
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

digits = load_digits(as_frame=True)
frame = digits.frame
X_train, X_test, y_train, y_test = train_test_split(
    digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
)
X_train.shape, X_test.shape""",
    ),
    (
        "md",
        "## A grid of runs\n\nEach run logs its params, the training data (a versioned, "
        "profiled dataset) and a metric per epoch.",
    ),
    (
        "code",
        """\
run_ids = {}
for alpha in [0.0001, 0.001, 0.01]:
    with plinth.start_run(experiment="digits", name=f"sgd-alpha-{alpha}",
                          params={"alpha": alpha, "loss": "log_loss"}) as run:
        train_data = run.log_dataset(frame, name="digits", role="train")
        model = SGDClassifier(loss="log_loss", alpha=alpha, random_state=0)
        for epoch in range(8):
            model.partial_fit(X_train, y_train, classes=list(range(10)))
            run.log_metric("accuracy", model.score(X_test, y_test), step=epoch)
        run.log_metrics({"train_accuracy": model.score(X_train, y_train)})
    run_ids[alpha] = run.id
    print("run", run.id, "alpha", alpha)""",
    ),
    (
        "md",
        "## The best run\n\n`search_runs` filters and sorts on params and metrics; its result "
        "is a table here, and `as_frame=True` still gives a pandas DataFrame.",
    ),
    (
        "code",
        """\
runs = plinth.search_runs(experiment="digits", where="metrics.accuracy > 0.5",
                          order_by=["-metrics.accuracy"])
print("found", len(runs), "runs:", " ".join(r.id for r in runs))
runs""",
    ),
    (
        "code",
        """\
best = plinth.get_run(runs[0].id)
print("best run", best.id, "alpha", best.params["alpha"], "accuracy", best.metrics["accuracy"])
best""",
    ),
    (
        "code",
        """\
history = plinth.metric_history(best.id, "accuracy")
print("accuracy by epoch", [round(float(v), 3) for v in history.values])
history""",
    ),
    (
        "code",
        """\
plinth.search_runs(experiment="digits", as_frame=True)[["run_id", "params.alpha", "metrics.accuracy"]]""",
    ),
    (
        "md",
        "## The data the runs trained on\n\nLogged once per content: every run above used "
        "the same version, with its profile.",
    ),
    (
        "code",
        """\
dataset = plinth.get_dataset("digits")
print("dataset", f"{dataset.name}/{dataset.version}", "rows", dataset.rows)
dataset""",
    ),
    (
        "code",
        """\
graph = plinth.lineage(f"{dataset.name}/{dataset.version}")
print("lineage of", f"{dataset.name}/{dataset.version}")
graph""",
    ),
    (
        "md",
        "## Watching a run live\n\n`run.live()` charts a run's metrics in the cell while it trains, "
        "sampled every `every` seconds; when the run ends the charts are redrawn from every point "
        "logged, by step, and stay in the notebook.",
    ),
    (
        "code",
        """\
with plinth.start_run(experiment="digits-live", name="sgd-live", params={"alpha": 0.001}) as run:
    run.live(every=0.5)
    model = SGDClassifier(loss="log_loss", alpha=0.001, random_state=0)
    for epoch in range(8):
        model.partial_fit(X_train, y_train, classes=list(range(10)))
        run.log_metric("accuracy", model.score(X_test, y_test), step=epoch)
print("live run", run.id, "accuracy", run.get().metrics["accuracy"])""",
    ),
]

FLOWS: list[Cell] = [
    (
        "md",
        "# A flow in a notebook\n\n"
        "Steps are plain functions; a flow wires them together, runs each call as a tracked run in a "
        "worker process, caches what it can, and shows its graph of step calls when it is done.",
    ),
    ("code", SETUP),
    ("code", IMPORT),
    (
        "md",
        "Steps and the flow are defined right here: their code travels to the worker processes "
        "by value, and `plinth.resume_flow` finds the flow again in this session.",
    ),
    (
        "code",
        """\
from plinth import flow, step


@step
def load(seed: int) -> dict:
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    X, y = load_wine(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=seed)
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


@step(cache=True)
def train(data: dict, C: float) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    model.fit(data["X_train"], data["y_train"])
    accuracy = float(model.score(data["X_test"], data["y_test"]))
    plinth.active_run().log_metric("accuracy", accuracy)
    return {"C": C, "accuracy": accuracy}


@step
def pick_best(scores: list) -> dict:
    return max(scores, key=lambda s: (s["accuracy"], -s["C"]))


@flow(name="wine-grid")
def wine_grid(seed: int = 0) -> dict:
    data = load(seed)
    scores = train.map([data] * 3, C=[0.01, 0.1, 1.0])
    return pick_best(scores)""",
    ),
    (
        "code",
        """\
result = wine_grid.run(seed=0)
print("flow run", result.id, result.status.value, "best", result.result)
result""",
    ),
    (
        "md",
        "While it ran, the cell showed its steps advancing; that view ended as the flow run's graph, "
        "so the result the cell ends with is one line pointing at it. Shown in a later cell, the "
        "result draws its graph in full.",
    ),
    (
        "code",
        """\
print("shown again", result.id)
result""",
    ),
    ("md", "Run it again: the `train` calls come from the cache, and the graph says so."),
    (
        "code",
        """\
again = wine_grid.run(seed=0)
cached = [s.call for s in again.steps if s.status.value == "CACHED"]
print("flow run", again.id, again.status.value, "cached", " ".join(cached))
again""",
    ),
    ("md", "Each step call is a tracked run: the lineage of the winning step shows the calls that fed it."),
    (
        "code",
        """\
best_step = next(s for s in result.steps if s.step == "pick_best")
graph = plinth.lineage(best_step.id)
print("lineage of", best_step.id, best_step.call)
graph""",
    ),
    ("md", "## What it cost\n\nCPU and GPU hours per flow (set `PLINTH_PRICE_*` to see money)."),
    (
        "code",
        """\
costs = plinth.costs(by="flow")
print("cost groups", [row.group for row in costs])
costs""",
    ),
]

MODELS: list[Cell] = [
    (
        "md",
        "# From a model to production monitoring\n\n"
        "Register an iris classifier, serve it, send it requests (some of them drifted), label them, "
        "and read drift, performance, operations and the monitoring report in the notebook.",
    ),
    ("code", SETUP),
    ("code", IMPORT),
    (
        "code",
        """\
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

iris = load_iris(as_frame=True)
features, target = iris.data, iris.target

with plinth.start_run(experiment="iris", params={"max_iter": 500}) as run:
    train_data = run.log_dataset(iris.frame, name="iris-train", role="train")
    clf = LogisticRegression(max_iter=500).fit(features, target)
    run.log_metric("accuracy", clf.score(features, target))
    version = run.log_model(clf, name="iris-clf", input_example=features.head(3))
plinth.set_alias("iris-clf", "champion", version=version.version)
print("registered", f"{version.name}/{version.version}", "from run", run.id)""",
    ),
    (
        "code",
        """\
version = plinth.get_model_version("iris-clf", version.version)
print("model", f"{version.name}/{version.version}", "aliases", list(version.aliases))
version""",
    ),
    (
        "code",
        """\
print("dataset", f"{train_data.name}/{train_data.version}", "rows", train_data.rows)
train_data""",
    ),
    (
        "md",
        "## Serving\n\n`plinth serve iris-clf@champion --port 8000` is the way from a terminal; "
        "here the same app runs in a thread of this kernel on a free port. Every prediction is logged "
        "with its inputs, so drift and performance can be read later.",
    ),
    (
        "code",
        """\
import socket
import threading
import time

import httpx
import uvicorn

from plinth.serving import create_app

with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
server = uvicorn.Server(uvicorn.Config(create_app(["iris-clf@champion"]), host="127.0.0.1",
                                       port=port, log_level="warning"))
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
for _ in range(600):  # up to 30 s for the model to load
    try:
        if client.get("/readyz").status_code == 200:
            break
    except httpx.TransportError:
        pass
    time.sleep(0.05)
print("serving iris-clf@champion on port", port)""",
    ),
    (
        "md",
        "Half the traffic looks like the training data; in the other half the petal length moved by 2.5 cm.",
    ),
    (
        "code",
        """\
calm = features.sample(150, replace=True, random_state=1)
shifted = features.sample(150, replace=True, random_state=2)
shifted["petal length (cm)"] += 2.5
traffic = [calm, shifted]

labels = {}
for batch in traffic:
    for index, row in batch.iterrows():
        answer = client.post("/v1/models/iris-clf/predict", json={"instances": [row.to_dict()]})
        answer.raise_for_status()
        labels[answer.json()["request_id"]] = int(target[index])
client.close()
server.should_exit = True  # a graceful stop writes the last prediction logs
thread.join(timeout=30)
print("served", len(labels), "requests")""",
    ),
    ("md", "## Monitoring\n\nThe ground truth arrives later, by request id."),
    (
        "code",
        """\
print("labels logged", plinth.log_labels("iris-clf", labels))
drift = plinth.drift("iris-clf", since="1h")
print("drifted features", ", ".join(f.name for f in drift.report.features if f.drifted))
drift""",
    ),
    (
        "code",
        """\
quality = plinth.performance("iris-clf", since="1h", every="10m")
print("accuracy", round(quality.overall.metrics["accuracy"], 3))
quality""",
    ),
    (
        "code",
        """\
plinth.operations("iris-clf", since="1h", every="10m")""",
    ),
    (
        "code",
        """\
report = plinth.monitoring_report("iris-clf", since="1h")
report""",
    ),
    (
        "code",
        """\
graph = plinth.lineage(f"{version.name}/{version.version}")
print("lineage of", f"{version.name}/{version.version}")
graph""",
    ),
    (
        "code",
        """\
costs = plinth.costs()
print("cost groups", [row.group for row in costs])
costs""",
    ),
]

NOTEBOOKS: dict[str, list[Cell]] = {"tracking": TRACKING, "flows": FLOWS, "models": MODELS}


def build(cells: list[Cell]) -> nbformat.NotebookNode:
    """A notebook of `cells`, with no outputs, for the Python 3 kernel."""
    notebook = new_notebook(
        cells=[new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells],
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
    )
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"  # stable ids: rewriting an unchanged notebook changes nothing
    return notebook


def text_of(name: str) -> str:
    """The .ipynb text of notebook `name`."""
    return nbformat.writes(build(NOTEBOOKS[name])) + "\n"


def main(argv: list[str]) -> int:
    """Write every notebook, or with --check report the ones that differ from their cells."""
    stale = []
    for name in NOTEBOOKS:
        path = HERE / f"{name}.ipynb"
        wanted = text_of(name)
        if "--check" in argv:
            if not path.exists() or path.read_text() != wanted:
                stale.append(path.name)
        else:
            path.write_text(wanted)
    if stale:
        print("out of date (run examples/notebooks/make_notebooks.py):", ", ".join(stale))
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
