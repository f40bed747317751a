"""`plinth build NAME@ALIAS`: a model's serving image, built by a real Docker engine, run with
its port published on 127.0.0.1, pushed to a local registry and pulled back by digest."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from k8s_checks import Result, assert_clean_error, run
from sklearn.datasets import load_iris

import plinth
from plinth.core.entities import ModelVersion
from plinth.deploy.records import IMAGE_DIGEST_TAG, IMAGE_ID_TAG, IMAGE_TAG
from plinth.governance.api import lineage
from plinth.registry.adopt import register_files
from plinth.registry.package import store_files
from plinth.tracking.context import backend
from waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("docker")]  # one engine: builds take turns


def build(capsys: Any, janitor: Any, ref: str, base: str, tag: str, *args: str) -> dict[str, Any]:
    """`plinth build REF --base BASE -t TAG ARGS --json`, checked to succeed; its JSON. The image
    is removed at the end of the test."""
    result = run(capsys, "build", ref, "--base", base, "-t", tag, *args, "--json")
    assert result.code == 0, result.err
    built: dict[str, Any] = json.loads(result.out)
    janitor.image_ids.append(built["image_id"])
    return built


def ready(port: int) -> bool:
    """Whether the container behind `port` answers /readyz with 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def predict(port: int, records: list[dict[str, Any]]) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models/iris/predict",
        data=json.dumps({"instances": records}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["predictions"]


def test_the_image_serves_the_models_predictions_over_http(
    capsys: Any, base_image: str, janitor: Any, free_port: int, iris: ModelVersion
) -> None:
    built = build(capsys, janitor, "iris@champion", base_image, janitor.tag())
    janitor.run(built["image_id"], ports={"8000/tcp": ("127.0.0.1", free_port)})
    wait_until(lambda: ready(free_port), "the container to answer /readyz", timeout_s=90, every_s=0.2)

    x, _ = load_iris(return_X_y=True, as_frame=True)
    rows = x.iloc[::15]
    served = predict(free_port, rows.to_dict("records"))
    assert served == plinth.load_model("iris@champion").predict(rows).tolist()
    assert len(set(served)) == 3  # every class, so a constant answer would not pass


def test_a_rebuild_with_nothing_changed_reuses_every_layer(
    capsys: Any, base_image: str, janitor: Any, iris: ModelVersion
) -> None:
    tag = janitor.tag()
    first = build(capsys, janitor, "iris@champion", base_image, tag)
    again = build(capsys, janitor, "iris@champion", base_image, tag)

    assert again["all_cached"] is True
    assert again["image_id"] == first["image_id"]
    assert again["packages"] == first["packages"]


def test_the_image_runs_as_non_root_with_a_health_check_and_no_network(
    capsys: Any, base_image: str, janitor: Any, docker_client: Any, iris: ModelVersion
) -> None:
    built = build(capsys, janitor, "iris@champion", base_image, janitor.tag())
    config = docker_client.images.get(built["image_id"]).attrs["Config"]

    assert config["User"] == "10001:10001"
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    assert set(config["ExposedPorts"]) == {"8000/tcp"}
    labels = config["Labels"]
    assert labels["dev.plinth.model.name"] == "iris"
    assert labels["dev.plinth.model.version"] == str(iris.version)
    assert labels["dev.plinth.model.sha256"] == iris.digest
    assert f"scikit-learn=={iris.environment['libraries']['scikit-learn']}" in built["packages"]
    assert not any(p.startswith(("torch==", "ray==", "xgboost==")) for p in built["packages"])

    container = janitor.run(built["image_id"], network_mode="none")
    probe = (
        "import urllib.request; "
        "print(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status)"
    )

    def status_inside() -> str:
        code, out = container.exec_run(["python", "-c", probe])
        return str(out.decode().strip()) if code == 0 else ""

    assert wait_until(status_inside, "/readyz to answer inside", timeout_s=90, every_s=0.3) == "200"
    code, out = container.exec_run(["id", "-u"])
    assert (code, out.decode().strip()) == (0, "10001")
    version = plinth.get_model_version("iris@champion")
    assert version.tags[IMAGE_ID_TAG] == built["image_id"]
    assert version.tags[IMAGE_TAG] == built["tags"][0]


def test_push_to_a_registry_and_pull_back_by_digest(
    capsys: Any,
    base_image: str,
    janitor: Any,
    docker_client: Any,
    registry: str,
    iris: ModelVersion,
    tmp_path: Path,
) -> None:
    tag = janitor.tag()
    repository = f"{registry}/{tag.split(':')[0]}"
    janitor.references.append(f"{repository}:{iris.version}")
    built = build(capsys, janitor, "iris@champion", base_image, tag, "--push", repository)

    repo_digest = built["repo_digest"]
    assert repo_digest.startswith(f"{repository}@sha256:")
    assert plinth.get_model_version("iris@champion").tags[IMAGE_DIGEST_TAG] == repo_digest

    docker_client.images.remove(tag, noprune=True)
    docker_client.images.remove(f"{repository}:{iris.version}", noprune=True)
    assert not any(image.id == built["image_id"] for image in docker_client.images.list())
    janitor.references.append(repo_digest)
    pulled = docker_client.images.pull(repo_digest)
    assert pulled.id == built["image_id"]

    deployed = run(
        capsys, "deploy", "k8s", "iris@champion", "--image", repo_digest, "-o", str(tmp_path / "k8s")
    )
    assert deployed.code == 0, deployed.err
    edges = lineage("iris@champion", "down").edges
    image_node = ("image", built["image_id"].split(":", 1)[1])
    assert (("model_version", iris.id), "packaged as", image_node) in edges
    assert any(a == image_node and r == "deployed as" for a, r, _b in edges)  # found by its digest


def test_lineage_reads_model_then_image_then_deployment(
    capsys: Any, base_image: str, janitor: Any, iris: ModelVersion, tmp_path: Path
) -> None:
    tag = janitor.tag()
    built = build(capsys, janitor, "iris@champion", base_image, tag)
    deployed = run(
        capsys,
        "deploy",
        "k8s",
        "iris@champion",
        "--image",
        tag,
        "--namespace",
        "ml",
        "-o",
        str(tmp_path / "k8s"),
    )
    assert deployed.code == 0, deployed.err

    image_node = ("image", built["image_id"].split(":", 1)[1])
    edges = lineage("iris@champion", "down").edges
    assert (("model_version", iris.id), "packaged as", image_node) in edges
    [(_, _, target)] = [edge for edge in edges if edge[0] == image_node and edge[1] == "deployed as"]
    assert target[0] == "k8s_deployment" and target[1].startswith("ml/")

    shown = run(capsys, "lineage", "iris@champion", "--direction", "down")
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    [image_line] = [n for n, line in enumerate(lines) if "packaged as: image sha256:" in line]
    assert built["image_id"][7:19] in lines[image_line] and tag in lines[image_line]
    assert "deployed as: Kubernetes Deployment ml/" in lines[image_line + 1]


def test_a_model_whose_packages_cannot_be_resolved_fails_with_their_names(
    capsys: Any, base_image: str, janitor: Any, docker_client: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "ghost"
    folder.mkdir()
    (folder / "model.txt").write_text("weights")
    be = backend()
    register_files(
        be.store,
        be.blobs,
        name="ghost",
        files=store_files(be.blobs, str(folder)),
        source=f"file://{folder}",
        run_id=None,
        environment={"python": "3.11.x", "libraries": {"plinth-no-such-lib": "1.0"}},
    )
    tag = janitor.tag("plinth-test/ghost")

    result = run(capsys, "build", "ghost", "--base", base_image, "-t", tag)

    assert result.code != 0
    assert_one_line_error(result, "plinth-no-such-lib")
    assert docker_client.images.list(name=tag.split(":")[0]) == []
    assert docker_client.images.list(filters={"label": "dev.plinth.model.name=ghost"}) == []


def test_no_engine_is_one_clear_line(
    capsys: Any, monkeypatch: pytest.MonkeyPatch, janitor: Any, base_image: str, iris: ModelVersion
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    result = run(capsys, "build", "iris@champion", "--base", base_image, "-t", janitor.tag())

    assert result.code != 0
    assert_one_line_error(result, "No container engine answered", "start dockerd")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-t", "UPPER case!"], "--tag 'UPPER case!' is not an image reference"),
        (["-t", "plinth-test/iris:"], "is not an image reference"),
        (["--push", "Bad Repo"], "--push 'Bad Repo' is not an image reference"),
        (["--port", "0"], "--port must be between 1 and 65535, got 0"),
        (["--port", "65536"], "--port must be between 1 and 65535, got 65536"),
    ],
)
def test_a_bad_tag_push_or_port_is_refused_before_anything_is_built(
    capsys: Any, monkeypatch: pytest.MonkeyPatch, iris: ModelVersion, args: list[str], needle: str
) -> None:
    # no engine: the option is checked first, so its error is the one shown
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    result = run(capsys, "build", "iris@champion", "--base", "plinth-test-base:bookworm", *args)

    assert_clean_error(result, 2, needle)
    assert IMAGE_TAG not in plinth.get_model_version("iris@champion").tags


def test_a_port_that_is_not_a_number_is_a_usage_error(capsys: Any, iris: ModelVersion) -> None:
    result = run(capsys, "build", "iris@champion", "--port", "http")

    assert result.code == 2
    assert "Invalid value for '--port'" in result.err and "Traceback" not in result.err


def assert_one_line_error(result: Result, *needles: str) -> None:
    """One `error: ...` line on stderr holding every needle, and no traceback."""
    assert result.err.startswith("error: "), result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "Traceback" not in result.err + result.out
    for needle in needles:
        assert needle in result.err, (needle, result.err)
