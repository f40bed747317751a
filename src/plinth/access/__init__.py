"""Identity and permission checks shared by the team server and a model server with `--auth`.

`Authorizer` authenticates bearer secrets (decisions cached at most 5 s, failures backed off per
client) and checks a principal's rights per workspace; `LocalResolver` resolves secrets against
an `IdentityStore`; `tokens` makes, hashes and compares secrets.
"""

from __future__ import annotations

from plinth.access.authorizer import (
    ADMIN,
    Authorizer,
    LocalResolver,
    TokenResolver,
    capped_role,
    forbidden_message,
    least_role,
)
from plinth.access.backoff import Backoff
from plinth.access.tokens import hash_secret, new_secret, same_secret

__all__ = [
    "ADMIN",
    "Authorizer",
    "Backoff",
    "LocalResolver",
    "TokenResolver",
    "capped_role",
    "forbidden_message",
    "hash_secret",
    "least_role",
    "new_secret",
    "same_secret",
]
