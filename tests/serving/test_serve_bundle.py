"""`plinth serve --bundle`: a baked model version served with no store, logging to one when named."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

import plinth
from plinth.cli.main import main
from plinth.core.errors import ConfigError, InvalidInput
from plinth.core.settings import Settings
from plinth.registry.bundle import write_bundle
from plinth.serving.app import create_app
from plinth.serving.options import ServeOptions
from plinth.store.open import open_store
from plinth.tracking import context

Iris = tuple[pd.DataFrame, LogisticRegression]


@pytest.fixture(scope="module")
def iris() -> Iris:
    x, y = load_iris(return_X_y=True, as_frame=True)
    return x, LogisticRegression(max_iter=1000).fit(x, y)


@pytest.fixture
def bundle(iris: Iris, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """`iris@champion` baked into a folder; afterwards PLINTH_HOME is a fresh, empty folder (every
    process writing to one store shares its audit key, as a deployment passes it in a Secret)."""
    x, clf = iris
    monkeypatch.setenv("PLINTH_AUDIT_KEY", "a-key-the-deployment-shares-" + "0" * 16)
    be = plinth.configure()
    mv = plinth.register_model("iris", clf, input_example=x[:3])
    plinth.set_alias("iris", "champion", mv.version)
    folder = str(tmp_path / "bundle")
    write_bundle(be, plinth.get_model_version("iris@champion"), folder)
    context.reset()
    monkeypatch.setenv("PLINTH_HOME", str(tmp_path / "image-home"))
    return folder


def databases(folder: Path) -> list[str]:
    return [name for _root, _dirs, names in os.walk(folder) for name in names if ".db" in name]


def rows(x: pd.DataFrame, n: int) -> list[dict[Any, Any]]:
    return x[:n].to_dict("records")


def test_a_bundle_is_served_with_no_store(iris: Iris, bundle: str, tmp_path: Path) -> None:
    x, clf = iris
    app = create_app([], Settings.from_env(), ServeOptions(bundle=bundle))
    with TestClient(app) as client:
        assert client.get("/readyz").json() == {"status": "ready", "degraded": {}}
        answer = client.post("/v1/models/iris/predict", json={"instances": rows(x, 5)})
        assert answer.status_code == 200
        assert answer.json()["predictions"] == clf.predict(x[:5]).tolist()
        assert answer.json()["version"] == 1
        [served] = client.get("/v1/models").json()
        assert (served["name"], served["ref"], served["version"]) == ("iris", "iris", 1)
        label = {"request_id": answer.json()["request_id"], "label": 0}
        labels = client.post("/v1/models/iris/labels", json={"labels": [label]})
        assert labels.status_code == 503 and "PLINTH_STORE" in labels.json()["error"]
        state = app.state.plinth
        assert state.be is None and state.logger is None
        assert client.get("/readyz").json()["degraded"] == {}
    assert os.listdir(tmp_path / "image-home") == ["cache"]  # the package cache; no store, no audit key
    assert context.current() is None


def test_predictions_are_logged_where_plinth_store_points(
    iris: Iris, bundle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, clf = iris
    monkeypatch.setenv("PLINTH_STORE", f"sqlite:///{tmp_path / 'logs' / 'plinth.db'}")
    settings = Settings.from_env()
    app = create_app(["iris@champion"], settings, ServeOptions(bundle=bundle))
    with TestClient(app) as client:
        answer = client.post(
            "/v1/models/iris/predict", json={"instances": rows(x, 2)}, headers={"x-request-id": "r-1"}
        )
        assert answer.json()["predictions"] == clf.predict(x[:2]).tolist()
    store = open_store(settings)
    try:
        [logged] = store.prediction_logs("iris")
        assert (logged.request_id, logged.version, logged.n_rows) == ("r-1", 1, 2)
        assert store.list_registered_models() == []  # the model came from the bundle, not this store
    finally:
        store.close()
    assert databases(tmp_path / "image-home") == []


def test_labels_go_to_the_store_the_model_was_registered_in(
    iris: Iris, bundle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, _clf = iris
    monkeypatch.setenv("PLINTH_STORE", f"sqlite:///{tmp_path / 'home' / 'plinth.db'}")
    settings = Settings.from_env()
    with TestClient(create_app([], settings, ServeOptions(bundle=bundle))) as client:
        client.post(
            "/v1/models/iris/predict", json={"instances": rows(x, 1)}, headers={"x-request-id": "r-2"}
        )
        labels = client.post("/v1/models/iris/labels", json={"labels": [{"request_id": "r-2", "label": 0}]})
        assert labels.json() == {"model": "iris", "stored": 1}
    store = open_store(settings)
    try:
        assert [p.request_id for p in store.prediction_logs("iris")] == ["r-2"]
    finally:
        store.close()


def test_a_bundle_takes_no_auth_without_a_store_and_no_canary(bundle: str) -> None:
    with pytest.raises(ConfigError, match="PLINTH_STORE"):
        create_app([], Settings.from_env(), ServeOptions(bundle=bundle, auth=True))
    with pytest.raises(InvalidInput, match="one model version"):
        ServeOptions(bundle=bundle, shadow="iris@champion")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.mark.parametrize(
    ("args", "expected", "needle"),
    [
        (["--auth"], 2, "--auth with --bundle needs PLINTH_STORE"),
        (["other"], 3, "holds iris/1 (also iris@champion) only"),
        (["iris@challenger"], 3, "iris@challenger is not in it"),
        (["--canary", "iris@champion=10%"], 2, "one model version"),
    ],
)
def test_the_cli_refuses_what_a_bundle_cannot_serve(
    bundle: str, capsys: pytest.CaptureFixture[str], args: list[str], expected: int, needle: str
) -> None:
    code, _out, err = cli(capsys, "serve", "--bundle", bundle, *args)
    assert code == expected and needle in err


def test_the_cli_says_when_a_bundle_is_missing_or_corrupt(
    bundle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = cli(capsys, "serve", "--bundle", str(tmp_path / "nowhere"))
    assert code == 3 and "No model bundle at" in err
    Path(bundle, "version.json").write_text("{}")
    code, _out, err = cli(capsys, "serve", "--bundle", bundle)
    assert code == 4 and "is corrupted" in err


def test_serve_without_refs_or_bundle_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = cli(capsys, "serve")
    assert code == 2 and "--bundle DIR" in err
    code, out, _err = cli(capsys, "serve", "--help")
    assert code == 0 and "--bundle DIR" in out and "with no store" in out


def test_predictions_match_load_model(iris: Iris, bundle: str) -> None:
    x, clf = iris
    with TestClient(create_app(["iris/1"], Settings.from_env(), ServeOptions(bundle=bundle))) as client:
        proba = client.post("/v1/models/iris/predict", json={"instances": rows(x, 3), "output": "proba"})
    np.testing.assert_allclose(proba.json()["predictions"], clf.predict_proba(x[:3]))
