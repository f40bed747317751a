"""`plinth deploy k8s --server`: the team server's manifests, with its settings from Secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from k8s_checks import assert_clean_error, by_kind, run, validate_folder

IMAGE = "registry.example.com/plinth-server:1"


def deploy_server(capsys: Any, out: Path, *args: str) -> dict[str, dict[str, Any]]:
    """Run `plinth deploy k8s --server` with `args`, check it worked, return the valid objects."""
    result = run(capsys, "deploy", "k8s", "--server", "--image", IMAGE, "-o", str(out), *args)
    assert result.code == 0, result.err
    return by_kind(validate_folder(out))


def server_container(kinds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def test_the_team_server_runs_plinth_server_with_probes_and_a_scrape_token(
    capsys: Any, tmp_path: Path
) -> None:
    out = tmp_path / "server"
    kinds = deploy_server(capsys, out)

    assert set(kinds) == {"Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor", "Kustomization"}
    container = server_container(kinds)
    assert [*container["command"], *container["args"]] == [
        "plinth", "server", "--host", "0.0.0.0", "--port", "8080",
    ]  # fmt: skip
    assert container["ports"][0]["containerPort"] == 8080
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["envFrom"] == [{"secretRef": {"name": "plinth-server-settings", "optional": True}}]
    assert container["env"] == [{"name": "PLINTH_HOME", "value": "/home/plinth/.plinth"}]
    assert kinds["Deployment"]["metadata"]["labels"]["app.kubernetes.io/component"] == "team-server"
    endpoint = kinds["ServiceMonitor"]["spec"]["endpoints"][0]
    assert endpoint["bearerTokenSecret"] == {"name": "plinth-server-metrics-token", "key": "token"}

    secrets = (out / "SECRETS.md").read_text()
    for key in [
        "PLINTH_STORE",
        "PLINTH_ARTIFACTS",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PLINTH_OIDC_SECRET",
    ]:
        assert f"`{key}`" in secrets
    assert "--role admin" in secrets and "PostgreSQL" in secrets


def test_a_config_secret_is_mounted_and_passed_with_config(capsys: Any, tmp_path: Path) -> None:
    out = tmp_path / "server"
    kinds = deploy_server(capsys, out, "--config-secret", "plinth-server-toml")
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert {"name": "config", "secret": {"secretName": "plinth-server-toml"}} in pod["volumes"]
    container = server_container(kinds)
    assert {"name": "config", "mountPath": "/etc/plinth", "readOnly": True} in container["volumeMounts"]
    assert container["args"][-2:] == ["--config", "/etc/plinth/server.toml"]
    assert "plinth-server-toml" in (out / "SECRETS.md").read_text()


def test_server_options_shape_the_objects(capsys: Any, tmp_path: Path) -> None:
    kinds = deploy_server(
        capsys,
        tmp_path / "s",
        "--name",
        "mlops",
        "--namespace",
        "platform",
        "--autoscale",
        "2..4",
        "--port",
        "9090",
    )
    assert kinds["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 4
    assert kinds["Deployment"]["spec"]["replicas"] == 2
    assert server_container(kinds)["args"][-1] == "9090"
    assert all(o["metadata"]["namespace"] == "platform" for k, o in kinds.items() if k != "Kustomization")
    assert all(o["metadata"]["name"] == "mlops" for k, o in kinds.items() if k != "Kustomization")


def test_no_server_secret_reaches_any_file(
    capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "pw-9f8e7d"
    monkeypatch.setenv("PLINTH_STORE", f"postgresql+psycopg://plinth:{secret}@db/plinth")
    monkeypatch.setenv("PLINTH_ADMIN_TOKEN", secret)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    out = tmp_path / "server"
    deploy_server(capsys, out)
    for path in out.iterdir():
        assert secret not in path.read_text(), path


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--server", "churn@champion"], "--server deploys no model"),
        (["--server", "--ray"], "not both"),
        (["--server", "--metrics-auth"], "--metrics-auth does not apply"),
        (["--server", "--workers", "2"], "--workers does not apply"),
        (["--server", "--config-secret", "Not_Valid"], "--config-secret"),
        (["--server", "--name", "-bad"], "not a valid Kubernetes name"),
        (["--server", "--autoscale", "3..1"], "MIN <= MAX"),
    ],
)
def test_bad_server_input_is_a_clean_error_and_writes_nothing(
    capsys: Any, tmp_path: Path, args: list[str], needle: str
) -> None:
    out = tmp_path / "server"
    result = run(capsys, "deploy", "k8s", *args, "--image", IMAGE, "-o", str(out))
    assert_clean_error(result, 2, needle)
    assert list(tmp_path.glob("server*")) == []
