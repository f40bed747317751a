"""SLURM compute: `SlurmExecutor` runs flow steps as sbatch jobs on a SLURM cluster.

`executor.py` submits and collects, `jobs.py` talks to sbatch/squeue/scontrol/scancel,
`worker.py` runs inside the jobs, `outcomes.py` maps how a job ended, `cluster.py` inspects
partitions, nodes and plinth's jobs, and checks that the stores are shared with the nodes.
A group (a distributed step) is one job of a task per rank: `groups.py` writes its script and
folds its ranks' reports, `rank.py` runs as each rank.
"""

from plinth.compute.slurm.executor import SlurmExecutor as SlurmExecutor
from plinth.compute.slurm.executor import SlurmOptions as SlurmOptions
from plinth.compute.slurm.shared import shared_executor as shared_executor

__all__ = ["SlurmExecutor", "SlurmOptions", "shared_executor"]
