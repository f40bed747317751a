"""plinth's side of benchmarks/bench_distributed.py: the same training loop as a `workers=2` step.

    python benchmarks/_ddp_plinth.py --steps N --launched T --out FILE
        [--kill-at K --marker FILE --ckpt-every C]

Runs a flow of one step (workers=2, cpu=1 each, distributed="torch", checkpoint=True) on the local
executor with the embedded store in PLINTH_HOME, and writes rank 0's timings of the last attempt.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _ddp_train
from plinth import flow, step


@step(workers=2, cpu=1, distributed="torch", checkpoint=True)
def train(steps: int, launched: float, kill_at: int, marker: str, ckpt_every: int) -> dict:
    return _ddp_train.train(
        steps, launched=launched, plinth_side=True, kill_at=kill_at, marker=marker, ckpt_every=ckpt_every
    )


@flow
def ddp(steps: int, launched: float, kill_at: int = -1, marker: str = "", ckpt_every: int = 0) -> dict:
    return train(steps, launched, kill_at, marker, ckpt_every)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--launched", type=float, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--kill-at", type=int, default=-1)
    ap.add_argument("--marker", default="")
    ap.add_argument("--ckpt-every", type=int, default=0)
    a = ap.parse_args()
    result = ddp.run(
        executor="local",
        steps=a.steps,
        launched=a.launched,
        kill_at=a.kill_at,
        marker=a.marker,
        ckpt_every=a.ckpt_every,
    )
    out = dict(result.result)
    out["attempts"] = next(s.attempts for s in result.steps if s.step == "train")
    Path(a.out).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
