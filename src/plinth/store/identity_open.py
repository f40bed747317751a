"""Open the identity store named by settings: the team server's, or the local database's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.core.settings import Settings

if TYPE_CHECKING:
    from plinth.store.identity import IdentityStore


def identity_from_settings(settings: Settings) -> IdentityStore:
    """The identity store for `settings`.

    Against a team server (`PLINTH_STORE=http(s)://…`) it is the server's, reached with
    PLINTH_TOKEN (or the credential `plinth login` stored) and checked by the server; on a SQL
    store it is the default workspace's database itself, changed directly as a local admin.
    """
    if settings.is_remote:
        from plinth.store.http import client_from_settings
        from plinth.store.remote_identity import RemoteIdentity

        return RemoteIdentity(client_from_settings(settings))
    from plinth.store.sql.identity import SqlIdentity

    return SqlIdentity.from_settings(settings)
