"""Checkpoint benchmark: how long `run.log_checkpoint` of a 500 MB state dict blocks the training
loop, against `torch.save` of the same dict to a local file, and how long until it is stored.

    python benchmarks/bench_checkpoints.py [--quick] [--reps N] [--write|--no-write] [--keep]

The state dict is 40 float32 tensors of 2048 x 1600 (500 MiB, 524 MB), on CPU. plinth uses the
embedded SQLite store and artifact folder in a fresh PLINTH_HOME under benchmarks/.work/.

Rows (each the median of `--reps` repetitions, but row 0):

0. The first `log_checkpoint` of the process: the copy goes to newly allocated memory (a page
   fault per page), once.
1. `log_checkpoint` blocking, writer idle: the call returns once the state is copied (every
   tensor copied to CPU memory, here into the memory the previous checkpoint's copy used,
   kept for reuse once it was serialised); the previous checkpoint was stored before it.
2. `log_checkpoint` blocking, writer busy: the call made right after another, while the writer
   thread serialises and stores that one, so both compete for the cores and memory bandwidth
   (a loop checkpointing every few seconds). The first time, its copy goes to new memory; from
   then on into the second generation of kept memory (two checkpoints' copies are kept once a
   loop has needed two at once).
3. `torch.save` to a local file, the peer: what a training loop that saves for itself waits for.
4. `log_checkpoint` until stored: from the call until `wait()` returns (the copy, `torch.save`
   on the writer thread hashing as it writes, the move into the content-addressed store with
   an fsync, the manifest, the records in one transaction).

Target: rows 1 and 2 at most 0.1 s. The table is printed and, on a full run (unless
--no-write), written to benchmarks/RESULTS.md under "## checkpoints".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import harness

SECTION = "checkpoints"
TARGET_S = 0.1
HEADER = ["row", "time", "target", "met?"]


def state_dict(layers: int, rows: int, cols: int) -> dict[str, Any]:
    """`layers` float32 weight tensors of rows x cols, filled (so every page is real)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    return {f"layers.{i}.weight": torch.rand(rows, cols, generator=gen) for i in range(layers)}


def median_s(samples: list[float]) -> float:
    return statistics.median(samples)


def measure(sd: dict[str, Any], workdir: Path, reps: int) -> dict[str, list[float]]:
    """Every row's samples, in seconds."""
    import torch

    import plinth
    from plinth.core.settings import Settings

    plinth.configure(Settings(home=str(workdir / "home"), system_metrics=False))
    found: dict[str, list[float]] = {"first": [], "idle": [], "busy": [], "peer": [], "stored": []}
    peer_file = workdir / "peer.pt"
    with plinth.start_run("bench-checkpoints", capture_env=False, system_metrics=False) as run:
        start = time.perf_counter()
        first = run.log_checkpoint(sd, step=0, keep_last=1)
        found["first"].append(time.perf_counter() - start)
        first.wait()
        for rep in range(reps):
            step = 3 * rep
            start = time.perf_counter()
            pending = run.log_checkpoint(sd, step=step + 1, keep_last=1)
            blocked = time.perf_counter() - start
            found["idle"].append(blocked)
            start = time.perf_counter()
            second = run.log_checkpoint(sd, step=step + 2, keep_last=1)
            busy = time.perf_counter() - start
            found["busy"].append(busy)
            pending.wait()
            second.wait()
            start = time.perf_counter()
            run.log_checkpoint(sd, step=step + 3, keep_last=1).wait()
            found["stored"].append(time.perf_counter() - start)
            start = time.perf_counter()
            torch.save(sd, peer_file)
            saved = time.perf_counter() - start
            found["peer"].append(saved)
            peer_file.unlink()
            harness.log(
                f"rep {rep + 1}/{reps}: idle {blocked:.3f} s, busy {busy:.3f} s, torch.save {saved:.3f} s, "
                f"stored {found['stored'][-1]:.2f} s"
            )
    plinth.configure(Settings(home=str(workdir / "home")))
    return found


def table(found: dict[str, list[float]], mb: float) -> list[list[str]]:
    def seconds(key: str) -> str:
        return f"{median_s(found[key]):.3f} s"

    def met(key: str) -> str:
        return "yes" if median_s(found[key]) <= TARGET_S else "NO"

    size = f"{mb:,.0f} MB"
    return [
        [f"0. first log_checkpoint of the process ({size})", seconds("first"), "-", "-"],
        [f"1. log_checkpoint blocks, writer idle ({size})", seconds("idle"), f"<= {TARGET_S} s", met("idle")],
        [f"2. log_checkpoint blocks, writer busy ({size})", seconds("busy"), f"<= {TARGET_S} s", met("busy")],
        [f"3. torch.save to a local file, the peer ({size})", seconds("peer"), "-", "-"],
        [f"4. log_checkpoint until stored ({size})", seconds("stored"), "-", "-"],
    ]


def notes(found: dict[str, list[float]], info: dict[str, str]) -> list[str]:
    idle, peer = median_s(found["idle"]), median_s(found["peer"])
    spread = ", ".join(f"{k} {min(v):.3f}-{max(v):.3f} s" for k, v in found.items() if k != "first")
    return [
        f"The training loop waits {idle / peer:.2f}x as long as for its own torch.save "
        f"({peer / idle:.1f}x less).",
        f"Range over the repetitions: {spread}.",
        f"Load average {harness.load_text()} after the run; {info['cores']} cores.",
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_options(
        ap, "a 50 MB state dict, 2 repetitions", "a full run", "keep the work folder and its store"
    )
    ap.add_argument("--reps", type=int, default=None, help="repetitions per row (default 5; --quick 2)")
    args = ap.parse_args()
    import torch

    layers, rows, cols = (4, 2048, 1600) if args.quick else (40, 2048, 1600)
    reps = args.reps or (2 if args.quick else 5)
    sd = state_dict(layers, rows, cols)
    mb = sum(t.numel() * t.element_size() for t in sd.values()) / 1e6
    harness.log(f"{layers} tensors, {mb:,.0f} MB, {reps} repetitions, torch {torch.__version__}")
    with harness.work_folder("checkpoints", args.keep) as workdir:
        found = measure(sd, workdir, reps)
    info = harness.machine()
    body = table(found, mb)
    note_lines = notes(found, info)
    harness.print_table(body, "log_checkpoint vs torch.save", HEADER)
    met = sum(r[-1] == "yes" for r in body)
    harness.report(info, note_lines, met, 2)
    versions = f"Python {info['python']}, torch {torch.__version__}, {os.cpu_count()} cores"

    def make_section() -> str:
        return harness.section(
            SECTION, "bench_checkpoints.py", args.quick, info, versions, HEADER, body, note_lines
        )

    write = args.write if args.write is not None else not args.quick
    return harness.finish(write, make_section, SECTION, [])


if __name__ == "__main__":
    sys.exit(main())
