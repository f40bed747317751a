"""The demo's monitoring part: shifted traffic, delayed labels, drift, a report and the lineage."""

from __future__ import annotations

import os
import random
from typing import Any

from plinth.cli.render import console, line, number, say, table

SHIFTED = ("pixel_2_3", "pixel_3_3", "pixel_4_4", "pixel_5_4")
"""Pixels the demo's second wave of traffic brightens: a scanner that smears the middle strokes."""


def shift(features: Any) -> Any:
    """A copy of the digits with the SHIFTED pixels brightened (clipped to the 0-16 scale)."""
    out = features.copy()
    for name in SHIFTED:
        out[name] = (out[name] + 9).clip(upper=16)
    return out


def monitor_demo(name: str, sent: list[tuple[str, int, bool]], truth: list[int]) -> None:
    """Log labels for most requests, show drift and performance before and after the shift,
    write the monitoring report and print the served version's lineage."""
    from plinth.governance.api import lineage
    from plinth.monitoring.api import drift, log_labels
    from plinth.tracking.context import backend

    store = backend().store
    chooser = random.Random(0)
    labeled = [(rid, truth[i]) for rid, i, _ in sent if chooser.random() < 0.7]  # 30 % never labeled
    log_labels(name, labeled)
    say(f"Logged {len(labeled)} delayed labels for {len(sent)} requests (the rest stay unlabeled).")

    first_shifted = next((rid for rid, _, moved in sent if moved), None)
    found = store.find_prediction(first_shifted) if first_shifted else None
    if found is None:
        return
    boundary = found.time_ms
    before = drift(name, end=boundary, since="1h")
    after = drift(name, start=boundary)
    _drift_table(before, after)
    _performance_table(name, boundary)
    _report(name)
    mv = store.get_model_version(name, store.resolve_alias(name, "champion"))
    say(line(("Lineage ", "bold green"), f"of {mv.ref} (plinth lineage {name}@champion):"))
    graph = lineage(f"{name}@champion")
    for way, title in (("up", "where it came from"), ("down", "what came of it")):
        say(f"  {title}:")
        for text in graph.tree(way):
            say(f"    {text}")


def _drift_table(before: Any, after: Any) -> None:
    calm = {f.name: f for f in before.report.features}
    shown = sorted(after.report.features, key=lambda f: -(f.psi or 0.0))[:6]
    rows = [
        (
            f.name,
            number(calm[f.name].psi) if f.name in calm else "-",
            number(f.psi),
            number(f.js_distance),
            "DRIFTED" if f.drifted else "ok",
        )
        for f in shown
    ]
    if after.report.prediction is not None:
        p = after.report.prediction
        rows.append(
            ("(predictions)", "-", number(p.psi), number(p.js_distance), "DRIFTED" if p.drifted else "ok")
        )
    console.print(
        table(
            f"Drift against the training data ({after.reference}), the 6 most moved features",
            ["feature", "PSI before", "PSI after shift", "JS after", "status"],
            rows,
        )
    )
    say(
        f"Before the shift: {len(before.drifted_features)} drifted features; after: "
        f"{', '.join(after.drifted_features) or 'none'}"
    )


def _performance_table(name: str, boundary: int) -> None:
    from plinth.monitoring.api import performance

    rows = []
    for label, report in (
        ("before the shift", performance(name, since="1h", end=boundary)),
        ("after the shift", performance(name, start=boundary)),
    ):
        w = report.overall
        rows.append((label, w.predictions, w.labeled, f"{w.coverage:.0%}", number(w.metrics.get("accuracy"))))
    console.print(
        table(
            "Performance from delayed labels",
            ["traffic", "predictions", "labeled", "coverage", "accuracy"],
            rows,
        )
    )


def _report(name: str) -> None:
    from plinth.monitoring.report import report
    from plinth.tracking.context import backend

    path = os.path.join(backend().settings.home, "demo", "monitoring-report.html")
    report(name, since="1h", every="1s", html=path)  # the demo's traffic lasts seconds
    say(f"Monitoring report (drift, predictions, performance, latency): {path}")
