"""What a job's processes see of the driver's environment, and what never reaches the shared folder.

Jobs get sbatch's environment (`--export=ALL`): the driver's own, with the `.env` settings and
the audit key, less people's tokens. A task's variables travel in its request file, except
the secrets (a flow's step token), which ride sbatch's environment (held by the controller)
so that no file in the shared folder holds them.
"""

from __future__ import annotations

import os
import pickle
import sys

from plinth.compute.base import Task, TaskResult, task_payload
from plinth.core.settings import read_env_file
from plinth.store.audit_key import audit_key_env

FORWARDED_PREFIXES = ("PLINTH_", "AWS_", "AZURE_STORAGE_", "GOOGLE_APPLICATION_CREDENTIALS")
"""Variables of the working folder's `.env` that jobs get (the environment itself goes whole)."""
NOT_FORWARDED = ("PLINTH_TOKEN", "PLINTH_ADMIN_TOKEN")
"""A person's or the server's token never goes to jobs: a flow's steps get a step token of
their own in the task's environment."""
SECRET_ENV = frozenset({"PLINTH_TOKEN"})
"""Task variables never written to the shared folder: a flow's step token reaches its jobs in
sbatch's environment (held by the controller), not in request files or job scripts."""


def sbatch_env() -> dict[str, str]:
    """sbatch's environment, which jobs get (--export=ALL): this one with the `.env` settings,
    the audit key (a key file on this host may not be seen by nodes), without people's
    tokens and without the SLURM_* variables of an allocation this driver may run in."""
    dotenv = {k: v for k, v in read_env_file(".env").items() if k.startswith(FORWARDED_PREFIXES)}
    env = {**dotenv, **os.environ, **audit_key_env({**dotenv, **os.environ})}
    return {
        k: v
        for k, v in env.items()
        if k not in NOT_FORWARDED and not (k.startswith("SLURM_") and k != "SLURM_CONF")
    }


def secrets_of(task: Task) -> tuple[tuple[str, str], ...]:
    """The task's secret variables, sorted (they go to sbatch's environment, not to files)."""
    return tuple(sorted((k, v) for k, v in task.env.items() if k in SECRET_ENV))


def encode_request(task: Task) -> bytes | TaskResult:
    """The request a worker runs (see `compute.worker.run_request`) without the task's secrets,
    or an ERROR result when the call cannot be pickled."""
    payload = task_payload(task)
    if isinstance(payload, TaskResult):
        return payload
    env = {k: v for k, v in task.env.items() if k not in SECRET_ENV}
    return pickle.dumps((list(sys.path), env, payload), protocol=pickle.HIGHEST_PROTOCOL)
