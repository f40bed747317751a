"""`plinth costs`: resource-hours and cost of runs, per experiment, flow or user."""

from __future__ import annotations

from dataclasses import asdict

import click

from plinth.cli import render
from plinth.cli.options import json_option, since_option
from plinth.cli.render import console, number, say, table


@click.command("costs", short_help="Resource-hours and cost of runs, per experiment, flow or user.")
@click.option(
    "--by",
    type=click.Choice(["experiment", "flow", "user"]),
    default="experiment",
    show_default=True,
    help="Group runs by experiment name, flow name (flow steps only) or user.",
)
@since_option(default="30d")
@json_option
def costs(by: str, since: str, as_json: bool) -> None:
    """Show CPU-, GPU- and memory-hours, cost and utilization of runs, costliest group first.

    Counts the runs started in the last --since (30 days by default; --since all counts every run).

    Runs are billed for what they were allocated: CPUs and GPUs x wall hours (a flow step's
    cpu= and gpu=; the usable cores and visible GPUs of a plain process), memory by its limit
    or its use. Prices come from PLINTH_PRICE_CPU_HOUR, PLINTH_PRICE_GPU_HOUR and
    PLINTH_PRICE_MEMORY_GB_HOUR (per CPU-, GPU- and GiB-hour, any currency; 0 when unset).
    Utilization is the share of the allocation that sampled runs used (their system/* metrics).
    """
    from plinth.monitoring.costs import Prices
    from plinth.monitoring.costs import costs as compute_costs
    from plinth.tracking.context import backend

    window = None if since.strip().lower() == "all" else since
    rows = compute_costs(by, window)  # type: ignore[arg-type]
    if as_json:
        render.emit_json([asdict(row) for row in rows])
        return
    if not rows:
        say(f"No runs {'at all' if window is None else f'in the last {since}'} to count for --by {by}.")
        return
    prices = Prices.from_settings(backend().settings)
    cells = [
        (
            row.group,
            row.runs,
            number(row.wall_hours),
            number(row.cpu_hours),
            number(row.gpu_hours),
            number(row.memory_gib_hours),
            _percent(row.cpu_utilization),
            _percent(row.gpu_utilization),
            f"{row.cost:,.2f}" if row.cost >= 1 else number(row.cost),
        )
        for row in rows
    ]
    caption = (
        f"Prices per hour: CPU {prices.cpu_hour:g}, GPU {prices.gpu_hour:g}, "
        f"memory {prices.memory_gb_hour:g}/GiB (PLINTH_PRICE_*)."
    )
    columns = [by, "runs", "wall h", "CPU h", "GPU h", "mem GiB·h", "CPU util", "GPU util", "cost"]
    console.print(table(f"Costs by {by}", columns, cells, no_wrap=(by,), caption=caption))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"
