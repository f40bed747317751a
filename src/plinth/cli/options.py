"""Options that several commands share, declared once so each reads the same everywhere.

Each is a click decorator (or a function returning one, where commands differ in the default):

    @runs.command("list")
    @options.limit_option(default=20)
    @options.json_option
    def runs_list(limit: int, as_json: bool) -> None: ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of tables (for scripts and jq)."
)
"""`--json`, passed as `as_json`: the command prints every field as JSON instead of a table."""

dry_run_option = click.option("--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
"""`--dry-run` of the commands that delete: report, change nothing."""


def limit_option(default: int) -> Callable[[F], F]:
    """`--limit/-n N`: show at most N rows (0 for all), passed as `limit`."""
    return click.option(
        "--limit",
        "-n",
        default=default,
        show_default=True,
        type=click.IntRange(min=0),
        metavar="N",
        help="Show at most N; 0 for all.",
    )


def since_option(default: str | None = None) -> Callable[[F], F]:
    """`--since DURATION`: only what happened this long ago or later, passed as `since`."""
    return click.option(
        "--since",
        default=default,
        show_default=True if default else "everything",
        metavar="DURATION",
        help="How far back to look, e.g. 12h, 7d.",
    )


every_option = click.option(
    "--every", default=None, metavar="DURATION", help="Also per window of this length, e.g. 1h, 10m."
)
"""`--every DURATION` of the monitoring tables: a row per window besides the overall one."""

model_version_option = click.option(
    "--version",
    type=int,
    default=None,
    metavar="N",
    show_default="all",
    help="Only this model version.",
)
"""`--version N` of the monitoring commands, passed as `version`."""


# Runs, filtered and sorted as by plinth.search_runs ---------------------------------------------
experiment_option = click.option(
    "--experiment", "-e", multiple=True, metavar="NAME", help="Only runs of this experiment (repeatable)."
)
"""`--experiment/-e NAME`, repeatable, passed as `experiment` (a tuple)."""

where_option = click.option(
    "--where",
    "-w",
    default=None,
    metavar="FILTER",
    help=(
        "Filter over metrics., params., tags. and attributes (status, name, user, start_time, "
        'end_time, id), e.g. "metrics.acc > 0.9 and params.lr = 0.1" or "status = \'FAILED\'". '
        "Operators: = != < <= > >= like ilike in, is null; combine with and, or, not, ( )."
    ),
)
"""`--where/-w FILTER` in plinth's filter language, passed as `where`."""

order_by_option = click.option(
    "--order-by",
    "-o",
    multiple=True,
    metavar="KEY",
    help=(
        "Sort key, e.g. -metrics.acc (descending), start_time, params.lr; repeat for ties. "
        "Default: newest first."
    ),
)
"""`--order-by/-o KEY`, repeatable, passed as `order_by` (a tuple)."""


# Where work runs, and with which model --------------------------------------------------------
def executor_option(default: str | None, shown: str | None = None) -> Callable[[F], F]:
    """`--executor local|ray|slurm`, passed as `executor`.

    Args:
        default: The executor when none is given (None: the caller decides).
        shown: How `--help` names that default, when it is not `default` itself.
    """
    return click.option(
        "--executor",
        type=click.Choice(["local", "ray", "slurm"]),
        default=default,
        show_default=shown or default is not None,
        help=(
            "Where the work runs: local worker processes, tasks on a Ray cluster, or sbatch jobs "
            "on a SLURM cluster (partition, account, ... from PLINTH_SLURM_*)."
        ),
    )


ray_address_option = click.option(
    "--ray-address",
    default=None,
    metavar="ADDRESS",
    help=(
        "The Ray cluster: auto, HOST:PORT or ray://HOST:10001 "
        "(default: RAY_ADDRESS, else one on this machine)."
    ),
)
"""`--ray-address ADDRESS`, passed as `ray_address`."""

proba_option = click.option(
    "--proba", is_flag=True, help="Predict class probabilities instead of labels (where the model has them)."
)
"""`--proba`: class probabilities instead of labels."""
