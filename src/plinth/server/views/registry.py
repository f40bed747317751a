"""Views of the model registry: models, a model's versions, one version, and moving an alias.

A version's page gathers what several store calls know: its record (signature, flavor,
environment), its package's files, the run that produced it and the datasets that run consumed.
Moving an alias takes the version the person saw it point at, so a confirmation given for
"prod: v1 to v2" never moves an alias someone else has moved since; the store records the move
in the audit log as the signed-in principal.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from plinth.core.access import Right
from plinth.core.entities import ModelVersion
from plinth.core.errors import ConflictError, NotFound, PlinthError
from plinth.core.refs import check_alias, check_ref_name
from plinth.core.settings import Settings
from plinth.registry import signing
from plinth.server.config import ServerConfig
from plinth.server.context import RequestContext
from plinth.server.views.common import MAINTAIN, READ, needs, view_router
from plinth.store.base import Store


class AliasMove(BaseModel):
    """Point an alias at `version`, if it still points at `expected` (None: it must not exist yet)."""

    version: int = Field(ge=1)
    expected: int | None = Field(default=None, ge=1)


def router(config: ServerConfig) -> APIRouter:
    """`GET /ui/models`, `GET /ui/models/{name}`, `GET /ui/models/{name}/versions/{version}` and
    `PUT /ui/models/{name}/aliases/{alias}`."""
    router = view_router()
    settings = config.settings

    @router.get("/models", openapi_extra=needs(Right.READ))
    def models(ctx: RequestContext = READ) -> list[dict[str, Any]]:
        """Every registered model with its latest version, aliases and when it last changed."""
        store = ctx.store
        found = []
        for model in store.list_registered_models():
            # a name created before its first version (MLflow's way) has latest_version 0
            latest = (
                store.get_model_version(model.name, model.latest_version) if model.latest_version else None
            )
            found.append(
                {
                    "name": model.name,
                    "description": model.description,
                    "created_ms": model.created_ms,
                    "updated_ms": latest.created_ms if latest else model.created_ms,
                    "latest_version": model.latest_version,
                    "latest_flavor": latest.flavor if latest else "",
                    "latest_description": latest.description if latest else "",
                    "aliases": model.aliases,
                }
            )
        return sorted(found, key=lambda m: m["updated_ms"], reverse=True)

    # the version and alias routes come before the model's: a model's name may hold '/'
    @router.get("/models/{name:path}/versions/{version}", openapi_extra=needs(Right.READ))
    def model_version(name: str, version: int = Path(ge=1), ctx: RequestContext = READ) -> dict[str, Any]:
        """One version: signature, flavor, environment, files, aliases and where it came from.

        Raises (answered by the app's error table): NotFound for an unknown model or version.
        """
        store = ctx.store
        mv = store.get_model_version(check_ref_name(name, "model"), version)
        return {
            **summary(mv, settings),
            "digest": mv.digest,
            "signature": mv.signature,
            "environment": mv.environment,
            "requirements": requirements(mv),
            "files": [{"path": f.path, "size": f.size, "digest": f.digest} for f in store.model_files(mv.id)],
            "lineage": lineage(store, mv),
        }

    @router.put("/models/{name:path}/aliases/{alias}", openapi_extra=needs(Right.MAINTAIN))
    def move_alias(name: str, alias: str, body: AliasMove, ctx: RequestContext = MAINTAIN) -> dict[str, Any]:
        """Point `name@alias` at `body.version`, if it still points where the caller saw it.

        Raises (answered by the app's error table): InvalidInput for a bad name or alias;
        NotFound for an unknown model or version; ConflictError when the alias has moved since.
        """
        store = ctx.store
        check_ref_name(name, "model")
        check_alias(alias)
        current = _alias_target(store, name, alias)
        if current != body.expected:
            raise ConflictError(
                f"{name}@{alias} points at {_version_text(current)} now, not at "
                f"{_version_text(body.expected)}: someone moved it meanwhile. Reload the page and "
                "confirm the move again."
            )
        before = store.set_alias(name, alias, body.version)
        return {"name": name, "alias": alias, "before": before, "version": body.version}

    @router.get("/models/{name:path}", openapi_extra=needs(Right.READ))
    def model(name: str, ctx: RequestContext = READ) -> dict[str, Any]:
        """A model and its versions, newest first.

        Raises (answered by the app's error table): NotFound for an unknown model.
        """
        store = ctx.store
        versions = store.list_model_versions(check_ref_name(name, "model"))
        aliases = {alias: mv.version for mv in versions for alias in mv.aliases}
        described = next((m for m in store.list_registered_models() if m.name == name), None)
        return {
            "name": name,
            "description": described.description if described else "",
            "aliases": dict(sorted(aliases.items())),
            "versions": [summary(mv, settings) for mv in reversed(versions)],
        }

    return router


def summary(mv: ModelVersion, settings: Settings) -> dict[str, Any]:
    """A version as a row of its model's versions table."""
    return {
        "id": mv.id,
        "name": mv.name,
        "version": mv.version,
        "ref": mv.ref,
        "flavor": mv.flavor,
        "created_ms": mv.created_ms,
        "creator": mv.creator,
        "description": mv.description,
        "run_id": mv.run_id,
        "has_signature": bool(mv.signature),
        "aliases": sorted(mv.aliases),
        "signed": mv.manifest_signature is not None,
        "signing_key": mv.signing_key,
        "signing_status": _signing_status(mv, settings),
    }


def requirements(mv: ModelVersion) -> list[str]:
    """What loading the version needs, as pip requirement lines (Python first)."""
    env = mv.environment or {}
    lines = [f"python=={env['python']}"] if env.get("python") else []
    return lines + [f"{name}=={version}" for name, version in sorted((env.get("libraries") or {}).items())]


def lineage(store: Store, mv: ModelVersion) -> dict[str, Any]:
    """The run that produced `mv` and the dataset versions that run consumed."""
    if not mv.run_id:
        return {"run": None, "datasets": []}
    try:
        run = store.get_run(mv.run_id)
        source: dict[str, Any] = {
            "id": run.id,
            "name": run.name,
            "experiment": run.experiment_name,
            "status": run.status.value,
        }
    except NotFound:  # the run was deleted; its id is still what the version names
        source = {"id": mv.run_id, "name": None, "experiment": None, "status": None}
    consumed = {
        edge.src_id
        for edge in store.edges(dst=("run", mv.run_id))
        if edge.src_type == "dataset_version" and edge.relation == "consumed_by"
    }
    datasets = [
        {"ref": ds.ref, "name": ds.name, "version": ds.version, "rows": ds.rows, "digest": ds.digest}
        for ds in (store.list_dataset_versions() if consumed else [])
        if ds.id in consumed
    ]
    return {"run": source, "datasets": datasets}


def _signing_status(mv: ModelVersion, settings: Settings) -> str:
    """'unsigned', 'verified', 'bad', 'untrusted' or 'unchecked' (no keys here), as loading sees it."""
    try:
        return signing.status(mv, settings)
    except PlinthError:  # a key file of the server's settings cannot be used: say so, do not fail
        return "unchecked"


def _alias_target(store: Store, name: str, alias: str) -> int | None:
    try:
        return store.resolve_alias(name, alias)
    except NotFound:
        store.get_model_version(name)  # an unknown model is NotFound, not a missing alias
        return None


def _version_text(version: int | None) -> str:
    return "nothing" if version is None else f"version {version}"
