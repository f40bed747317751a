"""One of several processes logging to the same store at once."""

import sys

import plinth

worker, points = int(sys.argv[1]), int(sys.argv[2])
with plinth.start_run(experiment="parallel", params={"worker": worker}) as run:
    for step in range(points):
        run.log_metric("loss", step * 0.5, step=step)
        if step % 997 == 0:
            run.log_metrics({"a": 1.0, "b": 2.0}, step=step)
            run.set_tags({"progress": step})
    run.log_metric_points("bulk", [float(i) for i in range(points)])
print(run.id)
