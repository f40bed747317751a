"""Token secrets: made, hashed and compared.

A secret is `plt_` and 43 URL-safe characters (256 random bits), shown once when made; stores
keep only its sha256 (`hash_secret`). Secrets are compared in constant time (`same_secret`).
"""

from __future__ import annotations

import hmac

from plinth.store.identity import TOKEN_PREFIX, hash_secret, new_secret

__all__ = ["TOKEN_PREFIX", "hash_secret", "new_secret", "same_secret"]


def same_secret(given: str, expected: str) -> bool:
    """Whether `given` is `expected`, taking as long whatever they share (no timing oracle)."""
    return hmac.compare_digest(given.encode(), expected.encode())
