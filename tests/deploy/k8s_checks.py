"""Helpers of the `plinth deploy k8s` tests: run the command, read the folder, validate every object.

Core objects are validated with kubernetes-validate against the API of `KUBERNETES_VERSION`
(strict: unknown fields fail); ServiceMonitor and RayCluster against the JSON Schemas in
resources/, and a RayCluster's pod templates against the Kubernetes PodTemplate schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import yaml  # type: ignore[import-untyped]

from plinth.cli.main import main
from plinth.deploy.k8s_common import KUBERNETES_VERSION

RESOURCES = Path(__file__).parent / "resources"
CORE_KINDS = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
CRD_SCHEMAS = {"ServiceMonitor": "servicemonitor.schema.json", "RayCluster": "raycluster.schema.json"}


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(capsys: Any, *args: str) -> Result:
    """`plinth ARGS...` in-process: its exit code, stdout and stderr."""
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def assert_clean_error(result: Result, code: int, *needles: str) -> None:
    """A failure: that exit code, one `error: ...` on stderr, no traceback."""
    assert result.code == code, (result.code, result.out, result.err)
    assert result.err.startswith("error: "), result.err
    assert "Traceback" not in result.err + result.out
    for needle in needles:
        assert needle in result.err, (needle, result.err)


def read_folder(folder: Path) -> dict[str, dict[str, Any]]:
    """Every YAML file of `folder` by name (one object each, parsed with safe_load_all)."""
    objects = {}
    for path in sorted(folder.glob("*.yaml")):
        docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        assert len(docs) == 1, path
        objects[path.name] = docs[0]
    return objects


def by_kind(objects: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The objects keyed by kind (each kind appears once)."""
    kinds = {obj["kind"]: obj for obj in objects.values()}
    assert len(kinds) == len(objects)
    return kinds


def validate(obj: dict[str, Any]) -> None:
    """Validate one object against the schema of its kind; raises on the first problem."""
    kind = obj["kind"]
    if kind in CORE_KINDS:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    elif kind in CRD_SCHEMAS:
        schema = json.loads((RESOURCES / CRD_SCHEMAS[kind]).read_text())
        jsonschema.validate(obj, schema, cls=jsonschema.Draft202012Validator)
        if kind == "RayCluster":
            for template in _ray_templates(obj):
                pod = {
                    "apiVersion": "v1",
                    "kind": "PodTemplate",
                    "metadata": {"name": "t"},
                    "template": template,
                }
                kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    elif kind == "Kustomization":
        assert obj["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
        assert all(isinstance(f, str) and f.endswith(".yaml") for f in obj["resources"])
    else:
        raise AssertionError(f"no schema for kind {kind}")


def validate_folder(folder: Path) -> dict[str, dict[str, Any]]:
    """Read and validate every object in `folder`; check the kustomization lists exactly them."""
    objects = read_folder(folder)
    for obj in objects.values():
        validate(obj)
    listed = objects["kustomization.yaml"]["resources"]
    assert sorted(listed) == sorted(name for name in objects if name != "kustomization.yaml")
    return objects


def _ray_templates(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]
    return [spec["headGroupSpec"]["template"], *(g["template"] for g in spec.get("workerGroupSpecs", []))]
