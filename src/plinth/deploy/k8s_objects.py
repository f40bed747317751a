"""The objects of an HTTP service on Kubernetes: Deployment, Service, autoscaler, disruption
budget and Prometheus ServiceMonitor, built from one `K8sOptions`.

The model server (`plinth deploy k8s NAME@ALIAS`) and the team server (`--server`) are both
such a service; each adds its own container arguments, environment and labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plinth.core.errors import InvalidInput
from plinth.deploy.k8s_common import (
    HOME,
    Autoscale,
    Resources,
    check_name,
    check_namespace,
    check_secret_name,
    container_security,
    gpu_tolerations,
    metadata,
    pod_security,
    probes,
    scratch_volumes,
    selector,
    settings_env,
)

GRACE_S = 40
"""Seconds Kubernetes waits after SIGTERM: the preStop pause plus uvicorn's 30 s graceful timeout."""

DRAIN_S = 5
"""Seconds a terminating pod keeps serving (preStop) while endpoints stop sending it traffic."""

CPU_TARGET = 70
"""Average CPU utilization, in percent of the request, the autoscaler keeps pods at."""


@dataclass(frozen=True)
class K8sOptions:
    """How to run an HTTP service on Kubernetes.

    Args:
        image: the container image (a tag or REPO@sha256:…).
        name: the Deployment's and Service's name.
        namespace: the namespace of every object.
        replicas: pods to run; None: 1, or MIN of `autoscale`.
        autoscale: run a HorizontalPodAutoscaler between these bounds.
        resources: CPU, memory and GPUs of each pod.
        port: the port the container listens on.
        secret: the Secret the settings come from; None: `<name>-settings`.
        metrics_auth: /metrics needs a token; the ServiceMonitor reads it from `<name>-metrics-token`.
        service_monitor: write a Prometheus Operator ServiceMonitor.

    Raises:
        InvalidInput: a name, namespace, port or replica count is not valid, or both
            `replicas` and `autoscale` are given.
    """

    image: str
    name: str
    namespace: str = "default"
    replicas: int | None = None
    autoscale: Autoscale | None = None
    resources: Resources = field(default_factory=Resources)
    port: int = 8000
    secret: str | None = None
    metrics_auth: bool = False
    service_monitor: bool = True

    def __post_init__(self) -> None:
        check_image(self.image)
        check_name(self.name)
        check_namespace(self.namespace)
        if self.secret is not None:
            check_secret_name(self.secret)
        if not 1 <= self.port <= 65535:
            raise InvalidInput(f"--port {self.port} is out of range; give a port from 1 to 65535.")
        if self.replicas is not None and self.autoscale is not None:
            raise InvalidInput(
                "Give --replicas or --autoscale, not both: with --autoscale MIN..MAX the "
                "Deployment starts with MIN replicas and the autoscaler sets the count."
            )
        if self.replicas is not None and self.replicas < 1:
            raise InvalidInput(f"--replicas {self.replicas}: run at least 1 replica.")

    @property
    def settings_secret(self) -> str:
        """The Secret whose keys become the container's environment."""
        return self.secret or f"{self.name}-settings"

    @property
    def metrics_secret(self) -> str:
        """The Secret holding the token the ServiceMonitor scrapes /metrics with (key `token`)."""
        return f"{self.name}-metrics-token"

    @property
    def replica_count(self) -> int:
        """Pods the Deployment starts with."""
        if self.autoscale is not None:
            return self.autoscale.low
        return self.replicas or 1


def check_image(image: str) -> str:
    """`image` if it can be a container image reference (no blanks, not empty).

    Raises:
        InvalidInput: it cannot.
    """
    if not image or any(c.isspace() for c in image) or image.startswith("-"):
        raise InvalidInput(
            f"--image {image!r:.80} is not an image reference; give e.g. "
            "registry.example.com/churn:3 or registry.example.com/churn@sha256:…"
        )
    return image


def container(
    options: K8sOptions,
    *,
    name: str,
    args: list[str] | None = None,
    env: list[dict[str, Any]] | None = None,
    mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The service's container: image, port `http`, resources, probes, settings and hardening.

    `args` replace the image's command when given.
    """
    spec: dict[str, Any] = {"name": name, "image": options.image}
    if args is not None:
        spec["command"] = args[:1]
        spec["args"] = args[1:]
    spec["ports"] = [{"name": "http", "containerPort": options.port, "protocol": "TCP"}]
    spec["env"] = [{"name": "PLINTH_HOME", "value": HOME}, *(env or [])]
    spec["envFrom"] = settings_env(options.settings_secret)
    spec["resources"] = options.resources.spec()
    spec.update(probes())
    spec["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(DRAIN_S)]}}}
    spec["securityContext"] = container_security()
    spec["volumeMounts"] = [*scratch_volumes()[1], *(mounts or [])]
    return spec


def deployment(
    options: K8sOptions,
    labels: dict[str, str],
    main: dict[str, Any],
    *,
    volumes: list[dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment of `main` that rolls out without dropping capacity (maxUnavailable 0)."""
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": GRACE_S,
        "securityContext": pod_security(),
        "containers": [main],
        "volumes": [*scratch_volumes()[0], *(volumes or [])],
    }
    tolerations = gpu_tolerations(options.resources.gpu)
    if tolerations:
        pod["tolerations"] = tolerations
    template_meta: dict[str, Any] = {"labels": dict(labels)}
    if annotations:
        template_meta["annotations"] = dict(annotations)
    meta = metadata(options.name, options.namespace, labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": options.replica_count,
            "selector": {"matchLabels": selector(options.name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": template_meta, "spec": pod},
        },
    }


def service(options: K8sOptions, labels: dict[str, str]) -> dict[str, Any]:
    """A ClusterIP Service: port 80, named `http`, to the container's `http` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(options.name, options.namespace, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(options.name),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def disruption_budget(options: K8sOptions, labels: dict[str, str]) -> dict[str, Any]:
    """A PodDisruptionBudget letting voluntary disruptions (node drains) take one pod at a time.

    `maxUnavailable: 1` rather than `minAvailable: 1`: with a single replica the latter would
    block every node drain forever; with several, both keep all but one pod serving.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(options.name, options.namespace, labels),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(options.name)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def autoscaler(options: K8sOptions, labels: dict[str, str]) -> dict[str, Any] | None:
    """An autoscaling/v2 HorizontalPodAutoscaler on CPU utilization; None without --autoscale."""
    if options.autoscale is None:
        return None
    target = {"type": "Utilization", "averageUtilization": CPU_TARGET}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(options.name, options.namespace, labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": options.name},
            "minReplicas": options.autoscale.low,
            "maxReplicas": options.autoscale.high,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
        },
    }


def service_monitor(options: K8sOptions, labels: dict[str, str], *, token: bool) -> dict[str, Any] | None:
    """A Prometheus Operator ServiceMonitor scraping /metrics on the `http` port.

    With `token`, Prometheus sends the bearer token in key `token` of `options.metrics_secret`.
    None when `options.service_monitor` is off.
    """
    if not options.service_monitor:
        return None
    endpoint: dict[str, Any] = {"port": "http", "path": "/metrics", "interval": "30s", "scheme": "http"}
    if token:
        endpoint["bearerTokenSecret"] = {"name": options.metrics_secret, "key": "token"}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(options.name, options.namespace, labels),
        "spec": {
            "selector": {"matchLabels": selector(options.name)},
            "namespaceSelector": {"matchNames": [options.namespace]},
            "endpoints": [endpoint],
        },
    }


def kustomization(files: list[str]) -> dict[str, Any]:
    """A kustomization listing `files`, so `kubectl apply -k DIR` applies them all."""
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": files}


def service_objects(
    options: K8sOptions, labels: dict[str, str], main: dict[str, Any], **pod: Any
) -> dict[str, dict[str, Any]]:
    """Every object of the service by file name, kustomization.yaml included.

    `pod` goes to `deployment` (volumes, annotations); the ServiceMonitor sends a token when
    `options.metrics_auth`.
    """
    made = {
        "deployment.yaml": deployment(options, labels, main, **pod),
        "service.yaml": service(options, labels),
        "pdb.yaml": disruption_budget(options, labels),
        "hpa.yaml": autoscaler(options, labels),
        "servicemonitor.yaml": service_monitor(options, labels, token=options.metrics_auth),
    }
    objects = {file: obj for file, obj in made.items() if obj is not None}
    objects["kustomization.yaml"] = kustomization(list(objects))
    return objects
