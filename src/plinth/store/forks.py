"""Objects with locks and threads of their own, made fresh in a forked child.

A forked child has copies of its parent's locks, possibly held by threads it does not have, and
none of the parent's threads: an object that keeps such state registers here, and its
`reset_after_fork()` runs in every child before the child goes on.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class ForkReset(Protocol):
    def reset_after_fork(self) -> None:
        """Fresh locks, no threads and none of the parent's pending work."""


_registered: weakref.WeakSet[ForkReset] = weakref.WeakSet()


def reset_in_children(obj: ForkReset) -> None:
    """Have `obj.reset_after_fork()` run in each child forked while `obj` lives."""
    _registered.add(obj)


def _after_fork() -> None:
    for obj in list(_registered):
        obj.reset_after_fork()


os.register_at_fork(after_in_child=_after_fork)
