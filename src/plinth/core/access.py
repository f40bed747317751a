"""Who may do what: the rights a request needs and the roles that grant them. Data only.

Every route of the team server and of a model server started with `--auth` names one `Right`;
a principal's role in the request's workspace must grant it. Roles nest as the docs describe:

    viewer ⊂ editor ⊂ maintainer ⊂ admin        auditor = viewer + raw + audit ⊂ admin
    predictor = load + predict (a model server's own token; clients that call predict)

`raw` is the right to read logged inputs and subject ids (personal data); `viewer` sees drift,
performance and operations as aggregates only. `superuser` (the bootstrap admin) holds every
right in every workspace and alone may create workspaces.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

from plinth.core.errors import InvalidInput


class Right(enum.StrEnum):
    """What a route needs."""

    PUBLIC = "public"  # no token at all: /healthz, /readyz, the login redirect
    AUTHENTICATED = "authenticated"  # any valid token, no workspace role needed: whoami
    LOAD = "load"  # read what loading a model needs: versions, aliases, files, blobs
    READ = "read"  # everything but raw prediction logs and the audit log
    WRITE = "write"  # runs, metrics, artifacts, datasets, flows, register versions
    PREDICT = "predict"  # call predict, post labels, write prediction logs
    MAINTAIN = "maintain"  # move aliases, deploy, delete
    RAW = "raw"  # raw prediction logs, inputs and subject ids
    AUDIT = "audit"  # the audit log, erasure, retention
    ADMIN = "admin"  # members, tokens, settings of the workspace
    SUPERUSER = "superuser"  # workspaces themselves; the bootstrap admin


class Role(enum.StrEnum):
    """A principal's role in one workspace."""

    VIEWER = "viewer"
    EDITOR = "editor"
    MAINTAINER = "maintainer"
    ADMIN = "admin"
    AUDITOR = "auditor"
    PREDICTOR = "predictor"

    @classmethod
    def parse(cls, text: str) -> Role:
        """The role named `text` (case-insensitive); InvalidInput naming the roles otherwise."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise InvalidInput(f"Unknown role {text!r}; use one of: {names}.") from None


_VIEWER = frozenset({Right.AUTHENTICATED, Right.LOAD, Right.READ})
_EDITOR = _VIEWER | {Right.WRITE, Right.PREDICT}
_MAINTAINER = _EDITOR | {Right.MAINTAIN}
_AUDITOR = _VIEWER | {Right.RAW, Right.AUDIT}

RIGHTS: Mapping[Role, frozenset[Right]] = {
    Role.VIEWER: _VIEWER,
    Role.EDITOR: _EDITOR,
    Role.MAINTAINER: _MAINTAINER,
    Role.AUDITOR: _AUDITOR,
    Role.ADMIN: _MAINTAINER | _AUDITOR | {Right.ADMIN},
    Role.PREDICTOR: frozenset({Right.AUTHENTICATED, Right.LOAD, Right.PREDICT}),
}
"""The rights each role grants in its workspace (SUPERUSER is granted by no role)."""


def grants(role: Role | None, right: Right) -> bool:
    """Whether `role` (None: no role in the workspace) allows `right`."""
    if right is Right.PUBLIC:
        return True
    return role is not None and right in RIGHTS[role]


DEFAULT_WORKSPACE = "default"

_WORKSPACE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$")


def check_workspace_name(name: str) -> str:
    """`name` if it can name a workspace (lowercase letters, digits and '-', 1-32 characters,
    starting with a letter); InvalidInput saying so otherwise."""
    if not isinstance(name, str) or not _WORKSPACE_NAME.match(name):
        raise InvalidInput(
            f"{name!r} cannot name a workspace; use 1-32 lowercase letters, digits and '-', "
            "starting with a letter, e.g. 'vision'."
        )
    return name
