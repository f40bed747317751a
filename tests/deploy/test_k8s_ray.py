"""`plinth deploy k8s --ray`: a KubeRay RayCluster for running flows on Kubernetes."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest
from k8s_checks import assert_clean_error, run, validate_folder

IMAGE = "registry.example.com/flows:1"


def deploy_ray(capsys: Any, out: Path, *args: str) -> dict[str, Any]:
    """Run `plinth deploy k8s --ray` with `args`, check it worked, return the valid RayCluster."""
    result = run(capsys, "deploy", "k8s", "--ray", "--image", IMAGE, "-o", str(out), *args)
    assert result.code == 0, result.err
    objects = validate_folder(out)
    assert sorted(objects) == ["kustomization.yaml", "raycluster.yaml"]
    return objects["raycluster.yaml"]


def containers(cluster: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The head's container and the worker group's."""
    spec = cluster["spec"]
    (head,) = spec["headGroupSpec"]["template"]["spec"]["containers"]
    (group,) = spec["workerGroupSpecs"]
    (worker,) = group["template"]["spec"]["containers"]
    return head, worker


def test_a_ray_cluster_has_a_head_and_a_fixed_worker_group(capsys: Any, tmp_path: Path) -> None:
    out = tmp_path / "ray"
    cluster = deploy_ray(capsys, out, "--ray-version", "2.40.0")
    spec = cluster["spec"]
    assert spec["rayVersion"] == "2.40.0"
    assert "enableInTreeAutoscaling" not in spec
    group = spec["workerGroupSpecs"][0]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (2, 2, 2)
    head, worker = containers(cluster)
    assert head["image"] == worker["image"] == IMAGE
    assert {p["containerPort"] for p in head["ports"]} == {6379, 8265, 10001}
    assert "nvidia.com/gpu" not in worker["resources"]["limits"]
    assert head["envFrom"] == [{"secretRef": {"name": "plinth-ray-settings", "optional": True}}]
    assert {m["mountPath"] for m in worker["volumeMounts"]} >= {"/tmp", "/dev/shm"}
    assert "PLINTH_STORE" in (out / "SECRETS.md").read_text()


def test_gpus_go_to_the_workers_only(capsys: Any, tmp_path: Path) -> None:
    cluster = deploy_ray(capsys, tmp_path / "ray", "--ray-version", "2.40.0", "--gpu", "2", "--workers", "3")
    head, worker = containers(cluster)
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert "nvidia.com/gpu" not in head["resources"]["limits"]
    assert cluster["spec"]["workerGroupSpecs"][0]["replicas"] == 3
    assert (
        cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["tolerations"][0]["key"]
        == "nvidia.com/gpu"
    )


def test_autoscale_turns_on_the_kuberay_autoscaler(capsys: Any, tmp_path: Path) -> None:
    cluster = deploy_ray(capsys, tmp_path / "ray", "--ray-version", "2.40.0", "--autoscale", "1..8")
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    group = cluster["spec"]["workerGroupSpecs"][0]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (1, 1, 8)


def test_namespace_and_name_apply(capsys: Any, tmp_path: Path) -> None:
    cluster = deploy_ray(
        capsys, tmp_path / "ray", "--ray-version", "2.40.0", "--name", "flows", "--namespace", "ml"
    )
    assert cluster["metadata"]["name"] == "flows" and cluster["metadata"]["namespace"] == "ml"
    head, _ = containers(cluster)
    assert head["envFrom"][0]["secretRef"]["name"] == "flows-settings"


def test_the_ray_version_defaults_to_the_installed_one(capsys: Any, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    cluster = deploy_ray(capsys, tmp_path / "ray")
    assert cluster["spec"]["rayVersion"] == importlib.metadata.version("ray")


def test_without_ray_installed_the_version_must_be_given(
    capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name == "ray":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    result = run(capsys, "deploy", "k8s", "--ray", "--image", IMAGE, "-o", str(tmp_path / "ray"))
    assert_clean_error(result, 2, "--ray-version")
    assert not (tmp_path / "ray").exists()


V = ["--ray-version", "2.40.0"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["churn@champion", *V], "--ray deploys no model"),
        (["--replicas", "2", *V], "--replicas does not apply"),
        (["--metrics-auth", *V], "--metrics-auth does not apply"),
        (["--port", "9000", *V], "--port does not apply"),
        (["--name", "Ray", *V], "not a valid Kubernetes name"),
        (["--namespace", "-x", *V], "namespace"),
        (["--autoscale", "0..2", *V], "MIN <= MAX"),
        (["--workers", "-1", *V], "--workers"),
        (["--ray-version", "2 40"], "--ray-version"),
    ],
)
def test_bad_ray_input_is_a_clean_error_and_writes_nothing(
    capsys: Any, tmp_path: Path, args: list[str], needle: str
) -> None:
    result = run(capsys, "deploy", "k8s", "--ray", "--image", IMAGE, *args, "-o", str(tmp_path / "ray"))
    assert result.code == 2 and needle in result.err, result.err
    assert "Traceback" not in result.err
    assert list(tmp_path.glob("ray*")) == []


def test_a_bad_image_reference_is_refused(capsys: Any, tmp_path: Path) -> None:
    result = run(capsys, "deploy", "k8s", "--ray", "--image", "bad image", *V, "-o", str(tmp_path / "ray"))
    assert_clean_error(result, 2, "--image")
