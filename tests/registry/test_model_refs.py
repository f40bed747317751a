"""Model names with '/' (as MLflow imports them) work in every API and command, on every store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from starlette.testclient import TestClient

import plinth
from plinth.cli.main import main
from plinth.core.errors import InvalidInput
from plinth.core.refs import ModelRef
from plinth.serving.app import create_app
from plinth.serving.options import ServeOptions
from plinth.tracking.context import Backend


def doubler(data: pd.DataFrame) -> pd.DataFrame:
    return data * 2


@pytest.fixture
def churn(tracking: Backend) -> Backend:
    """`org/churn` with two versions, `champion` on the first."""
    example = pd.DataFrame({"x": [1.0, 2.0]})
    for _ in range(2):
        plinth.register_model("org/churn", doubler, input_example=example)
    plinth.set_alias("org/churn", "champion", 1)
    return tracking


@pytest.mark.parametrize(
    ("ref", "version"),
    [
        ("org/churn", 2),
        ("org/churn@latest", 2),
        ("org/churn/1", 1),
        ("org/churn@champion", 1),
        ("models:/org/churn/1", 1),
        ("models:/org/churn@champion", 1),
        ("models:/org/churn/latest", 2),
        (ModelRef("org/churn", version=1), 1),
    ],
)
def test_every_form_loads_the_version_it_names(churn: Backend, ref: str | ModelRef, version: int) -> None:
    assert plinth.load_model(ref).version == version
    assert plinth.get_model_version(ref).version == version


def test_registry_functions_take_slashed_names(churn: Backend) -> None:
    assert plinth.get_model_version("org/churn", 1).ref == "org/churn/1"
    assert [v.version for v in plinth.list_model_versions("org/churn")] == [1, 2]
    assert plinth.set_alias("org/churn", "champion", 2) == 1
    assert plinth.delete_alias("org/churn", "champion") == 2
    assert [m.name for m in plinth.list_models()] == ["org/churn"]
    with pytest.raises(InvalidInput, match="already names a version"):
        plinth.get_model_version("org/churn/1", 2)
    with pytest.raises(InvalidInput, match="would be read as a reference"):
        plinth.set_alias("org/churn/1", "champion", 1)
    with pytest.raises(InvalidInput, match="MLflow stage"):
        plinth.load_model("models:/org/churn/Production")


def test_served_slashed_name_answers_at_its_path(churn: Backend) -> None:
    app = create_app(["org/churn@champion"], churn.settings, ServeOptions(alias_poll_s=3600))
    with TestClient(app) as client:
        answer = client.post("/v1/models/org/churn/predict", json={"instances": [{"x": 2.0}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == 1


def test_cli_commands_take_slashed_names(
    churn: Backend, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["models", "alias", "org/churn", "champion", "2"]) == 0
    assert "org/churn@champion → version 2 (was 1)" in capsys.readouterr().out
    assert main(["models", "show", "org/churn@champion"]) == 0
    assert "Model org/churn/2" in capsys.readouterr().out
    assert main(["models", "show", "models:/org/churn/1"]) == 0
    assert "Model org/churn/1" in capsys.readouterr().out
    inputs = tmp_path / "in.csv"
    inputs.write_text("x\n1.5\n")
    assert main(["models", "predict", "org/churn/1", "-i", str(inputs)]) == 0
    assert "3.0" in capsys.readouterr().out
    assert main(["lineage", "org/churn/1"]) == 0
    assert "model org/churn/1" in capsys.readouterr().out
    assert main(["models", "unalias", "org/churn", "champion"]) == 0
    capsys.readouterr()
    assert main(["models", "show", "org/churn@champion"]) == 3
    assert "champion" in capsys.readouterr().err
