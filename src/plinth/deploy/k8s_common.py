"""Pieces every generated Kubernetes manifest shares: names, quantities, labels, pod hardening.

Everything here is pure: values are checked and turned into plain dicts that `yaml.safe_dump`
writes as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from plinth.core.errors import InvalidInput

KUBERNETES_VERSION = "1.30"
"""The Kubernetes API version the manifests are written for (and validated against)."""

HOME = "/home/plinth/.plinth"
"""PLINTH_HOME inside the containers: a scratch volume, since the root filesystem is read-only."""

RUN_AS = 10001
"""The user and group id the model and team-server containers run as."""

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SERVICE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_CPU = re.compile(r"(\d+m|\d+(\.\d+)?)")
_MEMORY = re.compile(r"\d+(\.\d+)?([EPTGMK]i|[EPTGMk])?")
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def check_name(value: str, what: str = "--name") -> str:
    """`value` if it can name a Deployment and its Service: a DNS label that starts with a letter.

    Raises:
        InvalidInput: it is empty, longer than 63 characters, or has characters other than
            lower-case letters, digits and '-' (or starts with a digit, ends with '-').
    """
    if len(value) > 63 or not _SERVICE.fullmatch(value):
        raise InvalidInput(
            f"{what} {value!r:.80} is not a valid Kubernetes name: use at most 63 lower-case "
            "letters, digits and '-', starting with a letter and ending with a letter or digit, "
            "e.g. 'churn-model'."
        )
    return value


def check_namespace(value: str) -> str:
    """`value` if it is a valid namespace (a DNS-1123 label).

    Raises:
        InvalidInput: it is not one.
    """
    if len(value) > 63 or not _LABEL.fullmatch(value):
        raise InvalidInput(
            f"--namespace {value!r:.80} is not a valid Kubernetes namespace: use at most 63 "
            "lower-case letters, digits and '-', starting and ending with a letter or digit."
        )
    return value


def check_secret_name(value: str, what: str = "--secret") -> str:
    """`value` if it can name a Secret (a DNS-1123 subdomain).

    Raises:
        InvalidInput: it is not one.
    """
    if len(value) > 253 or not _SUBDOMAIN.fullmatch(value):
        raise InvalidInput(
            f"{what} {value!r:.80} is not a valid Secret name: use lower-case letters, digits, "
            "'-' and '.', starting and ending with a letter or digit, e.g. 'churn-settings'."
        )
    return value


def name_from(model_name: str) -> str:
    """A Kubernetes name made from a model name (`org/Churn_v2` → `org-churn-v2`).

    Raises:
        InvalidInput: nothing usable is left; the message asks for --name.
    """
    made = re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-")[:63].rstrip("-")
    if not _SERVICE.fullmatch(made):
        raise InvalidInput(
            f"Model name {model_name!r:.80} does not make a valid Kubernetes name; "
            "pass one with --name, e.g. --name churn-model."
        )
    return made


def label_value(text: str) -> str:
    """`text` as a valid label value: other characters become '.', cut to 63 characters."""
    return _LABEL_VALUE_BAD.sub(".", text)[:63].strip("._-")


@dataclass(frozen=True)
class Autoscale:
    """Bounds of a HorizontalPodAutoscaler (or of a Ray worker group): MIN..MAX replicas."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> Autoscale:
        """`"2..10"` as `Autoscale(2, 10)`.

        Raises:
            InvalidInput: not two integers joined by '..' with 1 <= MIN <= MAX.
        """
        low, sep, high = text.partition("..")
        if not sep or not low.strip().isdigit() or not high.strip().isdigit():
            raise InvalidInput(f"--autoscale {text!r:.40} is not MIN..MAX; write e.g. --autoscale 2..10.")
        bounds = cls(int(low), int(high))
        if not 1 <= bounds.low <= bounds.high:
            raise InvalidInput(
                f"--autoscale {text!r:.40}: need 1 <= MIN <= MAX (got MIN {bounds.low}, "
                f"MAX {bounds.high}); write e.g. --autoscale 2..10."
            )
        return bounds

    def __str__(self) -> str:
        return f"{self.low}..{self.high}"


@dataclass(frozen=True)
class Resources:
    """What one container asks for: CPU (`500m`, `2`), memory (`1Gi`) and whole GPUs."""

    cpu: str = "500m"
    memory: str = "1Gi"
    gpu: int = 0

    def __post_init__(self) -> None:
        if not _CPU.fullmatch(self.cpu) or _is_zero(self.cpu):
            raise InvalidInput(f"--cpu {self.cpu!r:.40} is not a CPU quantity; write e.g. 500m or 2.")
        if not _MEMORY.fullmatch(self.memory) or _is_zero(self.memory):
            raise InvalidInput(
                f"--memory {self.memory!r:.40} is not a memory quantity; write e.g. 512Mi or 2Gi."
            )
        if self.gpu < 0:
            raise InvalidInput(f"--gpu {self.gpu} is negative; give a whole number of GPUs, e.g. --gpu 1.")

    def spec(self) -> dict[str, Any]:
        """The container's `resources`: requests equal limits; GPUs as `nvidia.com/gpu` limits."""
        amounts: dict[str, Any] = {"cpu": self.cpu, "memory": self.memory}
        limits = dict(amounts)
        if self.gpu:
            limits["nvidia.com/gpu"] = self.gpu
        return {"requests": amounts, "limits": limits}


def _is_zero(quantity: str) -> bool:
    digits = re.match(r"[\d.]+", quantity)
    return digits is None or float(digits.group()) == 0


def labels(name: str, component: str, version: str | None = None) -> dict[str, str]:
    """The recommended `app.kubernetes.io/*` labels of every object of one deployment."""
    out = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "plinth",
    }
    if version is not None:
        out["app.kubernetes.io/version"] = label_value(version)
    return out


def selector(name: str) -> dict[str, str]:
    """The labels that pick a deployment's pods: stable across versions (selectors are immutable)."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}


def metadata(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """An object's `metadata`: its name, namespace and labels."""
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def pod_security() -> dict[str, Any]:
    """The pod's `securityContext`: a fixed non-root user, the runtime's default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security(read_only: bool = True) -> dict[str, Any]:
    """A container's `securityContext`: no privilege escalation, no capabilities."""
    out: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    if read_only:
        out["readOnlyRootFilesystem"] = True
    return out


def scratch_volumes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Writable emptyDir volumes for /tmp and PLINTH_HOME, and their mounts."""
    volumes = [{"name": "tmp", "emptyDir": {}}, {"name": "plinth-home", "emptyDir": {}}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "plinth-home", "mountPath": HOME}]
    return volumes, mounts


def http_probe(path: str, period_s: int, failures: int) -> dict[str, Any]:
    """An HTTP GET probe on the container's `http` port."""
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period_s,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def probes() -> dict[str, Any]:
    """Startup (up to 5 minutes to load), liveness (`/healthz`) and readiness (`/readyz`) probes."""
    return {
        "startupProbe": http_probe("/healthz", 5, 60),
        "livenessProbe": http_probe("/healthz", 10, 3),
        "readinessProbe": http_probe("/readyz", 5, 2),
    }


def gpu_tolerations(gpu: int) -> list[dict[str, Any]]:
    """Tolerate the taint GPU node pools commonly carry, when the pod asks for GPUs."""
    if not gpu:
        return []
    return [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def settings_env(secret: str) -> list[dict[str, Any]]:
    """`envFrom` of the named settings Secret (optional, so pods start before it exists)."""
    return [{"secretRef": {"name": secret, "optional": True}}]
