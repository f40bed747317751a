"""The public face: `__all__` lists exactly the public names, and `import plinth` stays light."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import plinth

ROOT = Path(__file__).parent.parent


def test_all_matches_public_names() -> None:
    public = {name for name in vars(plinth) if not name.startswith("_")}
    plumbing = {name for name in public if type(getattr(plinth, name)).__name__ in ("module", "_Feature")}
    lazy = set(plinth._LAZY)  # imported on first use
    assert {"batch_predict", "drift", "erase_subject", "lineage", "log_labels", "verify_audit"} <= lazy
    assert set(plinth.__all__) == (public - plumbing) | {"__version__"} | lazy
    assert all(callable(getattr(plinth, name)) for name in lazy)
    assert plinth.__all__ == sorted(plinth.__all__)


def test_lazy_names_are_typed_for_type_checkers() -> None:
    # `__getattr__` loads them; type checkers read the `if TYPE_CHECKING:` imports instead
    tree = ast.parse(Path(plinth.__file__).read_text())
    typed = {
        alias.asname or alias.name: stmt.module
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "_TYPE_CHECKING"
        for stmt in node.body
        if isinstance(stmt, ast.ImportFrom)
        for alias in stmt.names
    }
    assert typed == plinth._LAZY


def test_import_is_light() -> None:
    heavy = "('pandas', 'pyarrow', 'fsspec', 'psycopg')"
    code = f"import sys, plinth; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_errors_module_reexports_the_tree() -> None:
    from plinth import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), (errors.PlinthError, errors.PlinthWarning))


def test_prediction_error_is_a_deprecated_name_of_model_failed() -> None:
    from plinth import errors
    from plinth.serving import batch

    with pytest.warns(DeprecationWarning, match="ModelFailed"):
        assert batch.PredictionError is errors.ModelFailed
    with pytest.warns(DeprecationWarning):
        from plinth.serving.batch import PredictionError
    assert PredictionError is errors.ModelFailed


TYPED_USAGE = """
from typing import assert_type

import pandas as pd

import plinth
from plinth.monitoring.report import Report


@plinth.step(cpu=1, cache=True)
def load(seed: int) -> list[int]:
    return [seed, seed + 1]


@plinth.step
def train(data: list[int], lr: float) -> float:
    return sum(data) * lr


@plinth.flow(name="typed")
def pipeline(lr: float = 0.1) -> float:
    return train(load(0), lr)


runs = plinth.search_runs(experiment="e", where="metrics.acc > 0.9")
assert_type(runs, plinth.Runs)
assert_type(runs[0], plinth.Run)
assert_type(runs[1:], plinth.Runs)
assert_type(runs.to_frame(), pd.DataFrame)
assert_type(plinth.search_runs(as_frame=True), pd.DataFrame)
assert_type(plinth.metric_history("run", "loss"), plinth.MetricHistory)
assert_type(plinth.metric_history("run", "loss", as_frame=True), pd.DataFrame)
assert_type(plinth.load_dataset("iris/1"), pd.DataFrame)
assert_type(plinth.monitoring_report("churn", since="7d"), Report)
assert_type(load(1), list[int])
assert_type(train.map([[1, 2]] * 2, lr=[0.1, 0.2]), list[float])
assert_type(pipeline.run(lr=0.2), plinth.FlowResult[float])
assert_type(pipeline.run().result, float)
load("one")  # the only error: a step keeps its function's signature
"""


@pytest.mark.slow
def test_public_api_is_typed(tmp_path: Path) -> None:
    usage = tmp_path / "usage.py"
    usage.write_text(TYPED_USAGE)
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    assert mypy, "mypy is not installed; pip install -e '.[test]'"
    cache = ROOT / ".mypy_cache" / "usage"
    command = [mypy, "--follow-imports=silent", "--cache-dir", str(cache), str(usage)]
    env = {**os.environ, "MYPYPATH": str(ROOT / "src")}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    wrong_call = next(
        n for n, line in enumerate(TYPED_USAGE.splitlines(), 1) if line.startswith('load("one")')
    )
    assert len(errors) == 1 and f"usage.py:{wrong_call}: error:" in errors[0], result.stdout + result.stderr
    assert '"str"; expected "int"' in errors[0]
