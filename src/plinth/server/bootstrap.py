"""The first admin: `plinth server --init-admin` issues a superuser token and shows it once.

The token belongs to the service account `admin`, holds every right in every workspace (its
purpose is `superuser`, which only this path sets) and is stored, like every token, as a hash.
Each call issues a new one (`init-YYYYmmdd-HHMMSS-mmm`); revoke old ones with `plinth tokens revoke`.
"""

from __future__ import annotations

import time

from plinth.core.identity import PrincipalKind, TokenInfo
from plinth.server.config import ServerConfig

ADMIN = "admin"


def init_admin(config: ServerConfig) -> tuple[TokenInfo, str]:
    """Issue a superuser token for service account `admin` in the server's identity store.

    Returns:
        The token as stored and its secret (shown this once; only its hash is kept).

    Raises:
        StoreError: the store cannot be reached.
    """
    from plinth.store.identity import SUPERUSER_PURPOSE
    from plinth.store.sql.identity import SqlIdentity

    identity = SqlIdentity.from_settings(config.settings)
    try:
        identity.ensure_principal(ADMIN, PrincipalKind.SERVICE)
        return identity.create_token(
            name=_name(),
            principal=ADMIN,
            kind=PrincipalKind.SERVICE,
            workspace=None,
            role=None,
            expires_ms=None,
            by="plinth server --init-admin",
            purpose=SUPERUSER_PURPOSE,
        )
    finally:
        identity.close()


def _name() -> str:
    now = time.time()
    return time.strftime("init-%Y%m%d-%H%M%S", time.gmtime(now)) + f"-{int(now * 1000) % 1000:03d}"
