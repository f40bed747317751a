"""`plinth audit`, `plinth lineage`, `plinth erase`, `plinth retention`."""

from __future__ import annotations

import json

import click

from plinth.cli import render
from plinth.cli.render import console, say, table, when


@click.group("audit", short_help="Check, anchor, adopt and list the keyed, hash-chained audit log.")
def audit() -> None:
    """The audit log: every mutation, who and when, each event chained to the previous by hash and
    keyed with the store's audit key (PLINTH_AUDIT_KEY, or PLINTH_HOME/audit.key)."""


@audit.command("verify")
@click.option(
    "--anchor", default=None, metavar="PATH_OR_URL", help="Also check against an anchor written earlier."
)
def audit_verify(anchor: str | None) -> None:
    """Check the chain and its keyed hashes; exit non-zero naming the first bad event, or the events
    not keyed yet (see `plinth audit adopt`)."""
    from plinth.governance.api import verify_audit

    check = verify_audit(anchor)
    check.raise_if_broken()
    keyed = " and keyed hashes" if check.keyed else " (not keyed)"
    against = f", up to the anchor at {anchor}" if anchor else ""
    say(f"The audit log is intact: {check.events} events verified, hash chain{keyed}{against}.")


@audit.command("adopt", short_help="Key the old events of a store upgraded from an earlier plinth, once.")
def audit_adopt() -> None:
    """Key the events an earlier plinth wrote before this store was keyed, as they stand; once.

    Run it only on a store upgraded from an earlier plinth whose log you trust: a keyed log whose
    keyed hashes were stripped looks the same. Recorded in the audit log itself."""
    from plinth.governance.api import adopt_audit

    adoption = adopt_audit()
    if adoption.keyed:
        events = "event 1" if adoption.keyed == 1 else f"events 1 to {adoption.keyed}"
        say(f"Keyed {events} of the audit log as they stand (recorded as event {adoption.event_seq}).")
    adoption.raise_if_broken()
    if not adoption.keyed:
        say("Nothing to adopt: every event of the audit log is keyed.")


@audit.command("anchor")
@click.option("--output", "-o", required=True, metavar="PATH_OR_URL", help="File or fsspec URL to write.")
def audit_anchor(output: str) -> None:
    """Check the chain, then write its head (sequence, hash, time, keyed hash) as JSON to OUTPUT;
    `plinth audit verify --anchor OUTPUT` later fails if events up to it were cut or rewritten."""
    from plinth.governance.api import anchor_audit

    head = anchor_audit(output)
    say(f"Anchored the audit log at event {head.seq} ({head.when}, sha256 {head.hash[:12]}) in {output}.")


@audit.command("list")
@click.option("--entity", default=None, help="Only events about this id (run, model name, ...).")
@click.option("--actor", default=None, help="Only events by this user.")
@click.option("--since", default=None, help="Only events newer than this, e.g. 7d, 12h.")
@click.option("--limit", "-n", default=50, show_default=True, help="Show at most this many (the newest).")
def audit_list(entity: str | None, actor: str | None, since: str | None, limit: int) -> None:
    """List audit events, oldest first."""
    from plinth.core.ids import now_ms
    from plinth.core.units import parse_duration
    from plinth.tracking.context import backend

    since_ms = now_ms() - int((parse_duration(since) or 0) * 1000) if since else None
    events = backend().store.audit_events(entity_id=entity, actor=actor, since_ms=since_ms)[-limit:]
    rows = [
        (
            e.seq,
            when(e.time_ms),
            e.actor,
            e.action,
            f"{e.entity_type} {e.entity_id}",
            e.before or "",
            (e.after or "")[:60],
        )
        for e in events
    ]
    console.print(
        table("Audit events", ["seq", "time", "actor", "action", "entity", "before", "after"], rows)
    )


@click.command("lineage", short_help="Where something came from and what came of it.")
@click.argument("ref")
@click.option(
    "--direction",
    type=click.Choice(["up", "down", "both"]),
    default="both",
    show_default=True,
    help="up: towards the data; down: towards predictions.",
)
@render.json_option("with every node and edge of the graph")
def lineage(ref: str, direction: str, as_json: bool) -> None:
    """Show the lineage of REF: a run id, flow run id, NAME/VERSION, NAME@ALIAS or DATASET/VERSION."""
    from plinth.governance.api import lineage as graph_of

    graph = graph_of(ref, direction)
    if as_json:
        render.emit_json(graph.to_dict())
        return
    for way in ("up", "down") if direction == "both" else (direction,):
        say(f"{'Upstream' if way == 'up' else 'Downstream'}:")
        for line in graph.tree(way):
            say(f"  {line}")


@click.command("erase", short_help="Remove every prediction log and label of a subject, with a receipt.")
@click.option("--subject", required=True, help="The subject id whose data must go.")
@click.option("--dry-run", is_flag=True, help="Count what would go; remove nothing.")
def erase(subject: str, dry_run: bool) -> None:
    """Erase a subject's prediction logs and labels everywhere, verify none remain, print the receipt."""
    from plinth.governance.api import erase_subject

    receipt = erase_subject(subject, dry_run=dry_run)
    console.file.write(json.dumps(json.loads(receipt.to_json()), indent=2) + "\n")


@click.group("retention", short_help="Remove logs older than a retention period.")
def retention() -> None:
    """Retention of prediction logs."""


@retention.command("apply")
@click.option("--predictions", required=True, help="Keep prediction logs this long, e.g. 90d.")
@click.option("--dry-run", is_flag=True, help="Count what would go; remove nothing.")
def retention_apply(predictions: str, dry_run: bool) -> None:
    """Remove prediction logs older than --predictions (audited, with a receipt)."""
    from plinth.governance.api import apply_retention

    receipt = apply_retention(predictions, dry_run=dry_run)
    verb = "Would remove" if dry_run else "Removed"
    say(
        f"{verb} {receipt.prediction_logs} prediction logs and {receipt.labels} labels "
        f"older than {predictions} (sha256 {receipt.digest[:12]})."
    )
    if receipt.residue:
        say(receipt.residue)
