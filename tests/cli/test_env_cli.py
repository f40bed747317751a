"""`plinth env`: show, diff, export and check environment locks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.cli.env import env
from plinth.cli.main import cli as plinth_cli
from plinth.cli.main import main
from plinth.registry import environment


@pytest.fixture(autouse=True)
def env_command() -> None:
    if "env" not in plinth_cli.commands:
        plinth_cli.add_command(env)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def register_sklearn(name: str = "churn", alias: str | None = "champion") -> None:
    x = np.random.default_rng(0).random((20, 3))
    mv = plinth.register_model(
        name, LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int)), input_example=x[:2]
    )
    if alias:
        plinth.set_alias(name, alias, mv.version)


def test_show_a_model_and_a_run(capsys: pytest.CaptureFixture[str]) -> None:
    register_sklearn()
    code, out, _ = cli(capsys, "env", "show", "churn@champion")
    assert code == 0
    assert "Environment of churn/1" in out and "scikit-learn" in out and "editable file://" in out
    with plinth.start_run("train") as run:
        pass
    code, out, _ = cli(capsys, "env", "show", run.id, "--json")
    data = json.loads(out)
    assert code == 0 and data["ref"] == f"run {run.id}" and data["libraries"] == {}
    assert data["sources"]["plinth"]["kind"] == "editable" and data["complete"] is True


def test_diff_identical_and_changed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    register_sklearn()
    register_sklearn()
    code, out, _ = cli(capsys, "env", "diff", "churn/1", "churn/2")
    assert code == 0 and "identical" in out
    monkeypatch.setattr(environment, "record", lambda libraries: {"python": "3.10.4", "libraries": {}})
    register_sklearn(alias=None)
    code, out, _ = cli(capsys, "env", "diff", "churn/1", "churn/3", "--json")
    data = json.loads(out)
    assert code == 0 and not data["identical"] and data["python"][1] == "3.10.4"
    code, out, _ = cli(capsys, "env", "diff", "churn/1", "churn/3")
    assert "python" in out and "3.10.4" in out and "removed" in out


def test_export_to_stdout_and_to_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    register_sklearn()
    code, out, _ = cli(capsys, "env", "export", "churn@champion", "--model-only")
    names = {Requirement(line).name for line in out.splitlines() if line and not line.startswith("#")}
    assert code == 0 and {"scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl"} <= names
    assert "torch" not in names and "plinth" not in names
    target = tmp_path / "out" / "requirements.txt"
    target.parent.mkdir()
    code, out, err = cli(capsys, "env", "export", "churn", "-o", str(target))
    assert code == 0 and out == "" and "churn/1" in err
    written = target.read_text()
    assert "plinth @ file://" in written and "numpy==" in written
    assert [p.name for p in target.parent.iterdir()] == ["requirements.txt"]  # no temporary left behind


def simple_index(root: Path, packages: dict[str, str]) -> str:
    """A PEP 503 index on disk listing one hashed wheel of each package version."""
    for name, version in packages.items():
        page = root / name
        page.mkdir(parents=True)
        wheel = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
        page.joinpath("index.html").write_text(f'<a href="{wheel}#sha256={"1" * 64}">{wheel}</a>')
    return root.as_uri()


def test_export_pylock_from_an_index(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import tomllib

    from plinth.deploy.lock import current_lock

    register_sklearn()
    packages = current_lock().packages
    index = simple_index(tmp_path / "all", packages)
    code, out, _ = cli(
        capsys, "env", "export", "churn", "--format", "pylock", "--model-only", "--index-url", index
    )
    data = tomllib.loads(out)
    names = {p["name"] for p in data["packages"]}
    assert code == 0 and data["lock-version"] == "1.0" and {"scikit-learn", "scipy"} <= names
    assert all(p["index"] == index and p["wheels"] for p in data["packages"])
    lacking = simple_index(tmp_path / "some", {k: v for k, v in packages.items() if k != "scipy"})
    code, out, err = cli(capsys, "env", "export", "churn", "--format", "pylock", "--index-url", lacking)
    assert code == 2 and out == "" and "No hashed files of scipy==" in err and "Traceback" not in err


def test_a_version_without_a_lock(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        environment, "record", lambda libraries: {"python": "3.11.2", "libraries": {"scikit-learn": "1.5.2"}}
    )
    register_sklearn()
    code, out, _ = cli(capsys, "env", "show", "churn")
    assert code == 0 and "full lock is missing" in out and "1.5.2" in out
    code, out, err = cli(capsys, "env", "export", "churn")
    assert code == 2 and "--model-only" in err and out == ""
    code, out, _ = cli(capsys, "env", "export", "churn", "--model-only")
    assert code == 0 and "scikit-learn==1.5.2" in out.splitlines()


def test_check_exit_codes(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    register_sklearn()
    code, out, _ = cli(capsys, "env", "check", "churn@champion")
    assert code == 0 and "matches" in out
    monkeypatch.setattr(
        environment, "record", lambda libraries: {"python": "3.11.2", "libraries": {"scikit-learn": "0.24.2"}}
    )
    register_sklearn(alias="old")
    code, out, _ = cli(capsys, "env", "check", "churn@old", "--json")
    data = json.loads(out)
    assert code == 1 and data["blocking"]
    assert data["differences"][0]["kind"] == "library" and data["differences"][0]["recorded"] == "0.24.2"
    code, out, _ = cli(capsys, "env", "check", "churn@old")
    assert code == 1 and out.index("scikit-learn") < out.index("python")
    code, out, _ = cli(capsys, "env", "check", "--help")
    assert "Exits with 1" in out


def test_unknown_refs_are_clean_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "env", "show", "nobody@champion")
    assert code == 3 and out == "" and err.startswith("error: ") and "Traceback" not in err
    code, _, err = cli(capsys, "env", "diff", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "x")
    assert code == 3 and "nor a run" in err
