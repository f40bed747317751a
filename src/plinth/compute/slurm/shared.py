"""One SlurmExecutor per set of options in a process, shared by the flows that run on SLURM."""

from __future__ import annotations

import os
import threading
from dataclasses import replace

from plinth.compute.slurm import cluster
from plinth.compute.slurm.executor import SlurmExecutor
from plinth.compute.slurm.options import SlurmOptions
from plinth.core.settings import Settings

_lock = threading.Lock()
_shared: dict[SlurmOptions, SlurmExecutor] = {}


def shared_executor(settings: Settings, options: SlurmOptions | None = None) -> SlurmExecutor:
    """This process's SlurmExecutor for `options` (made on first use), after checking that the
    partition's nodes can use `settings`' stores. The work folder defaults to HOME/slurm.

    Raises:
        ConfigError: SLURM's commands are missing or its controller does not answer.
        StorageNotShared: the partition has nodes on other hosts and the stores are local.
    """
    options = options or SlurmOptions.from_env()
    if options.work_dir is None:
        options = replace(options, work_dir=os.path.abspath(os.path.join(settings.home, "slurm")))
    cluster.check_shared_storage(settings, options.partition, options.work_dir)
    with _lock:
        found = _shared.get(options)
        if found is None or found.closed:
            found = _shared[options] = SlurmExecutor(options)
    return found
