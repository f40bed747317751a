"""Stores checkpoint 1, then starts checkpoint 2 and stops while it is provably incomplete.

Checkpoint 2's payload blob is stored, then the manifest's `put_bytes` prints "writing RUN_ID"
and blocks for good: the parent kills this process there, before any record of checkpoint 2
is written. Prints the payload digest of checkpoint 2 on the line before.
"""

import threading

import torch

import plinth
from plinth.store.blobs import BlobStore
from plinth.tracking.context import backend

with plinth.start_run(experiment="killed", capture_env=False) as run:
    run.log_checkpoint({"w": torch.zeros(4)}, step=1, metrics={"loss": 1.0}).wait()

    blobs = type(backend().blobs)  # a folder's, or a team server's
    stored = blobs.adopt_file
    never = threading.Event()

    def adopt_then_report(self: BlobStore, path: str, digest: str) -> int:
        size = stored(self, path, digest)
        print(digest, flush=True)
        return size

    def block(self: BlobStore, data: bytes, *, durable: bool = True) -> tuple[str, int]:
        print("writing", run.id, flush=True)
        never.wait()
        raise AssertionError("unreachable: killed while blocked")

    blobs.adopt_file = adopt_then_report  # type: ignore[method-assign]
    blobs.put_bytes = block  # type: ignore[method-assign]
    run.log_checkpoint({"w": torch.ones(250_000)}, step=2, metrics={"loss": 0.5})
    never.wait()
