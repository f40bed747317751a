"""`python -m plinth` is the `plinth` command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import plinth


def _plinth_m(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    return subprocess.run(
        [sys.executable, "-m", "plinth", *args],
        capture_output=True,
        text=True,
        env={**clean, "PLINTH_HOME": str(home), **env},
        timeout=60,
    )


def test_python_m_plinth_prints_the_version(tmp_path: Path) -> None:
    result = _plinth_m("--version", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"plinth, version {plinth.__version__}"


def test_python_m_plinth_runs_commands_and_exits_with_their_code(tmp_path: Path) -> None:
    listed = _plinth_m("experiments", "list", home=tmp_path)
    assert listed.returncode == 0, listed.stderr

    broken = _plinth_m("runs", "list", home=tmp_path, PLINTH_STORE="mysql://x")
    assert broken.returncode == 2
    assert broken.stderr.startswith("error: Unsupported metadata store") and "Traceback" not in broken.stderr
