"""What a build and a deployment leave in the store: version tags and lineage edges."""

from __future__ import annotations

import plinth
from plinth.deploy.records import (
    IMAGE_DIGEST_TAG,
    IMAGE_ID_TAG,
    IMAGE_TAG,
    BuiltImage,
    record_image,
    record_k8s_deployment,
)
from plinth.governance.api import lineage


def _version() -> plinth.ModelVersion:
    return plinth.register_model("recorded", lambda rows: [0 for _ in rows])


def _image(n: int, repo_digest: str | None = None) -> BuiltImage:
    return BuiltImage(f"sha256:{n:064x}", ("team/recorded:1",), 1_000_000 * n, repo_digest)


def test_an_image_is_tagged_on_its_version_and_linked_below_it(tracking: object) -> None:
    mv = _version()
    record_image(mv, _image(1, "127.0.0.1:5000/recorded@sha256:" + "ab" * 32))
    again = plinth.get_model_version("recorded", mv.version)
    assert again.tags[IMAGE_ID_TAG] == f"sha256:{1:064x}"
    assert again.tags[IMAGE_DIGEST_TAG] == "127.0.0.1:5000/recorded@sha256:" + "ab" * 32
    assert again.tags[IMAGE_TAG] == again.tags[IMAGE_DIGEST_TAG]
    text = "\n".join(lineage(f"recorded/{mv.version}").tree("down"))
    assert f"packaged as: image sha256:{f'{1:064x}'[:12]} (127.0.0.1:5000/recorded@sha256:" in text


def test_a_deployment_by_tag_hangs_below_the_latest_build_with_that_tag(tracking: object) -> None:
    mv = _version()
    record_image(mv, _image(1))
    record_image(mv, _image(2))  # rebuilt: the tag now names the second image
    record_k8s_deployment(mv, image="team/recorded:1", namespace="prod", name="recorded")
    graph = lineage(f"recorded/{mv.version}")
    deployed = [(src, dst) for src, relation, dst in graph.edges if relation == "deployed as"]
    assert (("image", f"{2:064x}"), ("k8s_deployment", "prod/recorded")) in deployed
    assert all(src != ("image", f"{1:064x}") for src, _ in deployed)


def test_a_deployment_of_an_image_plinth_did_not_build_hangs_below_the_version(tracking: object) -> None:
    mv = _version()
    record_k8s_deployment(mv, image="elsewhere/model:7", namespace="default", name="m")
    graph = lineage(f"recorded/{mv.version}")
    assert (("model_version", mv.id), "deployed as", ("k8s_deployment", "default/m")) in graph.edges
