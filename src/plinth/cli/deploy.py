"""`plinth deploy …`: manifests that run a model, the team server or flows on a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from plinth.cli.render import say
from plinth.core.errors import InvalidInput

if TYPE_CHECKING:
    from plinth.deploy.k8s import Written

ONLY_FOR = {
    "config_secret": ("--config-secret", {"server"}),
    "workers": ("--workers", {"ray"}),
    "ray_version": ("--ray-version", {"ray"}),
    "replicas": ("--replicas", {"model", "server"}),
    "port": ("--port", {"model", "server"}),
    "metrics_auth": ("--metrics-auth", {"model"}),
    "no_service_monitor": ("--no-service-monitor", {"model", "server"}),
}
"""Options that apply to some kinds of deployment only: their flag and those kinds."""


@click.group("deploy", short_help="Deployment manifests: Kubernetes for models, the server, Ray.")
def deploy() -> None:
    """Write what it takes to run a model, the team server or flows on a cluster."""


@deploy.command("k8s", short_help="Kubernetes manifests for a model image, the team server or Ray.")
@click.argument("ref", required=False)
@click.option(
    "--image", required=True, metavar="IMAGE", help="Container image to run (tag or REPO@sha256:…)."
)
@click.option("--server", is_flag=True, help="Deploy the team server (`plinth server`) instead of a model.")
@click.option("--ray", is_flag=True, help="Write a KubeRay RayCluster for running flows instead.")
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Folder to write the manifests to (must be new or empty).",
)
@click.option("--force", is_flag=True, help="Replace the content of a non-empty output folder.")
@click.option("--name", default=None, help="Name of the objects [default: from the model name].")
@click.option("--namespace", default="default", show_default=True, help="Namespace of every object.")
@click.option("--replicas", type=click.IntRange(min=1), default=None, help="Pods to run [default: 1].")
@click.option(
    "--autoscale", default=None, metavar="MIN..MAX", help="Autoscale between MIN and MAX pods (Ray: workers)."
)
@click.option(
    "--gpu", type=click.IntRange(min=0), default=0, show_default=True, help="GPUs per pod (Ray: per worker)."
)
@click.option("--cpu", default="500m", show_default=True, help="CPU per pod, e.g. 500m or 2.")
@click.option("--memory", default="1Gi", show_default=True, help="Memory per pod, e.g. 512Mi or 2Gi.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port the image listens on [default: 8000; --server 8080].",
)
@click.option("--secret", default=None, help="Secret holding the settings [default: NAME-settings].")
@click.option(
    "--metrics-auth",
    is_flag=True,
    help="/metrics needs a viewer token (serve --auth); Prometheus reads it from NAME-metrics-token.",
)
@click.option("--no-service-monitor", is_flag=True, help="Write no Prometheus ServiceMonitor.")
@click.option(
    "--config-secret",
    default=None,
    help="--server: a Secret holding server.toml, mounted and passed with --config.",
)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="--ray: worker pods [default: 2].")
@click.option(
    "--ray-version", default=None, help="--ray: Ray version in the image [default: the one installed here]."
)
def k8s(ref: str | None, server: bool, ray: bool, out: Path, force: bool, **options: Any) -> None:
    """Write Kubernetes manifests into DIR: a model server for REF (NAME@ALIAS, NAME/VERSION),
    the team server (--server) or a Ray cluster (--ray).

    A model deployment is a hardened Deployment with probes and graceful shutdown, a Service,
    a PodDisruptionBudget, a HorizontalPodAutoscaler (--autoscale) and a Prometheus
    ServiceMonitor. Settings and credentials are read from Secrets, never written: SECRETS.md
    in DIR lists their keys. Apply with `kubectl apply -k DIR`.
    """
    from plinth.deploy.k8s_common import Autoscale, Resources

    kind = _kind(ref, server, ray)
    _refuse_foreign(kind, options)
    chosen = {key: value for key, value in options.items() if value is not None and key not in ONLY_FOR}
    chosen["autoscale"] = Autoscale.parse(options["autoscale"]) if options["autoscale"] else None
    chosen["resources"] = Resources(cpu=chosen.pop("cpu"), memory=chosen.pop("memory"), gpu=chosen.pop("gpu"))
    written = _write(kind, ref, out, force, chosen, options)
    say(f"Wrote {len(written.files)} files for {written.what} to {written.folder}:")
    for path in written.files:
        say(f"  {path.name}")
    say(f"Create the Secrets SECRETS.md lists, then: kubectl apply -k {written.folder}")


def _kind(ref: str | None, server: bool, ray: bool) -> str:
    """Which deployment the arguments ask for: model, server or ray."""
    if server and ray:
        raise InvalidInput("Give --server or --ray, not both.")
    if (server or ray) and ref is not None:
        flag = "--server" if server else "--ray"
        raise InvalidInput(f"{flag} deploys no model; drop {ref!r:.80}, or drop {flag} to deploy that model.")
    if ref is None and not (server or ray):
        raise InvalidInput(
            "Name the model to deploy (NAME@ALIAS or NAME/VERSION), or give --server or --ray."
        )
    return "server" if server else "ray" if ray else "model"


def _refuse_foreign(kind: str, options: dict[str, Any]) -> None:
    for key, (flag, kinds) in ONLY_FOR.items():
        if options.get(key) and kind not in kinds:
            what = {"model": "a model", "server": "--server", "ray": "--ray"}[kind]
            raise InvalidInput(f"{flag} does not apply to {what}; it is for {', '.join(sorted(kinds))} only.")


def _write(
    kind: str, ref: str | None, out: Path, force: bool, chosen: dict[str, Any], options: dict[str, Any]
) -> Written:
    """Call the writer of `kind` with the options that apply to it."""
    from plinth.deploy.k8s import deploy_model
    from plinth.deploy.k8s_ray import deploy_ray
    from plinth.deploy.k8s_server import deploy_server

    if kind == "ray":
        if options["workers"] is not None:
            chosen["workers"] = options["workers"]
        chosen["ray_version"] = options["ray_version"]
        return deploy_ray(out, force=force, **chosen)
    web = {"replicas": options["replicas"], "service_monitor": not options["no_service_monitor"]}
    if options["port"] is not None:
        web["port"] = options["port"]
    if kind == "server":
        return deploy_server(out, force=force, config_secret=options["config_secret"], **chosen, **web)
    return deploy_model(ref or "", out, force=force, metrics_auth=options["metrics_auth"], **chosen, **web)
