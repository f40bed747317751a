"""A KubeRay `RayCluster` (ray.io/v1) for running flows on Kubernetes: `plinth deploy k8s --ray`.

One head and one worker group, all from the same image (which must hold Ray, plinth and the
flows' packages at the Ray version the cluster declares). GPUs go to the workers only. With
`autoscale`, KubeRay's autoscaler moves the worker count between its bounds.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plinth.core.errors import InvalidInput
from plinth.deploy.k8s import Written
from plinth.deploy.k8s_common import (
    HOME,
    Autoscale,
    Resources,
    check_name,
    check_namespace,
    check_secret_name,
    container_security,
    gpu_tolerations,
    labels,
    metadata,
    settings_env,
)
from plinth.deploy.k8s_files import to_yaml, write_folder
from plinth.deploy.k8s_objects import check_image, kustomization
from plinth.deploy.k8s_secrets import STORE_KEYS, secrets_doc

HEAD_PORTS = (("gcs", 6379), ("dashboard", 8265), ("client", 10001))
"""The head's ports: cluster state, dashboard (job submission), Ray client."""


@dataclass(frozen=True)
class RayOptions:
    """How to run a Ray cluster on Kubernetes.

    Args:
        image: the image of the head and the workers.
        ray_version: the Ray version in the image (KubeRay needs it).
        name: the RayCluster's name.
        namespace: its namespace.
        workers: worker pods, when not autoscaled.
        autoscale: MIN..MAX worker pods, scaled by KubeRay's autoscaler.
        resources: CPU and memory of every pod; GPUs of each worker.
        secret: the settings Secret; None: `<name>-settings`.

    Raises:
        InvalidInput: a name, namespace, image or worker count is not valid.
    """

    image: str
    ray_version: str
    name: str = "plinth-ray"
    namespace: str = "default"
    workers: int = 2
    autoscale: Autoscale | None = None
    resources: Resources = field(default_factory=Resources)
    secret: str | None = None

    def __post_init__(self) -> None:
        check_image(self.image)
        check_name(self.name)
        check_namespace(self.namespace)
        if self.secret is not None:
            check_secret_name(self.secret)
        if self.workers < 0:
            raise InvalidInput(f"--workers {self.workers} is negative; give 0 or more worker pods.")
        if not self.ray_version or any(c.isspace() for c in self.ray_version):
            raise InvalidInput(f"--ray-version {self.ray_version!r:.40} is not a version; give e.g. 2.40.0.")

    @property
    def settings_secret(self) -> str:
        """The Secret whose keys become the containers' environment."""
        return self.secret or f"{self.name}-settings"


def installed_ray_version() -> str:
    """The version of Ray installed here: the default of the cluster's `rayVersion`.

    Raises:
        InvalidInput: Ray is not installed; the message asks for --ray-version.
    """
    try:
        return importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        raise InvalidInput(
            "Ray is not installed here, so its version is unknown; give the image's Ray version "
            "with --ray-version, e.g. 2.40.0."
        ) from None


def ray_container(options: RayOptions, name: str, resources: Resources, ports: bool) -> dict[str, Any]:
    """A Ray container: the image, settings from the Secret, scratch and shared-memory volumes."""
    spec: dict[str, Any] = {"name": name, "image": options.image}
    if ports:
        spec["ports"] = [{"name": port, "containerPort": number} for port, number in HEAD_PORTS]
    spec["env"] = [{"name": "PLINTH_HOME", "value": HOME}]
    spec["envFrom"] = settings_env(options.settings_secret)
    spec["resources"] = resources.spec()
    spec["securityContext"] = container_security(read_only=False)
    # Ray's sessions live under /tmp/ray; its object store needs more /dev/shm than the default
    spec["volumeMounts"] = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "plinth-home", "mountPath": HOME},
        {"name": "shm", "mountPath": "/dev/shm"},
    ]
    return spec


def pod_template(options: RayOptions, tags: dict[str, str], main: dict[str, Any], gpu: int) -> dict[str, Any]:
    """A pod template of one Ray container and its volumes."""
    spec: dict[str, Any] = {
        "containers": [main],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "plinth-home", "emptyDir": {}},
            {"name": "shm", "emptyDir": {"medium": "Memory"}},
        ],
    }
    if gpu:
        spec["tolerations"] = gpu_tolerations(gpu)
    return {"metadata": {"labels": dict(tags)}, "spec": spec}


def ray_cluster(options: RayOptions) -> dict[str, Any]:
    """The RayCluster object."""
    tags = labels(options.name, "ray-cluster", options.ray_version)
    head_resources = Resources(cpu=options.resources.cpu, memory=options.resources.memory)
    head = ray_container(options, "ray-head", head_resources, ports=True)
    worker = ray_container(options, "ray-worker", options.resources, ports=False)
    low, high = (
        (options.autoscale.low, options.autoscale.high) if options.autoscale else (options.workers,) * 2
    )
    spec: dict[str, Any] = {"rayVersion": options.ray_version}
    if options.autoscale is not None:
        spec["enableInTreeAutoscaling"] = True
    spec["headGroupSpec"] = {
        "serviceType": "ClusterIP",
        "rayStartParams": {"dashboard-host": "0.0.0.0"},
        "template": pod_template(options, tags, head, 0),
    }
    spec["workerGroupSpecs"] = [
        {
            "groupName": "gpu-workers" if options.resources.gpu else "workers",
            "replicas": low,
            "minReplicas": low,
            "maxReplicas": high,
            "rayStartParams": {},
            "template": pod_template(options, tags, worker, options.resources.gpu),
        }
    ]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": metadata(options.name, options.namespace, tags),
        "spec": spec,
    }


def ray_manifests(options: RayOptions) -> dict[str, dict[str, Any]]:
    """The RayCluster and its kustomization, by file name."""
    return {"raycluster.yaml": ray_cluster(options), "kustomization.yaml": kustomization(["raycluster.yaml"])}


def deploy_ray(out: str | os.PathLike[str], *, force: bool = False, **options: Any) -> Written:
    """Write a RayCluster for running flows into folder `out`.

    Args:
        out: the output folder; written atomically, refused when not empty unless `force`.
        force: replace the content of a non-empty `out`.
        options: the fields of `RayOptions`; `ray_version` defaults to the Ray installed here.

    Raises:
        InvalidInput: a bad option, or no --ray-version and no Ray installed here.
        ConflictError: `out` is not empty and `force` is not set.
    """
    if not options.get("ray_version"):
        options["ray_version"] = installed_ray_version()
    chosen = RayOptions(**options)
    header = f"Generated by `plinth deploy k8s --ray` (Ray {chosen.ray_version}); needs the KubeRay operator."
    files = {file: to_yaml(obj, header) for file, obj in ray_manifests(chosen).items()}
    files["SECRETS.md"] = secrets_doc(
        what=f"Ray cluster {chosen.name}",
        settings=chosen.settings_secret,
        keys=STORE_KEYS,
        notes=[
            "Flows running on this cluster log runs, metrics and artifacts to PLINTH_STORE "
            "and PLINTH_ARTIFACTS."
        ],
    )
    paths = write_folder(out, files, force=force)
    return Written(Path(out), tuple(paths), f"Ray cluster {chosen.name}")
