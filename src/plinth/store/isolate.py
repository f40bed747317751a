"""Writing a batch so that one item the store refuses does not take the others down."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from plinth.core.errors import StoreError

T = TypeVar("T")


def write_isolating(
    write: Callable[[list[T]], None],
    batch: list[T],
    refuse: Callable[[T, BaseException], None],
    failed: Callable[[BaseException], None] | None = None,
) -> tuple[list[T], BaseException | None]:
    """Write `batch` with `write`, halving the parts that fail until each refused item stands alone.

    An item refused on its own is passed to `refuse` and left out; the others are written. When the
    store itself fails (`StoreError`: locked, unreachable) or the process is interrupted, nothing is
    dropped: writing stops there.

    Args:
        write: writes a list of items in one transaction.
        batch: the items, in order.
        refuse: called with each item the store refused, and why.
        failed: called with every failed attempt's exception (for counters).

    Returns:
        The items not yet written, in order, and the error that stopped the writing; `([], None)`
        when every item was written or refused.
    """
    pending = [batch]
    while pending:
        chunk = pending.pop()
        try:
            write(chunk)
        except (StoreError, KeyboardInterrupt, SystemExit) as exc:
            if failed is not None and isinstance(exc, StoreError):
                failed(exc)
            return chunk + [item for part in reversed(pending) for item in part], exc
        except BaseException as exc:  # some item is one the store cannot hold: find it, write the others
            if failed is not None:
                failed(exc)
            if len(chunk) == 1:
                refuse(chunk[0], exc)
            else:
                half = len(chunk) // 2
                pending += [chunk[half:], chunk[:half]]
    return [], None
