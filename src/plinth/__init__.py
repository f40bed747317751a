"""plinth: the infrastructure layer of machine learning in one package.

import plinth
with plinth.start_run(experiment="iris", params={"lr": 0.1}) as run:
    run.log_metric("loss", 0.25, step=1)
plinth.search_runs(experiment="iris", where="metrics.loss < 0.3")
"""

from __future__ import annotations

import importlib.metadata as _metadata

from plinth.core.entities import (
    Artifact as Artifact,
)
from plinth.core.entities import (
    DatasetVersion as DatasetVersion,
)
from plinth.core.entities import (
    Experiment as Experiment,
)
from plinth.core.entities import (
    MetricPoint as MetricPoint,
)
from plinth.core.entities import (
    Run as Run,
)
from plinth.core.entities import (
    RunStatus as RunStatus,
)
from plinth.core.errors import PlinthError as PlinthError
from plinth.core.settings import Settings as Settings
from plinth.tracking.context import configure as configure
from plinth.tracking.history import MetricHistory as MetricHistory
from plinth.tracking.queries import (
    get_dataset as get_dataset,
)
from plinth.tracking.queries import (
    get_run as get_run,
)
from plinth.tracking.queries import (
    list_datasets as list_datasets,
)
from plinth.tracking.queries import (
    list_experiments as list_experiments,
)
from plinth.tracking.queries import (
    load_dataset as load_dataset,
)
from plinth.tracking.queries import (
    metric_history as metric_history,
)
from plinth.tracking.queries import (
    reap_runs as reap_runs,
)
from plinth.tracking.queries import (
    search_runs as search_runs,
)
from plinth.tracking.run import ActiveRun as ActiveRun
from plinth.tracking.run import active_run as active_run
from plinth.tracking.run import start_run as start_run

try:
    __version__ = _metadata.version("plinth")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ActiveRun",
    "Artifact",
    "DatasetVersion",
    "Experiment",
    "MetricHistory",
    "MetricPoint",
    "PlinthError",
    "Run",
    "RunStatus",
    "Settings",
    "__version__",
    "active_run",
    "configure",
    "get_dataset",
    "get_run",
    "list_datasets",
    "list_experiments",
    "load_dataset",
    "metric_history",
    "reap_runs",
    "search_runs",
    "start_run",
]
