"""A model that sleeps on every predict call, for the batch-inference resume tests.

Run as a script it scores a file like the CLI would, so a test can `kill -9` it midway:
    python slow_model.py MODEL_REF INPUT OUTPUT BATCH_SIZE
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np


class SlowSum:
    """Predicts each row's sum of features, after sleeping `delay` seconds per call."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def predict(self, data: Any) -> np.ndarray:
        time.sleep(self.delay)
        return np.asarray(data, dtype=np.float64).sum(axis=1)


if __name__ == "__main__":
    from plinth.serving.batch import batch_predict

    ref, source, output, batch_size = sys.argv[1:5]
    batch_predict(ref, source, output, batch_size=int(batch_size), id_columns="id", progress=False)
