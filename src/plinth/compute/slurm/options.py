"""Where and how jobs are submitted: `SlurmOptions`, from PLINTH_SLURM_* and a step's `slurm={...}`."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from plinth.core.errors import InvalidInput

STEP_KEYS = ("partition", "account", "qos", "constraint", "sbatch_args")
"""The keys a step's `slurm={...}` may set."""


@dataclass(frozen=True)
class SlurmOptions:
    """Where and how jobs are submitted: sbatch's partition, account, QOS, constraint, more flags.

    Args:
        partition: `--partition` (None: the cluster's default partition).
        account: `--account`.
        qos: `--qos`.
        constraint: `--constraint` (node features, e.g. "a100").
        sbatch_args: more sbatch flags, e.g. ("--exclusive",).
        work_dir: a folder shared with the nodes for payloads, results and job logs.

    Example:
        SlurmOptions.from_env().merged({"partition": "gpu", "sbatch_args": "--exclusive"})
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    sbatch_args: tuple[str, ...] = ()
    work_dir: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SlurmOptions:
        """Options from PLINTH_SLURM_PARTITION, _ACCOUNT, _QOS, _CONSTRAINT, _SBATCH_ARGS (split as
        a shell would) and _WORKDIR (default: the folder `slurm` in PLINTH_HOME), made absolute."""
        env = os.environ if environ is None else environ
        home = env.get("PLINTH_HOME") or ".plinth"
        return cls(
            partition=env.get("PLINTH_SLURM_PARTITION") or None,
            account=env.get("PLINTH_SLURM_ACCOUNT") or None,
            qos=env.get("PLINTH_SLURM_QOS") or None,
            constraint=env.get("PLINTH_SLURM_CONSTRAINT") or None,
            sbatch_args=tuple(shlex.split(env.get("PLINTH_SLURM_SBATCH_ARGS", ""))),
            work_dir=os.path.abspath(env.get("PLINTH_SLURM_WORKDIR") or os.path.join(home, "slurm")),
        )

    def merged(self, override: Mapping[str, Any]) -> SlurmOptions:
        """These options with a step's `slurm={...}` over them (its sbatch_args replace these).

        Raises:
            InvalidInput: a key other than partition, account, qos, constraint, sbatch_args.
        """
        unknown = sorted(set(override) - set(STEP_KEYS))
        if unknown:
            raise InvalidInput(
                f"Unknown slurm option {', '.join(map(repr, unknown))}; a step's slurm={{...}} may set "
                f"{', '.join(STEP_KEYS)}."
            )
        if not override:
            return self
        changes: dict[str, Any] = {k: v for k, v in override.items() if k != "sbatch_args"}
        if "sbatch_args" in override:
            args = override["sbatch_args"]
            changes["sbatch_args"] = tuple(shlex.split(args) if isinstance(args, str) else map(str, args))
        return replace(self, **changes)

    def resolved_work_dir(self) -> str:
        """`work_dir`, or the default under PLINTH_HOME, as an absolute path."""
        return self.work_dir or SlurmOptions.from_env().work_dir or os.path.abspath(".plinth/slurm")
