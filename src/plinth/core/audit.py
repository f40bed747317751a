"""What the audit chain's check reports, the keyed head that anchors it, and what adopting keyed."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass

from plinth.core.errors import AuditTampered, InvalidInput

_HEX64 = re.compile(r"[0-9a-f]{64}")
NOT_KEYED = "not keyed"
"""`AuditCheck.problem` of a chain whose first events carry no keyed hash, and nothing else is wrong."""


@dataclass(frozen=True)
class AuditHead:
    """The chain's newest event as the store vouches for it: what `plinth audit anchor` writes.

    Args:
        seq: sequence number of the newest event.
        hash: that event's chain hash.
        time_ms: when it was appended (epoch milliseconds).
        mac: HMAC-SHA256 of `seq` and `hash` under the store's audit key.
    """

    seq: int
    hash: str
    time_ms: int
    mac: str

    @property
    def when(self) -> str:
        """The time of the newest event, ISO 8601 in UTC."""
        return dt.datetime.fromtimestamp(self.time_ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")

    def to_json(self) -> str:
        """The anchor document: sequence, hash, time (ms and ISO 8601 UTC) and keyed hash."""
        body = {
            "seq": self.seq,
            "hash": self.hash,
            "time_ms": self.time_ms,
            "time": self.when,
            "mac": self.mac,
        }
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> AuditHead:
        """Parse an anchor document written by `to_json`.

        Raises:
            InvalidInput: `text` is not such a document (`source` names where it came from).
        """
        try:
            doc = json.loads(text)
            head = cls(int(doc["seq"]), str(doc["hash"]), int(doc["time_ms"]), str(doc["mac"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidInput(
                f"{source} is not an audit anchor (JSON with seq, hash, time_ms and mac): {exc}; "
                "write one with `plinth audit anchor -o PATH_OR_URL`."
            ) from exc
        if head.seq < 1 or not _HEX64.fullmatch(head.hash) or not _HEX64.fullmatch(head.mac):
            raise InvalidInput(f"{source} is not an audit anchor: its seq, hash or mac is malformed.")
        return head


@dataclass(frozen=True)
class AuditCheck:
    """The outcome of checking the audit chain: how many events, and the first bad one.

    Args:
        events: events checked.
        ok: True when nothing is wrong.
        first_bad_seq: the first event that cannot be vouched for (edited, rewritten, missing).
        reason: what is wrong there, in words.
        problem: the kind of damage: "missing", "cut", "edited", "rewritten", "inserted",
            "missing tail", "missing head", "head" (the head itself was edited) or "anchor";
            or "not keyed" when the chain is otherwise intact but its first `unkeyed` events
            carry no keyed hash, so nothing vouches for them (see `plinth audit adopt`).
        keyed: whether the chain was checked against the store's audit key.
        head: the keyed head that was checked (None for an empty or unkeyed chain).
        unkeyed: how many events at the start of the chain carry no keyed hash.
    """

    events: int
    ok: bool
    first_bad_seq: int | None = None
    reason: str | None = None
    problem: str | None = None
    keyed: bool = False
    head: AuditHead | None = None
    unkeyed: int = 0

    def raise_if_broken(self) -> None:
        """Raise AuditTampered naming the first bad event (or the unkeyed ones) when the check failed."""
        if self.ok:
            return
        if self.problem == NOT_KEYED:
            raise AuditTampered(
                f"The audit log cannot be vouched for: {self.reason}. Otherwise compare it with a backup "
                "or an anchor (`plinth audit verify --anchor PATH_OR_URL`)."
            )
        raise AuditTampered(
            f"The audit log is broken at event {self.first_bad_seq} ({self.problem}): {self.reason}. "
            "Compare with a backup or an anchor (`plinth audit verify --anchor PATH_OR_URL`)."
        )


@dataclass(frozen=True)
class AuditAdoption:
    """What `plinth audit adopt` keyed: the unkeyed events at the start of the chain, as they
    stood, up to the first damage to the plain hash chain.

    Args:
        keyed: how many events were keyed (events 1 to `keyed`); 0 when there was nothing to key.
        event_seq: the `audit.adopt` event that records the adoption (None when nothing was keyed).
        first_bad_seq: the first event left unkeyed because the plain chain is damaged there.
        reason: what is wrong there, in words.
    """

    keyed: int
    event_seq: int | None = None
    first_bad_seq: int | None = None
    reason: str | None = None

    def raise_if_broken(self) -> None:
        """Raise AuditTampered when damage stopped the adoption short of the unkeyed events' end."""
        if self.first_bad_seq is not None:
            raise AuditTampered(
                f"The audit log is broken at event {self.first_bad_seq}: {self.reason}. Events from "
                f"{self.first_bad_seq} on stay unkeyed; compare the log with a backup or an anchor "
                "(`plinth audit verify --anchor PATH_OR_URL`)."
            )
