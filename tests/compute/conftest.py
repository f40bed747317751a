"""Ray tests here and elsewhere run on one xdist worker (see tests/ray_cluster.py)."""

from __future__ import annotations

import getpass
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plinth.compute.local import LocalExecutor
from plinth.compute.slurm import SlurmOptions
from plinth.compute.slurm import cluster as slurm_cluster
from ray_cluster import pytest_collection_modifyitems as pytest_collection_modifyitems


@pytest.fixture
def make() -> Iterator[Callable[..., LocalExecutor]]:
    """Build local executors that are shut down after the test."""
    made: list[LocalExecutor] = []

    def build(**kwargs: Any) -> LocalExecutor:
        executor = LocalExecutor(**kwargs)
        made.append(executor)
        return executor

    yield build
    for executor in made:
        executor.shutdown()


@pytest.fixture
def job_name() -> Iterator[str]:
    """A SLURM job name of this test's own; whatever jobs of that name are left are cancelled after."""
    if not slurm_cluster.available():
        pytest.fail(
            "The SLURM cluster is not up (`scontrol ping`); start it with `bash scripts/test-services.sh`."
        )
    name = f"plinth-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["scancel", "-u", getpass.getuser(), "-n", name], check=False)


@pytest.fixture
def options(tmp_path: Path) -> SlurmOptions:
    return SlurmOptions(work_dir=str(tmp_path / "slurm"))
