"""What the audit chain's check reports, and the keyed head that anchors it."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass

from plinth.core.errors import AuditTampered, InvalidInput

_HEX64 = re.compile(r"[0-9a-f]{64}")


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
            "missing tail", "missing head", "head" (the head itself was edited) or "anchor".
        keyed: whether the chain was checked against the store's audit key.
        head: the keyed head that was checked (None for an empty or unkeyed chain).
    """

    events: int
    ok: bool
    first_bad_seq: int | None = None
    reason: str | None = None
    problem: str | None = None
    keyed: bool = False
    head: AuditHead | None = None

    def raise_if_broken(self) -> None:
        """Raise AuditTampered naming the first bad event when the check failed."""
        if not self.ok:
            raise AuditTampered(
                f"The audit log is broken at event {self.first_bad_seq} ({self.problem}): {self.reason}. "
                "Compare with a backup or an anchor (`plinth audit verify --anchor PATH_OR_URL`)."
            )
