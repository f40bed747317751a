"""Environment locks of runs and model versions: read, followed, exported, compared."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.core.entities import ModelVersion
from plinth.core.errors import InvalidInput, NotFound
from plinth.deploy.lock import (
    Lock,
    Source,
    check,
    closure,
    current_lock,
    diff,
    export_text,
    locate,
    lock_of_run,
    lock_of_version,
    pylock_text,
    requirements_text,
)
from plinth.registry import environment

SKLEARN_STACK = {"scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl"}


def register_sklearn(name: str = "churn") -> ModelVersion:
    x = np.random.default_rng(0).random((20, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
    return plinth.register_model(name, model, input_example=x[:2])


def simple_index(root: Path, packages: dict[str, str]) -> str:
    """A PEP 503 index on disk listing one hashed wheel per package version."""
    for name, version in packages.items():
        page = root / "simple" / name
        page.mkdir(parents=True)
        wheel = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
        page.joinpath("index.html").write_text(f'<a href="../../files/{wheel}#sha256={"0" * 64}">{wheel}</a>')
    return (root / "simple").as_uri()


def test_a_model_version_records_the_lock_of_its_process() -> None:
    mv = register_sklearn()
    assert mv.environment["libraries"]["scikit-learn"] == plinth_version("scikit-learn")
    lock = lock_of_version(mv)
    assert lock.complete and lock.python == ".".join(map(str, sys.version_info[:3]))
    assert lock.libraries == {
        "scikit-learn": plinth_version("scikit-learn"),
        "numpy": plinth_version("numpy"),
    }
    assert lock.packages == current_lock().packages
    assert lock.sources["plinth"].kind == "editable" and lock.sources["plinth"].local_path
    assert lock.os["system"] == "Linux"


def plinth_version(name: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(name)


def test_a_run_records_its_lock() -> None:
    with plinth.start_run("train") as run:
        pass
    lock = lock_of_run(plinth.get_run(run.id))
    assert lock.complete and not lock.libraries
    assert lock.packages["numpy"] == plinth_version("numpy") and "plinth" in lock.sources


def test_locate_reads_runs_and_model_references() -> None:
    mv = register_sklearn()
    plinth.set_alias("churn", "champion", mv.version)
    with plinth.start_run("train") as run:
        pass
    assert locate("churn@champion")[0] == "churn/1"
    assert locate("churn")[0] == "churn/1"
    assert locate(run.id)[0] == f"run {run.id}"
    with pytest.raises(NotFound, match=r"neither a model version.*nor a run"):
        locate("no-such-thing")


def test_closure_of_a_sklearn_model_is_its_stack_without_torch() -> None:
    lock = lock_of_version(register_sklearn())
    found = closure(lock, lock.libraries)
    assert SKLEARN_STACK <= set(found) and "torch" not in found and "plinth" not in found
    assert all(found[name] == lock.packages[name] for name in found)


def test_closure_names_a_dependency_the_lock_lacks() -> None:
    lock = current_lock()
    lacking = dataclasses.replace(lock, packages={k: v for k, v in lock.packages.items() if k != "scipy"})
    with pytest.raises(InvalidInput, match="scipy is needed by scikit-learn"):
        closure(lacking, ["scikit-learn"])


def test_requirements_parse_and_pin_exact_versions() -> None:
    lock = current_lock()
    text = requirements_text(lock)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    parsed = {Requirement(line).name: Requirement(line) for line in lines}
    assert set(parsed) == set(lock.packages)
    assert str(parsed["numpy"].specifier) == f"=={lock.packages['numpy']}"
    assert parsed["plinth"].url == lock.sources["plinth"].url
    assert "folder must exist on the installing machine" in text
    assert text.startswith(f"# Environment lock: Python {lock.python}")


def test_vcs_and_archive_packages_are_direct_references() -> None:
    lock = Lock(
        python="3.11.7",
        implementation="CPython",
        os={"system": "Linux", "machine": "x86_64"},
        cuda=None,
        packages={"tool": "1.0", "thing": "2.0"},
        sources={
            "tool": Source("vcs", "https://example.com/t.git", vcs="git", commit="c0ffee", subdirectory="py"),
            "thing": Source("archive", "https://example.com/thing-2.0.tar.gz", archive_hash="sha256=ab"),
        },
    )
    lines = requirements_text(lock).splitlines()
    assert "tool @ git+https://example.com/t.git@c0ffee#subdirectory=py" in lines
    assert "thing @ https://example.com/thing-2.0.tar.gz#sha256=ab" in lines
    assert Requirement(lines[-1]).url.startswith("git+https://example.com/t.git@c0ffee")


def test_pylock_validates_with_packaging(tmp_path: Path) -> None:
    from packaging.pylock import Pylock

    lock = lock_of_version(register_sklearn())
    names = [*closure(lock, lock.libraries), "plinth"]
    index = simple_index(tmp_path, {n: v for n, v in lock.packages.items() if n in names and n != "plinth"})
    data = tomllib.loads(pylock_text(lock, names, indexes=[index]))
    pylock = Pylock.from_dict(data)
    assert str(pylock.lock_version) == "1.0" and str(pylock.requires_python) == f"=={lock.python_minor}.*"
    by_name = {p.name: p for p in pylock.packages}
    assert set(by_name) == set(names)
    assert str(by_name["numpy"].version) == lock.packages["numpy"] and by_name["numpy"].wheels
    assert by_name["plinth"].directory is not None and by_name["plinth"].directory.editable
    assert by_name["plinth"].version is None  # a source tree carries no version


def test_pylock_names_packages_no_index_has(tmp_path: Path) -> None:
    lock = current_lock()
    index = simple_index(tmp_path, {"numpy": lock.packages["numpy"]})
    with pytest.raises(InvalidInput, match="scipy=="):
        pylock_text(lock, ["numpy", "scipy"], indexes=[index])


def test_a_version_registered_before_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        environment, "record", lambda libraries: {"python": "3.11.2", "libraries": {"scikit-learn": "1.5.2"}}
    )
    lock = lock_of_version(register_sklearn())
    assert not lock.complete and lock.packages == {"scikit-learn": "1.5.2"} and lock.python_minor == "3.11"
    with pytest.raises(InvalidInput, match="before plinth recorded full environment locks"):
        export_text(lock, "requirements", label="churn/1")
    text = export_text(lock, "requirements", model_only=True)
    assert "scikit-learn==1.5.2" in text.splitlines()


def test_diff_of_two_locks() -> None:
    a = current_lock()
    packages = {k: v for k, v in a.packages.items() if k != "scipy"} | {"numpy": "0.1", "extra-pkg": "1"}
    b = dataclasses.replace(
        a, python="3.12.1", packages=packages, os={**a.os, "version_id": "13"}, sources={}
    )
    changes = diff(a, b)
    assert changes.python == (a.python, "3.12.1")
    assert changes.os == {"version_id": (a.os["version_id"], "13")}
    assert changes.added == {"extra-pkg": "1"} and changes.removed == {"scipy": a.packages["scipy"]}
    assert changes.changed == {"numpy": (a.packages["numpy"], "0.1")}
    assert changes.sources["plinth"][1] is None
    assert diff(a, a).identical and not changes.identical
    assert json.dumps(changes.to_dict())


def test_check_puts_a_changed_flavor_library_first() -> None:
    lock = lock_of_version(register_sklearn())
    assert check(lock) == []
    changed = dataclasses.replace(
        lock,
        libraries={**lock.libraries, "scikit-learn": "0.24.2"},
        packages={**lock.packages, "scikit-learn": "0.24.2", "joblib": "0.1"},
        python=lock.python_minor + ".999",
    )
    found = check(changed)
    assert [(d.kind, d.name) for d in found] == [
        ("library", "scikit-learn"),
        ("package", "joblib"),
        ("python", "python"),
    ]
    assert found[0].blocking and found[0].recorded == "0.24.2"
    assert not found[1].blocking and not found[2].blocking  # same minor Python


@pytest.mark.slow
def test_export_reproduces_the_model_packages_in_a_fresh_venv(tmp_path: Path) -> None:
    lock = lock_of_version(register_sklearn())
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(export_text(lock, "requirements", model_only=True))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    subprocess.run([*pip, "install", "-q", "-r", str(requirements)], check=True, timeout=900)
    listed = subprocess.run([*pip, "list", "--format", "json"], check=True, capture_output=True, text=True)
    there = {
        Requirement(p["name"]).name.lower().replace("_", "-"): p["version"] for p in json.loads(listed.stdout)
    }
    exported = closure(lock, lock.libraries)
    assert SKLEARN_STACK <= set(exported)
    assert {name: there.get(name) for name in exported} == exported
