"""Small values the server hands out and must get back unchanged: encrypted, authenticated, dated.

A login in progress (state, nonce, PKCE verifier) travels in a cookie and a one-time login code
travels through the user, instead of living in one worker's memory: any worker holding the
same key opens them, so single sign-on works with `plinth server --workers N`. AES-256-GCM
keeps them secret and unforgeable; the purpose is bound in as associated data, so a login
cookie never passes for a code.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from plinth.core.errors import Unauthorized

_NONCE_BYTES = 12


class Sealer:
    """Seals JSON objects into URL-safe text that only holders of the same secret can open.

    Args:
        secret: key material shared by every worker; None makes a random key, good for one
            process only.

    Example:
        >>> sealer = Sealer("s3cret")
        >>> sealer.open(sealer.seal({"a": 1}, purpose="demo", ttl_s=60), purpose="demo")["a"]
        1
    """

    def __init__(self, secret: str | bytes | None) -> None:
        material = (
            os.urandom(32) if secret is None else secret.encode() if isinstance(secret, str) else secret
        )
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"plinth sealed values v1").derive(
            material
        )
        self._aead = AESGCM(key)

    def seal(self, value: Mapping[str, Any], *, purpose: str, ttl_s: float) -> str:
        """`value` sealed for `purpose`, opening until `ttl_s` seconds from now."""
        body = json.dumps({**value, "exp": time.time() + ttl_s}, separators=(",", ":")).encode()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, body, purpose.encode())
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, text: str, *, purpose: str) -> dict[str, Any]:
        """The value sealed in `text` for `purpose`.

        Raises:
            Unauthorized: `text` was not sealed here for `purpose`, was changed, or expired.
        """
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            body = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], purpose.encode())
            value = json.loads(body)
        except (ValueError, binascii.Error, InvalidTag) as exc:
            raise Unauthorized(f"The {purpose} is not valid here; start the login again.") from exc
        if not isinstance(value, dict) or not isinstance(value.get("exp"), int | float):
            raise Unauthorized(f"The {purpose} is not valid here; start the login again.")
        if value["exp"] < time.time():
            raise Unauthorized(f"The {purpose} has expired; start the login again.")
        return value
