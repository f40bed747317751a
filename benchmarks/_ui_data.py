"""The UI benchmark's data: seeded runs that both stores hold, and where each store is cached.

Standard library only: the plinth fill (project venv) and the MLflow fill (benchmarks/.venv-mlflow)
both import it, so both stores hold the same values.

Every run of experiment `bench` has 20 params (the first six categorical) and 20 metrics logged
once at step 0; the first `COMPARE_N` runs (the compare set) have each metric as a curve of
`CURVE_STEPS` steps instead, ending at the same value, so the compare view draws real curves; one
more run, named `big`, has a single metric `big` of `big_points` points.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

EXPERIMENT = "bench"
BIG_RUN = "big"
BIG_METRIC = "big"
COMPARE_N = 20
CURVE_STEPS = 500
SEED = 14

CATEGORICAL = {
    "optimizer": ["adam", "sgd", "rmsprop", "adamw"],
    "activation": ["relu", "gelu", "tanh"],
    "scheduler": ["cosine", "step", "none"],
    "dataset": ["cifar10", "cifar100", "tiny-imagenet"],
    "augment": ["none", "flip", "mixup", "cutmix"],
    "precision": ["fp32", "bf16"],
}
NUMERIC_PARAMS = [
    "lr",
    "batch_size",
    "epochs",
    "dropout",
    "weight_decay",
    "momentum",
    "layers",
    "hidden",
    "warmup",
    "seed",
    "label_smoothing",
    "grad_clip",
    "beta1",
    "beta2",
]
METRICS = [
    "acc",
    "loss",
    "val_acc",
    "val_loss",
    "f1",
    "precision",
    "recall",
    "auc",
    *(f"m{k:02d}" for k in range(8, 20)),
]
# What the filter + sort figure types and clicks (about 2.5% of the runs match).
FILTER = "params.optimizer = 'adam' and metrics.acc > 0.9"
SORT_COLUMN = "metrics.loss"
TABLE_COLUMNS = ["params.optimizer", "params.lr", "params.batch_size", "metrics.acc", "metrics.loss"]


@dataclass(frozen=True)
class Sizes:
    """How big the benchmark store is."""

    runs: int
    params: int
    metrics: int
    big_points: int

    @property
    def key(self) -> str:
        """The cache folder's name: a store is reused only for the same sizes and data version."""
        return f"r{self.runs}-p{self.params}-m{self.metrics}-b{self.big_points}-c{COMPARE_N}x{CURVE_STEPS}-v1"


FULL = Sizes(runs=100_000, params=20, metrics=20, big_points=1_000_000)
QUICK = Sizes(runs=2_000, params=20, metrics=20, big_points=100_000)


def run_values(i: int) -> tuple[dict[str, str], dict[str, float]]:
    """Params and final metric values of run number `i` (0-based), the same on every call."""
    rng = random.Random(SEED * 1_000_003 + i)
    params = {k: rng.choice(v) for k, v in CATEGORICAL.items()}
    params["lr"] = f"{10 ** rng.uniform(-5, -1):.3g}"
    params["batch_size"] = str(rng.choice([16, 32, 64, 128, 256]))
    params["epochs"] = str(rng.randint(1, 100))
    params["dropout"] = f"{rng.uniform(0, 0.5):.3f}"
    params["weight_decay"] = f"{10 ** rng.uniform(-6, -2):.3g}"
    params["momentum"] = f"{rng.uniform(0.8, 0.99):.3f}"
    params["layers"] = str(rng.randint(2, 48))
    params["hidden"] = str(rng.choice([128, 256, 512, 1024]))
    params["warmup"] = str(rng.randint(0, 2000))
    params["seed"] = str(i)
    params["label_smoothing"] = f"{rng.uniform(0, 0.2):.3f}"
    params["grad_clip"] = f"{rng.uniform(0.1, 5):.2f}"
    params["beta1"] = f"{rng.uniform(0.85, 0.95):.3f}"
    params["beta2"] = f"{rng.uniform(0.99, 0.9999):.4f}"
    metrics = {key: rng.random() for key in METRICS}
    metrics["loss"] = -math.log(max(metrics["acc"], 1e-6)) + rng.uniform(0, 0.1)
    metrics["val_loss"] = -math.log(max(metrics["val_acc"], 1e-6)) + rng.uniform(0, 0.2)
    return params, metrics


def curve(final: float, index: int, steps: int = CURVE_STEPS) -> list[float]:
    """A noisy curve of `steps` points that ends at `final` (a compare-set run's metric)."""
    rng = random.Random(SEED + index)
    start = final + (1.0 if final < 0.5 else -1.0) * rng.uniform(0.2, 0.5)
    out = []
    for s in range(steps):
        frac = 1 - math.exp(-5 * s / steps)
        out.append(start + (final - start) * frac + rng.gauss(0, 0.01))
    out[-1] = final
    return out


def big_series(n: int) -> Iterator[tuple[int, float]]:
    """(step, value) of the big run's metric: a slow wave, noise and a few spikes."""
    rng = random.Random(SEED)
    for step in range(n):
        spike = 5.0 if step % 99_991 == 12_345 else 0.0
        yield step, math.sin(step / 50_000) + rng.gauss(0, 0.05) + spike


# --------------------------------------------------------------------------- cache


def cache_dir(root: Path, side: str, sizes: Sizes) -> Path:
    """Where `side`'s filled store of `sizes` lives (a complete one has a `done.json`)."""
    return root / f"{side}-{sizes.key}"


def read_done(folder: Path) -> dict[str, object] | None:
    """The fill's record (sizes, seconds taken, run ids) if `folder` holds a complete store."""
    try:
        doc = json.loads((folder / "done.json").read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def write_done(folder: Path, sizes: Sizes, record: dict[str, object]) -> None:
    """Mark `folder` complete."""
    (folder / "done.json").write_text(json.dumps({"sizes": asdict(sizes), **record}, indent=1))


def progress(phase: str, done: int, total: int) -> None:
    """One progress line on stdout, which the benchmark turns into a progress bar."""
    print(json.dumps({"phase": phase, "done": done, "total": total}), flush=True)
