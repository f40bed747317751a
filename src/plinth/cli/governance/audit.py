"""`plinth audit`: check, anchor, adopt and list the keyed, hash-chained audit log."""

from __future__ import annotations

import click

from plinth.cli.options import limit_option, since_option
from plinth.cli.render import console, say, table, when


@click.group("audit", short_help="Verify, anchor and list the keyed, hash-chained audit log.")
def audit() -> None:
    """The audit log: every mutation, who and when, each event chained to the previous by hash and
    keyed with the store's audit key (PLINTH_AUDIT_KEY, or PLINTH_HOME/audit.key)."""


@audit.command("verify", short_help="Check the chain and its keyed hashes, optionally against an anchor.")
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


@audit.command("anchor", short_help="Write the chain's head to a file, to check the log against later.")
@click.option("--output", "-o", required=True, metavar="PATH_OR_URL", help="File or fsspec URL to write.")
def audit_anchor(output: str) -> None:
    """Check the chain, then write its head (sequence, hash, time, keyed hash) as JSON to OUTPUT;
    `plinth audit verify --anchor OUTPUT` later fails if events up to it were cut or rewritten."""
    from plinth.governance.api import anchor_audit

    head = anchor_audit(output)
    say(f"Anchored the audit log at event {head.seq} ({head.when}, sha256 {head.hash[:12]}) in {output}.")


@audit.command("list")
@click.option("--entity", default=None, help="Only events about this id (run, model name, ...).")
@click.option("--actor", default=None, help="Only events whose actor is exactly this.")
@click.option(
    "--user",
    default=None,
    metavar="NAME",
    help="Only events by this user or service account, with any token.",
)
@since_option()
@limit_option(default=50)
def audit_list(
    entity: str | None, actor: str | None, user: str | None, since: str | None, limit: int
) -> None:
    """List audit events, oldest first: the newest --limit of them.

    On a team server each event names the authenticated principal and its token, as
    `alice (token ci)`; --user alice shows them all."""
    from plinth.core.ids import now_ms
    from plinth.core.units import parse_duration
    from plinth.tracking.context import backend

    since_ms = now_ms() - int((parse_duration(since) or 0) * 1000) if since else None
    newest = backend().store.audit_events(
        entity_id=entity, actor=actor, user=user, since_ms=since_ms, newest_first=True, limit=limit or None
    )
    events = newest[::-1]
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
