"""Views of governance: the audit log and its chain's check, erasure receipts, and costs.

The audit log is read newest first, a page at a time, filtered by user (with any of their
tokens, as `plinth audit list --user` does), action, entity and time, all in the store: a page
costs an index walk, never the whole log. Checking the chain reads every event, so it is a view
of its own: the log's page shows at once, its verdict when ready.
Erasure and retention receipts are the `after` of their audit events, which the chain vouches for.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Query

from plinth.core.access import Right
from plinth.core.audit import AuditCheck
from plinth.core.entities import AuditEvent
from plinth.core.errors import InvalidInput, WrongAuditKey
from plinth.monitoring.costs import GROUPS, Prices, store_costs
from plinth.server.config import ServerConfig
from plinth.server.context import RequestContext
from plinth.server.views.common import AUDIT, READ, needs, view_router

AUDIT_PAGE_SIZES = (25, 50, 100, 200)
RECEIPT_ACTIONS = ("governance.erasure", "governance.retention")
RECEIPTS_SHOWN = 500
"""The most receipts the erasures page lists; the audit log, filtered by action, pages through all."""
SINCE_CHOICES = ("24h", "7d", "30d", "90d", "365d", "all")


def router(config: ServerConfig) -> APIRouter:
    """`GET /ui/audit`, `GET /ui/audit/verify`, `GET /ui/erasures` and `GET /ui/costs`."""
    router = view_router()
    prices = Prices.from_settings(config.settings)

    @router.get("/audit", openapi_extra=needs(Right.AUDIT))
    def audit(
        user: str = "",
        action: str = "",
        entity: str = "",
        since_ms: int | None = Query(None, ge=0),
        until_ms: int | None = Query(None, ge=0),
        page: int = Query(1, ge=1, le=1_000_000),
        page_size: int = Query(50),
        ctx: RequestContext = AUDIT,
    ) -> dict[str, Any]:
        """One page of the audit log, newest first, how many events match, and every action the log
        holds (to filter by); paged and filtered in the store.

        Raises (answered by the app's error table): InvalidInput for a page size not offered
        or a time range that ends before it starts.
        """
        if page_size not in AUDIT_PAGE_SIZES:
            sizes = ", ".join(map(str, AUDIT_PAGE_SIZES))
            raise InvalidInput(f"page_size must be one of {sizes}, got {page_size}.")
        if since_ms is not None and until_ms is not None and until_ms < since_ms:
            raise InvalidInput("The time range ends before it starts: pick an 'until' after 'since'.")
        filters: dict[str, Any] = {
            "entity_id": entity.strip() or None,
            "user": user.strip() or None,
            "actions": [action] if action else None,
            "since_ms": since_ms,
            "until_ms": until_ms,
        }
        events = ctx.store.audit_events(
            **filters, newest_first=True, offset=(page - 1) * page_size, limit=page_size
        )
        return {
            "total": ctx.store.count_audit_events(**filters),
            "page": page,
            "page_size": page_size,
            "actions": ctx.store.audit_actions(),
            "events": [event_row(e) for e in events],
        }

    @router.get("/audit/verify", openapi_extra=needs(Right.AUDIT))
    def verify(ctx: RequestContext = AUDIT) -> dict[str, Any]:
        """Whether the chain is intact (with the store's key), in words, or where it breaks."""
        try:
            check = ctx.store.verify_audit()
        except WrongAuditKey as exc:
            return {"ok": False, "events": None, "first_bad_seq": None, "problem": "key", "text": str(exc)}
        return {
            "ok": check.ok,
            "events": check.events,
            "first_bad_seq": check.first_bad_seq,
            "problem": check.problem,
            "keyed": check.keyed,
            "text": chain_text(check),
        }

    @router.get("/erasures", openapi_extra=needs(Right.AUDIT))
    def erasures(ctx: RequestContext = AUDIT) -> dict[str, Any]:
        """The newest `RECEIPTS_SHOWN` erasure and retention receipts, newest first, with who asked
        and when, and how many there are in all."""
        receipts = ctx.store.audit_events(actions=RECEIPT_ACTIONS, newest_first=True, limit=RECEIPTS_SHOWN)
        total = len(receipts)
        if total == RECEIPTS_SHOWN:  # only then may there be more
            total = ctx.store.count_audit_events(actions=RECEIPT_ACTIONS)
        return {"receipts": [receipt_row(e) for e in receipts], "total": total, "shown": RECEIPTS_SHOWN}

    @router.get("/costs", openapi_extra=needs(Right.READ))
    def costs(
        by: Literal["experiment", "flow", "user"] = "experiment",
        since: str = Query("30d"),
        ctx: RequestContext = READ,
    ) -> dict[str, Any]:
        """Resource-hours and cost of the runs started in the last `since`, per group, costliest first.

        Raises (answered by the app's error table): InvalidInput for a `since` not offered.
        """
        if since not in SINCE_CHOICES:
            raise InvalidInput(f"since must be one of {', '.join(SINCE_CHOICES)}, got {since!r:.40}.")
        rows = store_costs(ctx.store, by, None if since == "all" else since, prices)
        return {
            "by": by,
            "since": since,
            "groups": list(GROUPS),
            "prices": {
                "cpu_hour": prices.cpu_hour,
                "gpu_hour": prices.gpu_hour,
                "memory_gb_hour": prices.memory_gb_hour,
            },
            "rows": [
                {
                    "group": r.group,
                    "runs": r.runs,
                    "wall_hours": r.wall_hours,
                    "cpu_hours": r.cpu_hours,
                    "gpu_hours": r.gpu_hours,
                    "memory_gib_hours": r.memory_gib_hours,
                    "cost": r.cost,
                    "cpu_utilization": r.cpu_utilization,
                    "gpu_utilization": r.gpu_utilization,
                }
                for r in rows
            ],
        }

    return router


def event_row(event: AuditEvent) -> dict[str, Any]:
    """An audit event as a row of the log's table (its hashes left out: the check speaks for them)."""
    return {
        "seq": event.seq,
        "time_ms": event.time_ms,
        "actor": event.actor,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "before": event.before,
        "after": event.after,
    }


def receipt_row(event: AuditEvent) -> dict[str, Any]:
    """An erasure or retention receipt as its audit event recorded it."""
    try:
        receipt: dict[str, Any] = json.loads(event.after or "{}")
    except json.JSONDecodeError:  # the chain check names an edited event; show what is there
        receipt = {}
    subject = event.entity_id if event.entity_type == "subject" else None
    return {
        "seq": event.seq,
        "time_ms": event.time_ms,
        "actor": event.actor,
        "action": event.action.removeprefix("governance."),
        "subject": subject,
        "before_ms": receipt.get("before_ms"),
        "prediction_logs": receipt.get("prediction_logs"),
        "labels": receipt.get("labels"),
        "digest": receipt.get("digest"),
        "residue": receipt.get("residue") or "",
    }


def chain_text(check: AuditCheck) -> str:
    """The check's verdict in one sentence, as `plinth audit verify` says it."""
    if check.ok:
        keyed = " and keyed hashes" if check.keyed else " (not keyed)"
        return f"Chain intact: {check.events} events verified, hash chain{keyed}."
    if check.problem == "not keyed":
        return f"Not vouched for: {check.reason}. Run `plinth audit adopt` once if you trust these events."
    return (
        f"Chain broken at event {check.first_bad_seq} ({check.problem}): {check.reason}. "
        "Compare with a backup or an anchor (`plinth audit verify --anchor PATH_OR_URL`)."
    )
