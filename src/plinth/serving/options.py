"""Tunables of the online server, as one value object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plinth.core.errors import InvalidInput

MAX_AUTH_CACHE_S = 5.0
"""The longest a token's check is reused: revoking a token takes effect within this time."""


@dataclass(frozen=True)
class ServeOptions:
    """How `plinth serve` batches, watches aliases, splits traffic and limits requests.

    Args:
        max_batch: most rows predicted together by adaptive batching.
        max_wait_ms: longest a request waits for others to join its batch; 0 batches what is
            already waiting on the event loop and never delays a lone request.
        batching: gather concurrent requests into one predict call.
        alias_poll_s: how often served aliases are checked for a move.
        max_body_bytes: larger request bodies are refused (413).
        max_rows: more rows in one request are refused (413).
        allow_nan: accept NaN and infinity in numeric inputs.
        log_queue: prediction logs waiting to be written; past it they are dropped and counted.
        canary: (reference, share 0..1) of a challenger that answers that share of requests.
        shadow: a reference that gets a copy of every request; its answers are only logged.
        per_model: batching overrides by model name, e.g. {"big-model": {"batching": False}}.
        auth: require a token (`Authorization: Bearer …`) whose role in the model's workspace
            allows predict (for predict and labels) or read (for /metrics); /healthz and
            /readyz stay open.
        auth_cache_s: how long a token's check is reused; a revoked token is refused at most
            this long after (0 < s <= 5).
        bundle: a folder a model version was baked into (`plinth.registry.bundle`): models are
            read from it, not from a store; a store is opened only when PLINTH_STORE names
            one, for prediction logs, labels, audit and tokens. The bundle never moves, so no
            alias is watched, and it holds one version, so it takes no canary or shadow.
    """

    max_batch: int = 64
    max_wait_ms: float = 0.0
    batching: bool = True
    alias_poll_s: float = 5.0
    max_body_bytes: int = 10 * 2**20
    max_rows: int = 10_000
    allow_nan: bool = False
    log_queue: int = 100_000
    canary: tuple[str, float] | None = None
    shadow: str | None = None
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    auth: bool = False
    auth_cache_s: float = 5.0
    bundle: str | None = None

    def batch_policy(self, model: str) -> tuple[bool, int, float]:
        """(batching, max_batch, max_wait_ms) for one model: its override, else the server's."""
        own = self.per_model.get(model, {})
        return (
            bool(own.get("batching", self.batching)),
            int(own.get("max_batch", self.max_batch)),
            float(own.get("max_wait_ms", self.max_wait_ms)),
        )

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_rows < 1 or self.log_queue < 1:
            raise InvalidInput("max_batch, max_rows and log_queue must be at least 1.")
        if self.max_wait_ms < 0 or self.alias_poll_s <= 0:
            raise InvalidInput("max_wait_ms must be >= 0 and alias_poll_s > 0.")
        if self.canary is not None and not 0 < self.canary[1] < 1:
            raise InvalidInput(f"A canary share must be between 0% and 100%, got {self.canary[1]:.0%}.")
        if not 0 < self.auth_cache_s <= MAX_AUTH_CACHE_S:
            raise InvalidInput(
                f"auth_cache_s must be more than 0 and at most {MAX_AUTH_CACHE_S:g} s (how late a "
                f"revoked token may still pass), got {self.auth_cache_s:g}."
            )
        if self.bundle is not None and (self.canary is not None or self.shadow is not None):
            raise InvalidInput(
                "A bundle holds one model version, so it has no challenger for a canary or shadow; "
                "serve those from a store (without a bundle)."
            )


def parse_canary(text: str) -> tuple[str, float]:
    """'iris-clf@challenger=10%' (or '=0.1') as (reference, share)."""
    ref, sep, share = text.rpartition("=")
    if not sep or not ref:
        raise InvalidInput(f"--canary {text!r}: use NAME@ALIAS=PERCENT, e.g. iris-clf@challenger=10%.")
    try:
        value = float(share.rstrip("%")) / (100 if share.endswith("%") else 1)
    except ValueError as exc:
        raise InvalidInput(f"--canary {text!r}: {share!r} is not a share; use e.g. 10%.") from exc
    if not 0 < value < 1:
        raise InvalidInput(f"--canary {text!r}: the share must be between 0% and 100%.")
    return ref, value


def parse_batch(text: str) -> tuple[str, dict[str, Any]]:
    """'NAME=off', 'NAME=64' or 'NAME=64/5' (rows / wait ms) as (name, override)."""
    name, sep, rule = text.partition("=")
    if not sep or not name:
        raise InvalidInput(
            f"--batch {text!r}: use NAME=off, NAME=ROWS or NAME=ROWS/WAIT_MS, e.g. iris-clf=64/2."
        )
    if rule == "off":
        return name, {"batching": False}
    rows, _, wait = rule.partition("/")
    try:
        override: dict[str, Any] = {"batching": True, "max_batch": int(rows)}
        if wait:
            override["max_wait_ms"] = float(wait)
    except ValueError as exc:
        raise InvalidInput(f"--batch {text!r}: ROWS must be a whole number and WAIT_MS a number.") from exc
    if override["max_batch"] < 1 or override.get("max_wait_ms", 0) < 0:
        raise InvalidInput(f"--batch {text!r}: ROWS must be at least 1 and WAIT_MS at least 0.")
    return name, override
