"""`plinth scheduler`: start a file's flows at the times their cron schedules name."""

from __future__ import annotations

import time

import click

from plinth.cli.render import say, when


@click.command("scheduler", short_help="Run the flows of a file on their cron schedules.")
@click.argument("target")
@click.option(
    "--catchup",
    type=click.Choice(["skip", "once"]),
    default="skip",
    show_default=True,
    help="Times missed while no scheduler ran: skip them, or run once for all of them.",
)
@click.option("--poll", default=1.0, show_default=True, metavar="SECONDS", help="Seconds between checks.")
def scheduler(target: str, catchup: str, poll: float) -> None:
    """Run the @flow(schedule=...) flows of TARGET (FILE.py or a module) until Ctrl-C.

    Each scheduled time starts at most once, across restarts and across several schedulers.
    """
    from plinth.flows.flow import Flow
    from plinth.flows.schedule import Scheduler
    from plinth.flows.source import load_module
    from plinth.tracking.context import backend

    module = load_module(target) if target.endswith(".py") else __import__(target, fromlist=["_"])
    scheduled = [v for v in vars(module).values() if isinstance(v, Flow) and v.schedule]
    runner = Scheduler(scheduled, backend(), catchup=catchup)
    say(f"Scheduling {', '.join(f'{f.name} ({f.schedule})' for f in runner.flows)}; Ctrl-C to stop.")
    while True:
        for trigger in runner.tick():
            status = trigger.result.status.value if trigger.result else trigger.error or ""
            say(f"{when(trigger.scheduled_ms)} {trigger.flow}: {trigger.status} {status}")
        time.sleep(poll)
