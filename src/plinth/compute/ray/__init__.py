"""Ray compute: `RayExecutor` runs flow steps as Ray tasks on a Ray cluster.

`executor.py` submits and collects, `worker.py` runs inside Ray's worker processes,
`outcomes.py` maps how a Ray task ended, `cluster.py` connects and inspects the cluster.
`ray` itself is imported only when an executor is made or the cluster is asked something.
"""

from plinth.compute.ray.executor import RayExecutor as RayExecutor
from plinth.compute.ray.executor import shared_executor as shared_executor

__all__ = ["RayExecutor", "shared_executor"]
