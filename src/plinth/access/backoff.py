"""Back-off after repeated failed authentications from one client.

After `threshold` failures (default 5) within `window_s` (60 s), the client is refused for
`first_s` (1 s), doubling with each further failure up to `max_s` (60 s); a success resets it.
Clients are told apart by address, so a client behind a shared proxy shares its count: the
proxy's own forwarding header is not trusted, since any caller could set it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from plinth.core.errors import TooManyAttempts

_MAX_CLIENTS = 10_000  # past this many failing clients, those quiet for a window are forgotten


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)
    refused_until: float = 0.0


class Backoff:
    """Counts failed authentications per client and refuses clients that fail too often.

    Args:
        threshold: failures within `window_s` that start the refusals.
        window_s: how far back failures count.
        first_s: the first refusal; each further failure doubles it.
        max_s: the longest refusal.
        clock: seconds on a monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        *,
        threshold: int = 5,
        window_s: float = 60.0,
        first_s: float = 1.0,
        max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.window_s = window_s
        self.first_s = first_s
        self.max_s = max_s
        self._clock = clock
        self._clients: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Pass unless `client` is being refused.

        Raises:
            TooManyAttempts: `client` failed too often lately; it says how long to wait.
        """
        failures = self._clients.get(client)
        if failures is None:
            return
        wait = failures.refused_until - self._clock()
        if wait > 0:
            raise TooManyAttempts(
                f"Too many failed authentications from {client}; wait {math.ceil(wait)} s and try "
                "again with a valid token (set PLINTH_TOKEN or run `plinth login`).",
                retry_after_s=wait,
            )

    def failed(self, client: str) -> None:
        """Count a failed authentication of `client`, refusing it for a while past the threshold."""
        now = self._clock()
        with self._lock:
            failures = self._clients.get(client)
            if failures is None:
                if len(self._clients) >= _MAX_CLIENTS:
                    self._forget_quiet(now)
                failures = self._clients[client] = _Failures()
            times = failures.times
            times.append(now)
            while times and times[0] <= now - self.window_s:
                times.popleft()
            beyond = len(times) - self.threshold
            if beyond >= 0:
                failures.refused_until = now + min(self.max_s, self.first_s * 2 ** min(beyond, 32))

    def succeeded(self, client: str) -> None:
        """Forget `client`'s failures."""
        if client in self._clients:
            with self._lock:
                self._clients.pop(client, None)

    def _forget_quiet(self, now: float) -> None:
        quiet = [
            c
            for c, f in self._clients.items()
            if f.refused_until <= now and (not f.times or f.times[-1] <= now - self.window_s)
        ]
        for client in quiet:
            del self._clients[client]
        if len(self._clients) >= _MAX_CLIENTS:  # a flood from ever-new addresses: start over
            self._clients.clear()
