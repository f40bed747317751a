"""Logs metrics, flushes once, prints how many points are durable, then keeps logging unflushed."""

import sys

import plinth

flushed_at = int(sys.argv[1])
with plinth.start_run(experiment="crash") as run:
    for step in range(flushed_at):
        run.log_metric("loss", 1.0 / (step + 1), step=step)
    run.flush()
    print(run.id, flushed_at, flush=True)
    step = flushed_at
    while True:
        run.log_metric("loss", 0.0, step=step)
        step += 1
