"""What a metadata-store failure means for the user, worded alike whichever driver reported it."""

from __future__ import annotations

from plinth.core.errors import StoreBusy, StoreError

BUSY_BUDGET_S = 120.0
"""How long a store call waits for a database that other processes hold locked."""

_TRANSIENT = ("database is locked", "database is busy", "deadlock", "could not serialize")


def is_transient(detail: str) -> bool:
    """True when the driver's message says the database was locked or a transaction clashed."""
    text = detail.lower()
    return any(s in text for s in _TRANSIENT)


def store_failure(detail: str, what: str) -> StoreError:
    """StoreBusy for a database that stayed locked, StoreError naming `what` failed otherwise."""
    if is_transient(detail):
        return StoreBusy(
            f"The metadata store stayed locked for {BUSY_BUDGET_S:.0f}s while trying to {what}; "
            "another process holds a long write. Retry, or use PostgreSQL for many writers."
        )
    detail = detail.strip().replace("\n", " ")
    return StoreError(
        f"The metadata store failed to {what}: {detail}. "
        "Check that the database is running and that PLINTH_STORE names it."
    )
