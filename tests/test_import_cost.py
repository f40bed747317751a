"""`import plinth` stays light: the store, flows and metadata machinery load when first used."""

from __future__ import annotations

import subprocess
import sys

import pytest

DEFERRED = [
    "sqlalchemy",
    "alembic",
    "fsspec",
    "sqlite3",
    "cloudpickle",
    "importlib.metadata",
    "plinth.flows.flow",
]


def imported_by(code: str) -> set[str]:
    probe = f"import sys; {code}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", DEFERRED)
def test_import_plinth_does_not_import_heavy_modules(module: str) -> None:
    assert module not in imported_by("import plinth")


def test_lazy_names_still_resolve() -> None:
    modules = imported_by("import plinth; plinth.flow, plinth.step, plinth.resume_flow, plinth.FlowResult")
    assert "plinth.flows.flow" in modules


def test_version_is_read_when_asked() -> None:
    import plinth

    assert plinth.__version__.count(".") >= 2
