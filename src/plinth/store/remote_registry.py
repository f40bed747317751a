"""The model registry and flows, as parts of `RemoteStore`.

Registering a version seals its manifest on the client (it is written to the artifact store
and signed with the client's key) for the number the server will assign. The client asks for
the latest number, seals the next, and sends it with that number; the server records it only
if the number is still next (else 409), and the client tries the number after. A retried
request whose first try was recorded is recognised by its manifest digest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from plinth.core.errors import ConflictError, NotFound
from plinth.store import rpc, wire
from plinth.store.base import NewModelVersion
from plinth.store.remote_base import RemoteBase

if TYPE_CHECKING:
    from plinth.core.entities import (
        FlowRun,
        ModelFile,
        ModelVersion,
        RegisteredModel,
        RunStatus,
        StepRun,
    )

REGISTER_TRIES = 5
"""Numbers tried before a registration gives up to concurrent ones."""


class RemoteRegistry(RemoteBase):
    """Registry methods of RemoteStore."""

    def create_model_version(self, new: NewModelVersion) -> ModelVersion:
        """Register the next version of `new.name`, sealing its manifest here for that number.

        Raises:
            ConflictError: other registrations took every number tried.
        """
        version = self._next_version(new.name)
        for _ in range(REGISTER_TRIES):
            sealed = new.seal(version)
            body = rpc.VersionRequest(
                version,
                new.flavor,
                sealed,
                new.files,
                new.signature,
                new.environment,
                new.run_id,
                new.description,
                new.source,
            )
            try:
                mv: ModelVersion = self._register(new.name, body)
                return mv
            except ConflictError:
                taken = self._version_or_none(new.name, version)
                if taken is not None and taken.digest == sealed.digest:
                    return taken  # a retry of a registration the server recorded
                version = self._next_version(new.name)
        raise ConflictError(
            f"Model {new.name!r} gained {REGISTER_TRIES} versions while registering one; try again."
        )

    def _register(self, name: str, body: rpc.VersionRequest) -> ModelVersion:
        endpoint = rpc.BY_METHOD["create_model_version"]
        response = self.client.request(
            endpoint.verb,
            endpoint.path.replace("{name:path}", rpc.segment(name)),
            content=wire.dumps(body),
            headers={"content-type": rpc.JSON},
        )
        return self.result(endpoint, response)

    def _next_version(self, name: str) -> int:
        latest = self._version_or_none(name, None)
        return 1 if latest is None else latest.version + 1

    def _version_or_none(self, name: str, version: int | None) -> ModelVersion | None:
        try:
            return self.get_model_version(name, version)
        except NotFound:
            return None

    def get_model_version(self, name: str, version: int | None = None) -> ModelVersion:
        return self.call("get_model_version", name, version)

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        return self.call("list_model_versions", name)

    def list_registered_models(self) -> list[RegisteredModel]:
        return self.call("list_registered_models")

    def create_registered_model(self, name: str, description: str) -> RegisteredModel:
        return self.call("create_registered_model", name, description)

    def get_registered_model(self, name: str) -> RegisteredModel:
        return self.call("get_registered_model", name)

    def set_registered_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        self.call("set_registered_model_tags", name, tags)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self.call("delete_registered_model_tag", name, key)

    def set_model_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        self.call("set_model_version_tags", name, version, tags)

    def delete_model_version_tag(self, name: str, version: int, key: str) -> None:
        self.call("delete_model_version_tag", name, version, key)

    def model_files(self, version_id: str) -> list[ModelFile]:
        return self.call("model_files", version_id)

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        return self.call("set_alias", name, alias, version)

    def delete_alias(self, name: str, alias: str) -> int:
        return self.call("delete_alias", name, alias)

    def resolve_alias(self, name: str, alias: str) -> int:
        return self.call("resolve_alias", name, alias)

    def set_model_description(self, name: str, version: int | None, description: str) -> None:
        self.call("set_model_description", name, version, description)

    def sign_model_version(
        self, name: str, version: int, digest: str, signature: str, signing_key: str
    ) -> ModelVersion:
        return self.call("sign_model_version", name, version, digest, signature, signing_key)


class RemoteFlows(RemoteBase):
    """Flow methods of RemoteStore."""

    def create_flow_run(self, run: FlowRun) -> None:
        self.call("create_flow_run", run)

    def finish_flow_run(
        self, run_id: str, status: RunStatus, end_ms: int, result_digest: str | None, error: str | None
    ) -> None:
        self.call("finish_flow_run", run_id, status, end_ms, result_digest, error)

    def crash_flow_run(self, run_id: str, end_ms: int, error: str) -> None:
        self.call("crash_flow_run", run_id, end_ms, error)

    def get_flow_run(self, run_id: str, *, now_ms: int | None = None) -> FlowRun:
        return self.call("get_flow_run", run_id, now_ms=now_ms)

    def list_flow_runs(self, flow: str | None = None, limit: int | None = 50) -> list[FlowRun]:
        return self.call("list_flow_runs", flow, limit)

    def save_step_runs(self, steps: Sequence[StepRun]) -> None:
        self.call("save_step_runs", steps)

    def step_runs(self, flow_run_id: str) -> list[StepRun]:
        return self.call("step_runs", flow_run_id)

    def cached_step(self, cache_key: str) -> StepRun | None:
        return self.call("cached_step", cache_key)

    def claim_trigger(self, flow: str, scheduled_ms: int, status: str) -> bool:
        return self.call("claim_trigger", flow, scheduled_ms, status)

    def set_trigger_run(self, flow: str, scheduled_ms: int, flow_run_id: str) -> None:
        self.call("set_trigger_run", flow, scheduled_ms, flow_run_id)

    def triggers(self, flow: str) -> list[tuple[int, str, str | None]]:
        return self.call("triggers", flow)
