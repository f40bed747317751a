"""The public face: `__all__` lists exactly the public names, and `import plinth` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import plinth


def test_all_matches_public_names() -> None:
    public = {name for name in vars(plinth) if not name.startswith("_")}
    plumbing = {name for name in public if type(getattr(plinth, name)).__name__ in ("module", "_Feature")}
    lazy = set(plinth._LAZY)  # imported on first use
    assert {"batch_predict", "drift", "erase_subject", "lineage", "log_labels", "verify_audit"} <= lazy
    assert set(plinth.__all__) == (public - plumbing) | {"__version__"} | lazy
    assert all(callable(getattr(plinth, name)) for name in lazy)
    assert plinth.__all__ == sorted(plinth.__all__)


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
