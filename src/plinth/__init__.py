"""plinth: the infrastructure layer of machine learning in one package.

import plinth
with plinth.start_run(experiment="iris", params={"lr": 0.1}) as run:
    run.log_metric("loss", 0.25, step=1)
plinth.search_runs(experiment="iris", where="metrics.loss < 0.3")
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from plinth.core import hooks as _hooks
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
    FlowRun as FlowRun,
)
from plinth.core.entities import (
    MetricPoint as MetricPoint,
)
from plinth.core.entities import (
    ModelVersion as ModelVersion,
)
from plinth.core.entities import (
    RegisteredModel as RegisteredModel,
)
from plinth.core.entities import (
    Run as Run,
)
from plinth.core.entities import (
    RunStatus as RunStatus,
)
from plinth.core.entities import (
    StepRun as StepRun,
)
from plinth.core.entities import (
    StepStatus as StepStatus,
)
from plinth.core.errors import PlinthError as PlinthError
from plinth.core.refs import DatasetRef as DatasetRef
from plinth.core.refs import ModelRef as ModelRef
from plinth.core.settings import Settings as Settings
from plinth.core.windows import Window as Window
from plinth.registry.loaded import Model as Model
from plinth.registry.models import delete_alias as delete_alias
from plinth.registry.models import delete_model_version_tag as delete_model_version_tag
from plinth.registry.models import get_model_version as get_model_version
from plinth.registry.models import list_model_versions as list_model_versions
from plinth.registry.models import list_models as list_models
from plinth.registry.models import load_model as load_model
from plinth.registry.models import log_model as _log_model
from plinth.registry.models import register_model as register_model
from plinth.registry.models import set_alias as set_alias
from plinth.registry.models import set_model_description as set_model_description
from plinth.registry.models import set_model_version_tags as set_model_version_tags
from plinth.registry.models import set_registered_model_tags as set_registered_model_tags
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
from plinth.tracking.results import Runs as Runs
from plinth.tracking.run import ActiveRun as ActiveRun
from plinth.tracking.run import active_run as active_run
from plinth.tracking.run import start_run as start_run

if _TYPE_CHECKING:  # what `__getattr__` loads from `_LAZY`, for type checkers
    from plinth.flows.checkpoints import step_checkpoint as step_checkpoint
    from plinth.flows.flow import FlowResult as FlowResult
    from plinth.flows.flow import flow as flow
    from plinth.flows.flow import resume_flow as resume_flow
    from plinth.flows.step import step as step
    from plinth.governance.api import apply_retention as apply_retention
    from plinth.governance.api import erase_subject as erase_subject
    from plinth.governance.api import lineage as lineage
    from plinth.governance.api import verify_audit as verify_audit
    from plinth.monitoring.alerts import check_alerts as check_alerts
    from plinth.monitoring.alerts import parse_rule as parse_rule
    from plinth.monitoring.api import drift as drift
    from plinth.monitoring.api import drift_over_time as drift_over_time
    from plinth.monitoring.api import log_labels as log_labels
    from plinth.monitoring.api import monitoring_report as monitoring_report
    from plinth.monitoring.api import operations as operations
    from plinth.monitoring.api import performance as performance
    from plinth.monitoring.api import set_reference as set_reference
    from plinth.monitoring.costs import costs as costs
    from plinth.monitoring.external import log_predictions as log_predictions
    from plinth.serving.batch import batch_predict as batch_predict
    from plinth.tracking.checkpoints import Checkpoint as Checkpoint
    from plinth.tracking.checkpoints import latest_checkpoint as latest_checkpoint
    from plinth.tracking.checkpoints import list_checkpoints as list_checkpoints
    from plinth.tracking.checkpoints import load_checkpoint as load_checkpoint

    __version__: str

_hooks.provide("log_model", _log_model)

# Loaded on first use: they pull in pyarrow, cloudpickle, psutil (and more) that `import plinth`
# should not.
_LAZY = {
    "Checkpoint": "plinth.tracking.checkpoints",
    "FlowResult": "plinth.flows.flow",
    "apply_retention": "plinth.governance.api",
    "batch_predict": "plinth.serving.batch",
    "check_alerts": "plinth.monitoring.alerts",
    "costs": "plinth.monitoring.costs",
    "drift": "plinth.monitoring.api",
    "drift_over_time": "plinth.monitoring.api",
    "erase_subject": "plinth.governance.api",
    "flow": "plinth.flows.flow",
    "latest_checkpoint": "plinth.tracking.checkpoints",
    "lineage": "plinth.governance.api",
    "list_checkpoints": "plinth.tracking.checkpoints",
    "load_checkpoint": "plinth.tracking.checkpoints",
    "log_labels": "plinth.monitoring.api",
    "log_predictions": "plinth.monitoring.external",
    "monitoring_report": "plinth.monitoring.api",
    "operations": "plinth.monitoring.api",
    "parse_rule": "plinth.monitoring.alerts",
    "performance": "plinth.monitoring.api",
    "resume_flow": "plinth.flows.flow",
    "set_reference": "plinth.monitoring.api",
    "step": "plinth.flows.step",
    "step_checkpoint": "plinth.flows.checkpoints",
    "verify_audit": "plinth.governance.api",
}


def __getattr__(name: str) -> object:
    if name == "__version__":
        return _version()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plinth' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def _version() -> str:
    # importlib.metadata costs tens of milliseconds to import: read it when asked, not at import
    import importlib.metadata

    try:
        return importlib.metadata.version("plinth")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def _draw_in_notebooks() -> None:
    """In an IPython shell (Jupyter, VS Code, Colab), show plinth's objects as HTML from the start."""
    import sys

    if "IPython" not in sys.modules:  # not in a shell: nothing to do, nothing imported
        return
    try:
        shell = sys.modules["IPython"].get_ipython()
        if shell is not None:
            from plinth.notebook import register

            register(shell)
    except Exception:  # a display nicety must never make `import plinth` fail
        pass


_draw_in_notebooks()

__all__ = [
    "ActiveRun",
    "Artifact",
    "Checkpoint",
    "DatasetRef",
    "DatasetVersion",
    "Experiment",
    "FlowResult",
    "FlowRun",
    "MetricHistory",
    "MetricPoint",
    "Model",
    "ModelRef",
    "ModelVersion",
    "PlinthError",
    "RegisteredModel",
    "Run",
    "RunStatus",
    "Runs",
    "Settings",
    "StepRun",
    "StepStatus",
    "Window",
    "__version__",
    "active_run",
    "apply_retention",
    "batch_predict",
    "check_alerts",
    "configure",
    "costs",
    "delete_alias",
    "delete_model_version_tag",
    "drift",
    "drift_over_time",
    "erase_subject",
    "flow",
    "get_dataset",
    "get_model_version",
    "get_run",
    "latest_checkpoint",
    "lineage",
    "list_checkpoints",
    "list_datasets",
    "list_experiments",
    "list_model_versions",
    "list_models",
    "load_checkpoint",
    "load_dataset",
    "load_model",
    "log_labels",
    "log_predictions",
    "metric_history",
    "monitoring_report",
    "operations",
    "parse_rule",
    "performance",
    "reap_runs",
    "register_model",
    "resume_flow",
    "search_runs",
    "set_alias",
    "set_model_description",
    "set_model_version_tags",
    "set_reference",
    "set_registered_model_tags",
    "start_run",
    "step",
    "step_checkpoint",
    "verify_audit",
]
