"""`plinth deploy k8s NAME@ALIAS`: manifests serving a registered model's image, validated against
the Kubernetes API schemas (and the ServiceMonitor CRD's), end to end through the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from k8s_checks import assert_clean_error, by_kind, run, validate_folder
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.core.entities import ModelVersion
from plinth.core.errors import InvalidInput
from plinth.deploy.k8s_common import Autoscale
from plinth.tracking.context import backend

IMAGE = "registry.example.com/churn:1"


@pytest.fixture
def model() -> ModelVersion:
    """Model `churn` with two versions; alias `champion` on version 1."""
    x, y = load_iris(return_X_y=True)
    first = plinth.register_model("churn", LogisticRegression(max_iter=500).fit(x, y), input_example=x[:3])
    plinth.register_model("churn", LogisticRegression(C=0.5, max_iter=500).fit(x, y), input_example=x[:3])
    plinth.set_alias("churn", "champion", first.version)
    return first


def deploy(capsys: Any, out: Path, *args: str) -> dict[str, dict[str, Any]]:
    """Run `plinth deploy k8s churn@champion` with `args`, check it worked, return the valid objects."""
    result = run(capsys, "deploy", "k8s", "churn@champion", "--image", IMAGE, "-o", str(out), *args)
    assert result.code == 0, result.err
    assert "kubectl apply -k" in result.out
    return by_kind(validate_folder(out))


def model_container(kinds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def test_a_model_deployment_is_valid_hardened_and_labelled(
    capsys: Any, tmp_path: Path, model: ModelVersion
) -> None:
    out = tmp_path / "k8s"
    kinds = deploy(capsys, out)

    assert set(kinds) == {"Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor", "Kustomization"}
    assert sorted(p.name for p in out.iterdir()) == sorted([*validate_folder(out), "SECRETS.md"])
    deployment = kinds["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["plinth.dev/model"] == "churn"
    assert labels["plinth.dev/model-version"] == str(model.version)
    assert labels["app.kubernetes.io/managed-by"] == "plinth"
    assert labels["app.kubernetes.io/version"] == str(model.version)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 40
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    container = model_container(kinds)
    assert container["image"] == IMAGE
    assert "command" not in container and "args" not in container  # the image's own `plinth serve --bundle`
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "startupProbe" in container
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/home/plinth/.plinth"}
    assert container["envFrom"] == [{"secretRef": {"name": "churn-settings", "optional": True}}]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]

    service = kinds["Service"]["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert kinds["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert "bearerTokenSecret" not in kinds["ServiceMonitor"]["spec"]["endpoints"][0]
    assert "churn-settings" in (out / "SECRETS.md").read_text()


def test_labels_carry_the_version_the_alias_names_now(
    capsys: Any, tmp_path: Path, model: ModelVersion
) -> None:
    plinth.set_alias("churn", "champion", model.version + 1)
    kinds = deploy(capsys, tmp_path / "k8s")
    labels = kinds["Deployment"]["metadata"]["labels"]
    assert labels["plinth.dev/model-version"] == str(model.version + 1)
    assert (
        kinds["Deployment"]["metadata"]["annotations"]["plinth.dev/model-ref"] == f"churn/{model.version + 1}"
    )


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (["--gpu", "2"], lambda k: model_container(k)["resources"]["limits"]["nvidia.com/gpu"] == 2),
        (
            ["--gpu", "1"],
            lambda k: (
                k["Deployment"]["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
            ),
        ),
        (
            ["--replicas", "3"],
            lambda k: k["Deployment"]["spec"]["replicas"] == 3 and "HorizontalPodAutoscaler" not in k,
        ),
        (
            ["--cpu", "2", "--memory", "4Gi"],
            lambda k: model_container(k)["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"},
        ),
        (["--port", "9000"], lambda k: model_container(k)["ports"][0]["containerPort"] == 9000),
        (
            ["--secret", "team-settings"],
            lambda k: model_container(k)["envFrom"][0]["secretRef"]["name"] == "team-settings",
        ),
        (
            ["--name", "churn-prod"],
            lambda k: all(
                o["metadata"]["name"] == "churn-prod" for n, o in k.items() if n != "Kustomization"
            ),
        ),
        (["--no-service-monitor"], lambda k: "ServiceMonitor" not in k),
    ],
)
def test_each_flag_changes_what_it_says(
    capsys: Any, tmp_path: Path, model: ModelVersion, args: list[str], check: Any
) -> None:
    assert check(deploy(capsys, tmp_path / "k8s", *args))


def test_autoscale_adds_a_cpu_autoscaler_and_starts_at_min(
    capsys: Any, tmp_path: Path, model: ModelVersion
) -> None:
    kinds = deploy(capsys, tmp_path / "k8s", "--autoscale", "2..6")
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "churn"}
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert kinds["Deployment"]["spec"]["replicas"] == 2


def test_every_object_is_in_the_namespace(capsys: Any, tmp_path: Path, model: ModelVersion) -> None:
    kinds = deploy(capsys, tmp_path / "k8s", "--namespace", "ml-prod", "--autoscale", "1..3")
    namespaced = [obj for kind, obj in kinds.items() if kind != "Kustomization"]
    assert len(namespaced) == 5
    assert all(obj["metadata"]["namespace"] == "ml-prod" for obj in namespaced)
    assert kinds["ServiceMonitor"]["spec"]["namespaceSelector"] == {"matchNames": ["ml-prod"]}


def test_metrics_auth_serves_with_auth_and_scrapes_with_a_token_secret(
    capsys: Any, tmp_path: Path, model: ModelVersion
) -> None:
    out = tmp_path / "k8s"
    kinds = deploy(capsys, out, "--metrics-auth", "--port", "8001")
    container = model_container(kinds)
    assert [*container["command"], *container["args"]] == [
        "plinth", "serve", "--bundle", "/opt/plinth/model", "--host", "0.0.0.0", "--port", "8001", "--auth",
    ]  # fmt: skip
    endpoint = kinds["ServiceMonitor"]["spec"]["endpoints"][0]
    assert endpoint["bearerTokenSecret"] == {"name": "churn-metrics-token", "key": "token"}
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"
    secrets = (out / "SECRETS.md").read_text()
    assert "churn-metrics-token" in secrets and "--role viewer" in secrets


def test_no_secret_value_reaches_any_file(
    capsys: Any, tmp_path: Path, model: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-value-4711"
    monkeypatch.setenv("PLINTH_TOKEN", f"tok-{secret}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("PLINTH_ADMIN_TOKEN", secret)
    out = tmp_path / "k8s"
    deploy(capsys, out, "--metrics-auth", "--autoscale", "2..3")
    for path in out.iterdir():
        assert secret not in path.read_text(), path


def test_the_deployment_is_recorded_in_lineage(capsys: Any, tmp_path: Path, model: ModelVersion) -> None:
    deploy(capsys, tmp_path / "k8s", "--namespace", "ml")
    edges = [e for e in backend().store.edges(src=("model_version", model.id)) if e.relation == "deployed as"]
    assert [(e.dst_type, e.dst_id, e.attributes["image"]) for e in edges] == [
        ("k8s_deployment", "ml/churn", IMAGE)
    ]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["churn@champion", "--autoscale", "5..2"], 2, "1 <= MIN <= MAX"),
        (["churn@champion", "--autoscale", "0..3"], 2, "1 <= MIN <= MAX"),
        (["churn@champion", "--autoscale", "2-5"], 2, "MIN..MAX"),
        (["churn@champion", "--autoscale", "a..b"], 2, "MIN..MAX"),
        (["churn@champion", "--name", "Churn"], 2, "not a valid Kubernetes name"),
        (["churn@champion", "--name", "1churn"], 2, "not a valid Kubernetes name"),
        (["churn@champion", "--name", "churn_v2"], 2, "not a valid Kubernetes name"),
        (["churn@champion", "--namespace", "ML"], 2, "namespace"),
        (["churn@champion", "--secret", "Bad_Secret"], 2, "Secret name"),
        (["churn@champion", "--cpu", "lots"], 2, "--cpu"),
        (["churn@champion", "--memory", "1 GB"], 2, "--memory"),
        (["churn@champion", "--replicas", "2", "--autoscale", "2..4"], 2, "not both"),
        (["churn@champion", "--workers", "2"], 2, "--workers does not apply"),
        (["churn@nope"], 3, "nope"),
        (["missing@champion"], 3, "missing"),
        (["churn@@x"], 2, ""),
        ([], 2, "Name the model"),
    ],
)
def test_bad_input_is_a_clean_error_and_writes_nothing(
    capsys: Any, tmp_path: Path, model: ModelVersion, args: list[str], code: int, needle: str
) -> None:
    out = tmp_path / "k8s"
    result = run(capsys, "deploy", "k8s", *args, "--image", IMAGE, "-o", str(out))
    assert_clean_error(result, code, needle)
    assert list(tmp_path.glob("k8s*")) == []


def test_a_folder_with_files_is_kept_unless_forced(capsys: Any, tmp_path: Path, model: ModelVersion) -> None:
    out = tmp_path / "k8s"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    result = run(capsys, "deploy", "k8s", "churn@champion", "--image", IMAGE, "-o", str(out))
    assert_clean_error(result, 2, "not empty", "--force")
    assert [p.name for p in out.iterdir()] == ["mine.txt"]

    deploy(capsys, out, "--force")
    assert not (out / "mine.txt").exists()
    assert (out / "deployment.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "k8s"]  # no staging folders left


def test_an_empty_folder_is_filled(capsys: Any, tmp_path: Path, model: ModelVersion) -> None:
    out = tmp_path / "k8s"
    out.mkdir()
    assert "Deployment" in deploy(capsys, out)


def test_a_missing_parent_folder_is_a_clean_error(capsys: Any, tmp_path: Path, model: ModelVersion) -> None:
    out = tmp_path / "no" / "such" / "k8s"
    result = run(capsys, "deploy", "k8s", "churn@champion", "--image", IMAGE, "-o", str(out))
    assert_clean_error(result, 2, "does not exist")


def test_a_model_name_that_is_no_kubernetes_name_is_converted(capsys: Any, tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    plinth.register_model("org/Churn_V2", LogisticRegression(max_iter=500).fit(x, y), input_example=x[:3])
    result = run(capsys, "deploy", "k8s", "org/Churn_V2/1", "--image", IMAGE, "-o", str(tmp_path / "k8s"))
    assert result.code == 0, result.err
    kinds = by_kind(validate_folder(tmp_path / "k8s"))
    assert kinds["Deployment"]["metadata"]["name"] == "org-churn-v2"
    assert kinds["Deployment"]["metadata"]["labels"]["plinth.dev/model"] == "org.Churn_V2"


@pytest.mark.parametrize(("text", "bounds"), [("1..1", (1, 1)), ("2..10", (2, 10)), (" 3..4 ", (3, 4))])
def test_autoscale_bounds_parse(text: str, bounds: tuple[int, int]) -> None:
    parsed = Autoscale.parse(text)
    assert (parsed.low, parsed.high) == bounds


@pytest.mark.parametrize("text", ["", "3", "..", "1..", "..4", "-1..3", "2..1", "1.5..3"])
def test_autoscale_bounds_refuse_nonsense(text: str) -> None:
    with pytest.raises(InvalidInput, match="--autoscale"):
        Autoscale.parse(text)
