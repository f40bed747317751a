"""What a flow's steps authenticate with when the store is a team server: a step token.

The driver asks the server for a token of its own principal, capped to its role in the
workspace, named after the flow run and expiring after `STEP_TOKEN_TTL_MS`; it goes to each
step in its environment (PLINTH_TOKEN), never in the step's payload, its tags or a job script,
and is revoked when the flow run ends. A bootstrap superuser has no stored principal to issue
for, so its steps get the driver's own token, the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace

from plinth.core.access import DEFAULT_WORKSPACE
from plinth.core.errors import PlinthError
from plinth.core.ids import now_ms
from plinth.core.settings import Settings

STEP_TOKEN_TTL_MS = 24 * 3600 * 1000
"""How long a step token lives at most (it is revoked as soon as its flow run ends)."""


def payload_settings(settings: Settings) -> Settings:
    """The settings a step receives in its payload: without any token."""
    return replace(settings, token=None) if settings.token is not None else settings


@contextlib.contextmanager
def step_credentials(settings: Settings, flow_run_id: str) -> Iterator[dict[str, str]]:
    """The environment the flow's steps get: `{}` on a SQL store, else PLINTH_TOKEN with a step
    token issued now and revoked when the block ends."""
    if not settings.is_remote:
        yield {}
        return
    from plinth.store.http import client_from_settings, resolved_token
    from plinth.store.remote_identity import RemoteIdentity

    identity = RemoteIdentity(client_from_settings(settings))
    try:
        me = identity.whoami()
        if me.superuser:
            yield {"PLINTH_TOKEN": resolved_token(settings) or ""}
            return
        workspace = settings.workspace or me.home_workspace or DEFAULT_WORKSPACE
        info, secret = identity.create_token(
            name=f"step-{flow_run_id}",
            principal=me.name,
            kind=me.kind,
            workspace=workspace,
            role=me.roles.get(workspace),
            expires_ms=now_ms() + STEP_TOKEN_TTL_MS,
            by=me.actor,
            purpose="step",
        )
        try:
            yield {"PLINTH_TOKEN": secret}
        finally:
            with contextlib.suppress(PlinthError):  # it expires anyway; the flow's outcome matters more
                identity.revoke_token(info.name, principal=me.name, by=me.actor)
    finally:
        identity.close()
