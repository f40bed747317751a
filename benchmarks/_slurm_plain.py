"""The same calls as the plinth flows of benchmarks/bench_slurm.py, written as plain `sbatch --wrap` jobs.

Each call is a `python -c` that writes its result to `out_<i>` in a fresh folder; a side is timed
from its first `sbatch` until `squeue` lists none of its jobs and every result is read back.

- per call: one `sbatch` per call (a fan-out submits them in a loop; a chain links each job to the
  one before with `--dependency=afterok:<job>`).
- array: one `sbatch --array=0-(N-1)`; a chain throttles it to one task at a time (`%1`), so the
  tasks run in index order and each reads the result of the one before.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

POLL_S = 0.2
REQUEST = ["--cpus-per-task=1", "--mem=256M", "--output=/dev/null", "--error=err_%j"]
"""What every plain job asks for: without `--mem` a job takes the whole node's memory here
(DefMemPerNode=UNLIMITED with CR_Core_Memory), so jobs would run one at a time."""


def _sbatch(folder: Path, name: str, wrap: str, *extra: str) -> str:
    cmd = ["sbatch", "--parsable", "-J", name, f"--chdir={folder}", *REQUEST, *extra, "--wrap", wrap]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"sbatch failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip().split(";")[0]


def _wait_gone(name: str, deadline_s: float) -> None:
    """Poll squeue until it lists no job called `name`."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        out = subprocess.run(
            ["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True, check=False
        )
        if out.returncode == 0 and not out.stdout.strip():
            return
        time.sleep(POLL_S)
    subprocess.run(["scancel", "-n", name], check=False)
    raise SystemExit(f"plain sbatch jobs {name} still queued after {deadline_s:.0f} s; cancelled them")


def _results(folder: Path, n: int) -> list[int]:
    try:
        return [int((folder / f"out_{i}").read_text()) for i in range(n)]
    except (OSError, ValueError) as exc:
        errors = sorted(folder.glob("err_*"))
        detail = errors[0].read_text()[-500:] if errors else ""
        raise SystemExit(f"a plain sbatch job wrote no result ({exc}) {detail}") from exc


def _py(code: str, target: str) -> str:
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} > {target}"


def fan_out(folder: Path, seed: int, n: int, array: bool, deadline_s: float) -> tuple[float, list[int]]:
    """Seconds from the first submit until all `n` squares are read back, and the squares."""
    name = f"bench-plain-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    if array:
        code = f"import os; print(({seed} + int(os.environ['SLURM_ARRAY_TASK_ID'])) ** 2)"
        _sbatch(folder, name, _py(code, "out_$SLURM_ARRAY_TASK_ID"), f"--array=0-{n - 1}")
    else:
        for i in range(n):
            _sbatch(folder, name, _py(f"print({seed + i} ** 2)", f"out_{i}"))
    _wait_gone(name, deadline_s)
    got = _results(folder, n)
    return time.perf_counter() - t0, got


def chain(folder: Path, seed: int, n: int, array: bool, deadline_s: float) -> tuple[float, int]:
    """Seconds for `n` calls each adding 1 to the one before (the first to `seed`), and the last."""
    name = f"bench-plain-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    if array:
        code = (
            "import os; i = int(os.environ['SLURM_ARRAY_TASK_ID']); "
            f"print((int(open(f'out_{{i - 1}}').read()) if i else {seed}) + 1)"
        )
        _sbatch(folder, name, _py(code, "out_$SLURM_ARRAY_TASK_ID"), f"--array=0-{n - 1}%1")
    else:
        job = _sbatch(folder, name, _py(f"print({seed} + 1)", "out_0"))
        for i in range(1, n):
            code = f"print(int(open('out_{i - 1}').read()) + 1)"
            job = _sbatch(folder, name, _py(code, f"out_{i}"), f"--dependency=afterok:{job}")
    _wait_gone(name, deadline_s)
    last = _results(folder, n)[-1]
    return time.perf_counter() - t0, last
