"""The container engine, reached through the Docker Engine API (the `docker` package).

Builds run with no network (`network_mode="none"`): what an image installs comes from its
build context. Progress is reported step by step; an engine that cannot be reached, a failing
step or a refused push raises an `EngineError` that says what to do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from plinth.core.errors import PlinthError

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)")

Progress = Callable[[int, int, str], None]
"""Called with (step, of steps, what the step does) as a build goes."""


class EngineError(PlinthError):
    """The container engine is unreachable, or refused a build, a run or a push."""


@dataclass(frozen=True)
class ImageInfo:
    """An image the engine holds."""

    image_id: str
    tags: tuple[str, ...]
    size_bytes: int
    repo_digests: tuple[str, ...]
    labels: dict[str, str]


@dataclass(frozen=True)
class Built:
    """The outcome of one build: the image, its steps (FROM aside) and how many came from cache."""

    image_id: str
    steps: int
    cached: int

    @property
    def all_cached(self) -> bool:
        """True when no step ran: every layer was reused."""
        return self.cached == self.steps


class Engine:
    """A Docker Engine (dockerd, or anything speaking its API) found from DOCKER_HOST."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def connect(cls) -> Engine:
        """The engine DOCKER_HOST names (default the local socket).

        Raises:
            EngineError: no engine answered, or the `docker` package is missing.
        """
        try:
            import docker
        except ImportError as exc:
            raise EngineError(
                "Building images needs the docker package: pip install 'plinth[deploy]'."
            ) from exc
        try:
            client = docker.from_env(timeout=600)
            client.ping()
        except Exception as exc:  # DockerException and the connection errors under it
            raise EngineError(
                "No container engine answered (DOCKER_HOST, else /var/run/docker.sock): start dockerd "
                f"(or Docker Desktop, or a BuildKit-capable engine) and try again. ({_short(exc)})"
            ) from exc
        return cls(client)

    def has_image(self, ref: str) -> bool:
        """Whether the engine holds an image by that tag or id."""
        import docker.errors

        try:
            self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            return False
        return True

    def image(self, ref: str) -> ImageInfo:
        """What the engine knows of an image (raises EngineError when it holds none by that name)."""
        import docker.errors

        try:
            attrs = self.client.images.get(ref).attrs
        except docker.errors.ImageNotFound as exc:
            raise EngineError(f"The engine holds no image {ref!r}: build or pull it first.") from exc
        config = attrs.get("Config") or {}
        return ImageInfo(
            image_id=attrs["Id"],
            tags=tuple(attrs.get("RepoTags") or ()),
            size_bytes=int(attrs.get("Size") or 0),
            repo_digests=tuple(attrs.get("RepoDigests") or ()),
            labels=dict(config.get("Labels") or {}),
        )

    def build(
        self,
        context: IO[bytes],
        tag: str,
        *,
        labels: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> Built:
        """Build the Dockerfile of a tar `context` with no network and tag it.

        Raises:
            EngineError: a step failed (its output is in the message).
        """
        image_id: str | None = None
        steps = cached = 0
        tail: list[str] = []
        try:
            stream = self.client.api.build(
                fileobj=context,
                custom_context=True,
                tag=tag,
                rm=True,
                forcerm=True,
                pull=False,
                network_mode="none",
                labels=dict(labels or {}),
                decode=True,
            )
            for chunk in stream:
                if "error" in chunk:
                    detail = "\n".join([*tail[-12:], str(chunk["error"]).strip()])
                    raise EngineError(f"The image build failed at a step:\n{detail}")
                aux = chunk.get("aux") or {}
                if "ID" in aux:
                    image_id = str(aux["ID"])
                text = str(chunk.get("stream") or "")
                for line in text.splitlines():
                    if not line.strip():
                        continue
                    tail.append(line.rstrip())
                    step = _STEP.match(line)
                    if step:
                        steps += not step.group(3).upper().startswith("FROM ")
                        if progress is not None:
                            progress(int(step.group(1)), int(step.group(2)), step.group(3))
                    cached += line.strip() == "---> Using cache"
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"The engine refused the build: {_short(exc)}") from exc
        if image_id is None:
            image_id = self.image(tag).image_id
        return Built(image_id, steps, cached)

    def push(self, repository: str, tag: str) -> str:
        """Push REPOSITORY:TAG; returns the digest the registry gave it (sha256:…)."""
        digest: str | None = None
        try:
            for chunk in self.client.images.push(repository, tag, stream=True, decode=True):
                if "error" in chunk:
                    raise EngineError(
                        f"Pushing {repository}:{tag} failed: {chunk['error']}. Check the registry is "
                        "reachable and you are logged in to it (docker login)."
                    )
                aux = chunk.get("aux") or {}
                if "Digest" in aux:
                    digest = str(aux["Digest"])
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"Pushing {repository}:{tag} failed: {_short(exc)}") from exc
        if digest is None:
            raise EngineError(f"The registry did not report a digest for {repository}:{tag}.")
        return digest

    def tag(self, image: str, repository: str, tag: str) -> None:
        """Tag `image` as REPOSITORY:TAG."""
        self.client.api.tag(image, repository, tag)


def split_reference(reference: str) -> tuple[str, str]:
    """("registry:5000/team/churn", "v3") from "registry:5000/team/churn:v3" (tag "latest" when none)."""
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:  # no tag, or the colon belonged to a registry's port
        return reference, "latest"
    return name, tag


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 500 else text[:500] + "…"
