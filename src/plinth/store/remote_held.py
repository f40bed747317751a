"""Runs a `RemoteStore` holds back: a short run's creation goes with its end, one request.

A run started and ended within moments (a sweep's trials, a test) would cost two requests and
two of the server's transactions, its creation and its end. Once this client has created a run
in an experiment (so the experiment exists, and the client knows its id and the principal the
server records as a run's user), it makes a later run of that experiment itself (id, name,
start time) and holds its creation back, as `SqlStore` does (`plinth.store.deferral`):

- the run's end sends it as a run created ended (`NewRun.end_status`): one request for both;
- any other request of this client sends it first, so the server never meets a run it does not
  know and every read sees it (`ServerClient.before_request`);
- a thread sends it alone `DEFER_S` after it was held back, and `settle()` and `close()` send it.

A creation the server refuses (a revoked token, a deleted experiment) is dropped with a warning,
and the request that carried it goes on; one the server could not be reached for stays held back
and the request fails as it would have. A process killed within `DEFER_S` of starting a run
loses that run's record, as with `SqlStore`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

from plinth.core.entities import Run, RunStatus
from plinth.core.errors import PlinthError, StoreError
from plinth.core.ids import new_id, now_ms
from plinth.store.base import NewRun, default_run_name
from plinth.store.deferral import Deferrals, Deferred

log = logging.getLogger("plinth.store")

End = tuple[str, RunStatus, str | None, int]


class HeldRuns:
    """The runs one `RemoteStore` holds back, and what it knows to make them itself.

    Args:
        create: sends runs to create (`create_runs` on the server); what it returns is not used.
    """

    def __init__(self, create: Callable[[list[NewRun]], object]) -> None:
        self._create = create
        self._deferrals = Deferrals()
        self._experiments: dict[str, tuple[str, str]] = {}
        """Experiments this client created runs in, as it named them: (id, name)."""
        self._user: str | None = None

    def learn(self, specs: Sequence[NewRun], runs: Sequence[Run]) -> None:
        """Remember the experiments these runs were created in, and the user the server gave them."""
        for spec, run in zip(specs, runs, strict=True):
            self._experiments[spec.experiment] = (run.experiment_id, run.experiment_name)
            self._user = run.user

    def hold(self, spec: NewRun, settle: Callable[[], None]) -> Run | None:
        """The run `spec` makes, its creation held back; None when it must be created now (its
        experiment not yet known here, or an id, start or end given)."""
        exp = self._experiments.get(spec.experiment)
        if exp is None or self._user is None or spec.id or spec.start_ms is not None or spec.end_status:
            return None
        run_id = new_id()
        started = now_ms()
        name = spec.name or default_run_name(run_id)
        held = dataclasses.replace(spec, id=run_id, start_ms=started, name=name)
        self._deferrals.hold(Deferred(f"create run {run_id}", lambda batch: batch.append(held)), settle)
        return Run(
            id=run_id,
            experiment_id=exp[0],
            experiment_name=exp[1],
            name=name,
            status=RunStatus.RUNNING,
            user=self._user,
            start_ms=started,
            end_ms=None,
            heartbeat_ms=started,
            heartbeat_s=spec.heartbeat_s,
            params=dict(spec.params),
            tags=dict(spec.tags),
            environment=dict(spec.environment) if spec.environment is not None else None,
        )

    def settle(self) -> None:
        """Send the creations held back, if any (after another thread that is sending them)."""
        self.send_with([])

    def send_with(self, ends: Sequence[End]) -> list[End]:
        """Send the creations held back, those of runs in `ends` as runs created ended; the ends
        of runs not held back, which the caller sends.

        Raises:
            PlinthError: the server refused the creation of a run in `ends` (its end cannot be
                made), or could not be reached (every creation stays held back).
        """
        if not self._deferrals.waiting():  # nothing held back, nor being sent: no lock to take
            return list(ends)
        with self._deferrals.turn:  # after another thread's sending: its runs are on the server
            items = self._deferrals.take()
            if not items:
                return list(ends)
            specs: list[NewRun] = []
            for item in items:
                item.write(specs)
            by_id = {end[0]: end for end in ends}
            specs = [_ended(spec, by_id[spec.id]) if spec.id in by_id else spec for spec in specs]
            try:
                self._create(specs)
            except StoreError:  # unreachable or busy: tried again by the next request or the thread
                self._deferrals.put_back(items)
                raise
            except PlinthError as exc:
                for item in items:
                    self._deferrals.drop(item)
                log.warning("Could not %s; it is given up: %s", _what(specs), exc)
                if any(spec.end_status is not None for spec in specs):
                    raise
            else:
                self._deferrals.done(items)
            held = {spec.id for spec in specs}
            return [end for end in ends if end[0] not in held]


def _ended(spec: NewRun, end: End) -> NewRun:
    _run_id, status, error, end_ms = end
    return dataclasses.replace(spec, end_status=status, end_error=error, end_ms=end_ms)


def _what(specs: Sequence[NewRun]) -> str:
    if len(specs) == 1:
        return f"create run {specs[0].id}"
    return f"create {len(specs)} runs ({', '.join(str(spec.id) for spec in specs[:3])}...)"
