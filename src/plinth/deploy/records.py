"""What builds and deployments leave in the store: tags on the model version and lineage edges.

An image is a lineage node ("image", its id without "sha256:"), reached from the model version it
packages ("packaged as") and leading to the Kubernetes deployments generated for it
("deployed as"), so `plinth lineage NAME@ALIAS` reads model → image → deployment.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from plinth.core.entities import LineageEdge, ModelVersion
from plinth.core.ids import now_ms
from plinth.tracking.context import backend

IMAGE_TAG = "plinth.image"
"""Model version tag: the last image built for it (its tag, or REPO@DIGEST once pushed)."""
IMAGE_ID_TAG = "plinth.image.id"
"""Model version tag: that image's id (sha256:…, the digest of its configuration)."""
IMAGE_DIGEST_TAG = "plinth.image.digest"
"""Model version tag: the registry digest (REPO@sha256:…) of its last push."""

_ID_LIMIT = 64  # lineage ids are at most 64 characters


@dataclass(frozen=True)
class BuiltImage:
    """An image built for a model version (or a flow)."""

    image_id: str  # sha256:… of the image configuration
    tags: tuple[str, ...]
    size_bytes: int
    repo_digest: str | None = None  # REPO@sha256:… once pushed
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def node_id(self) -> str:
        """The image's lineage id: its id without the algorithm prefix."""
        return self.image_id.split(":", 1)[-1][:_ID_LIMIT]

    @property
    def reference(self) -> str:
        """What to run or deploy: the pushed digest when there is one, else the first tag, else the id."""
        return self.repo_digest or (self.tags[0] if self.tags else self.image_id)


def record_image(mv: ModelVersion, image: BuiltImage) -> None:
    """Tag `mv` with the image built for it and link version → image in lineage."""
    store = backend().store
    tags = {IMAGE_TAG: image.reference, IMAGE_ID_TAG: image.image_id}
    if image.repo_digest:
        tags[IMAGE_DIGEST_TAG] = image.repo_digest
    store.set_model_version_tags(mv.name, mv.version, tags)
    store.add_edge(
        LineageEdge(
            "model_version",
            mv.id,
            "packaged as",
            "image",
            image.node_id,
            now_ms(),
            _image_attributes(image),
        )
    )


def record_k8s_deployment(mv: ModelVersion, *, image: str, namespace: str, name: str) -> None:
    """Link the image `mv` is deployed with to the Kubernetes Deployment generated for it.

    `image` is what the manifests run (a tag or REPO@sha256:…). When it is an image recorded for
    `mv`, the edge starts at that image; otherwise at the version itself (an image plinth did not
    build still leads from the model to its deployment).
    """
    store = backend().store
    target = f"{namespace}/{name}"
    if len(target) > _ID_LIMIT:
        target = f"{name[:40]}~{hashlib.sha256(target.encode()).hexdigest()[:12]}"
    attributes = {"image": image, "namespace": namespace, "name": name, "kind": "Deployment"}
    source = _recorded_image(mv, image)
    src_type, src_id = ("image", source) if source is not None else ("model_version", mv.id)
    store.add_edge(
        LineageEdge(src_type, src_id, "deployed as", "k8s_deployment", target, now_ms(), attributes)
    )


def _recorded_image(mv: ModelVersion, image: str) -> str | None:
    """The lineage id of the image of `mv` that `image` names (a tag, digest or id), if any."""
    edges = list(enumerate(backend().store.edges(src=("model_version", mv.id))))
    edges.sort(key=lambda item: (item[1].created_ms, item[0]), reverse=True)  # a tag names the latest build
    for _, edge in edges:
        if edge.relation != "packaged as" or edge.dst_type != "image":
            continue
        names = {edge.dst_id, f"sha256:{edge.dst_id}", *edge.attributes.get("tags", ())}
        names.update(edge.attributes.get("repo_digests", ()))
        if image in names or any(image.endswith("@" + d.split("@")[-1]) for d in names if "@" in d):
            return edge.dst_id
    return None


def _image_attributes(image: BuiltImage) -> dict[str, Any]:
    return {
        "image_id": image.image_id,
        "tags": list(image.tags),
        "repo_digests": [image.repo_digest] if image.repo_digest else [],
        "size_bytes": image.size_bytes,
    }
