"""`plinth demo`: a small real job on the embedded default, end to end."""

from __future__ import annotations

import click

from plinth.cli.render import say
from plinth.demo import EXPERIMENT, run_demo


@click.command("demo", short_help="Run a small real tracked job (digits, random forests).")
@click.option("--experiment", default=EXPERIMENT, show_default=True, help="Experiment to log the runs into.")
def demo(experiment: str) -> None:
    """Train random forests on scikit-learn's handwritten digits over a small grid, tracked end to end.

    Runs as a flow (load -> 4 training steps in parallel worker processes -> pick best ->
    register). Each training step is a tracked run that logs the train and test datasets (with
    profiles), params, a per-tree learning curve, accuracy and F1 and a confusion-matrix
    artifact; the best model becomes digits-classifier@champion, which is loaded back to predict.
    Needs scikit-learn (pip install 'plinth[demo]').
    """
    run_demo(experiment)
    say(
        "See the runs, the model, the flow, the deployment's monitoring and the lineage in a browser: "
        "plinth ui (then open http://127.0.0.1:5050/)."
    )
