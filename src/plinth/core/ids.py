"""Time-sortable string ids (ULID: 48-bit millisecond time + 80 random bits, Crockford base32)."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def new_id() -> str:
    """Return a new 26-character ULID, strictly increasing within this process.

    Ids made in the same millisecond by one process sort in creation order
    (the random part is incremented), so sorting ids sorts by creation time.
    """
    global _last_ms, _last_rand
    with _lock:
        now = time.time_ns() // 1_000_000
        if now <= _last_ms:
            now = _last_ms
            rand = _last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1
        _last_ms, _last_rand = now, rand
    return _encode((now << 80) | (rand & ((1 << 80) - 1)))


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def id_time_ms(ulid: str) -> int:
    """Return the creation time (epoch milliseconds) encoded in an id made by `new_id`."""
    value = 0
    for char in ulid[:10]:
        value = (value << 5) | _ALPHABET.index(char)
    return value


def now_ms() -> int:
    """Current wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000
