"""`plinth monitor watch RULES.toml`: evaluate alert rules on a schedule and print what happens."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from plinth.cli.render import line, number, say, when

if TYPE_CHECKING:
    from plinth.monitoring.alerts import AlertEvent

_STYLES = {
    "firing": ("FIRING", "bold red"),
    "resolved": ("RESOLVED", "bold green"),
    "error": ("ERROR", "yellow"),
}


@click.command("watch", short_help="Evaluate alert rules on a schedule; notify webhooks.")
@click.argument("rules", type=click.Path(dir_okay=False))
@click.option(
    "--every", default=None, help="Evaluation period, e.g. 30s, 1m (default: the file's every, or 1m)."
)
@click.option("--once", is_flag=True, help="Evaluate once and exit.")
def watch(rules: str, every: str | None, once: bool) -> None:
    """Evaluate the alert rules in RULES (a TOML file) now and then every period, until Ctrl-C.

    Each incident is sent once to the rule's webhook (an HTTP POST of JSON) and recorded in
    the audit log; a resolved notice follows when the metric recovers. State is kept in the
    store, so a restarted watcher does not send an open incident again.

    \b
    A rule's condition:
      METRIC[(feature=NAME|feature=*)] OP NUMBER[%] [for N windows]
    OP is one of > >= < <=; 1% means 0.01; feature=* checks each feature on its own;
    'for N windows' waits for N breaching evaluations in a row (default 1).

    \b
    Metrics:
      drift, js                       PSI / Jensen-Shannon distance of a feature
      drift_share, prediction_drift   share of drifted features / PSI of the predictions
      accuracy, precision, recall, f1, roc_auc, mae, rmse, r2, coverage   (from labels)
      p50_latency_ms, p95_latency_ms, p99_latency_ms, error_rate, throughput_rps

    \b
    Example RULES file:
      webhook = "https://hooks.example.com/plinth"   # default for every rule
      every = "1m"                                    # evaluation period
      [[rule]]
      name = "iris-drift"
      model = "iris-clf"
      when = "drift(feature=*) > 0.2 for 2 windows"
      window = "1h"                                   # data per evaluation (default 1h)
      [[rule]]
      name = "iris-errors"
      model = "iris-clf"
      when = "error_rate > 1%"
      webhook = "https://user:pw@other.example.com/hook"   # this rule's own; Basic auth
      allow_private = true                            # may reach private addresses

    \b
    Webhooks reach public addresses only: loopback, private (10/8, 172.16/12, 192.168/16,
    fc00::/7) and link-local (169.254/16) targets are refused, directly or through a redirect,
    unless the rule (or the file's top level) sets allow_private = true. Credentials in a URL
    are sent as Basic auth and never printed.

    \b
    Other conditions: accuracy < 0.9, p99_latency_ms > 50,
    drift(feature="petal length (cm)") > 0.2, throughput_rps < 1 for 5 windows
    """
    from plinth.monitoring.alerts import load_rules
    from plinth.monitoring.alerts import watch as run

    ruleset = load_rules(rules)
    period = every or ruleset.every
    say(
        f"Watching {len(ruleset.rules)} rule(s) from {rules}"
        + ("." if once else f" every {period}; Ctrl-C stops.")
    )
    run(rules, every=every, once=once, report=show_events)
    if not once:
        say("Stopped.")


def show_events(events: list[AlertEvent]) -> None:
    """Print one line per incident opened or closed, or rule that failed."""
    for event in events:
        label, style = _STYLES[event.status]
        detail = f"{event.rule} {event.model}/{event.target}: {event.metric} = {number(event.value)}"
        detail += f" ({event.op} {number(event.threshold)})"
        if event.status == "error":
            say(line(f"{when(event.time_ms)} ", (label, style), f" {event.rule}: {event.error}"))
            continue
        notice = _delivery(event)
        say(
            line(f"{when(event.time_ms)} ", (label, style), f" {detail} incident {event.incident_id}{notice}")
        )


def _delivery(event: AlertEvent) -> str:
    if not event.webhook:
        return " (audit log only: no webhook)"
    return "" if event.delivered else f" (webhook {event.error})"
