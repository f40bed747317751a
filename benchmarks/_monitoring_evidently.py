"""Evidently side of `benchmarks/bench_monitoring.py`; runs under benchmarks/.venv-evidently.

Usage: python _monitoring_evidently.py --data DIR [--reps N]

Loads the generated reference and current frames (`monitoring.load_frames`, shared with the
plinth side), runs Evidently's DataDriftPreset on them with its defaults and prints one JSON
line on stdout: time, memory and the columns whose drift score crossed its threshold
(progress goes to stderr).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import time
from typing import Any

from bench_monitoring import frame_mb, load_frames, peak_mb, progress, reset_peak, status_mb


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _column_scores(snapshot: Any) -> dict[str, list[Any]]:
    """Column -> [method, score, threshold] of every ValueDrift metric in the snapshot."""
    scores = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = [config["method"], float(metric["value"]), float(config["threshold"])]
    return scores


def _drifted(method: str, score: float, threshold: float) -> bool:
    """Evidently's rule: a p-value drifts below its threshold, a distance at or above it."""
    return score < threshold if "p_value" in method else score >= threshold


def run(data_dir: str, reps: int) -> dict[str, Any]:
    """Time and measure Evidently's data-drift preset on the generated data."""
    rss_start = status_mb("VmRSS")
    start = time.perf_counter()
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    import_s = time.perf_counter() - start
    rss_libs = status_mb("VmRSS")
    reference, current, meta = load_frames(data_dir)
    rss_data = status_mb("VmRSS")
    progress("evidently", f"loaded {len(current):,} + {len(reference):,} rows")
    definition = DataDefinition(
        numerical_columns=list(meta["numeric"]), categorical_columns=list(meta["categorical"])
    )

    peak_reset = reset_peak()
    runs, peak_first, snapshot = [], None, None
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        current_ds = Dataset.from_pandas(current, data_definition=definition)
        reference_ds = Dataset.from_pandas(reference, data_definition=definition)
        t1 = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(current_data=current_ds, reference_data=reference_ds)
        t2 = time.perf_counter()
        runs.append({"dataset_s": t1 - t0, "report_s": t2 - t1, "total_s": t2 - t0})
        progress("evidently", f"run {len(runs)}: {t2 - t0:.1f} s")
        if peak_first is None:
            peak_first = peak_mb()
    scores = _column_scores(snapshot)
    return {
        "version": _version("evidently"),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "scipy": _version("scipy"),
        "import_s": import_s,
        "rss_start_mb": rss_start,
        "rss_libs_mb": rss_libs,
        "rss_data_mb": rss_data,
        "data_mb": frame_mb(reference, current),
        "peak_reset": peak_reset,
        "peak_first_mb": peak_first,
        "peak_all_mb": peak_mb(),
        "runs": runs,
        "flagged": [
            name for name, (method, score, threshold) in scores.items() if _drifted(method, score, threshold)
        ],
        "scores": scores,
        "rows": meta["rows"],
        "reference_rows": meta["reference_rows"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder written by monitoring.generate")
    ap.add_argument("--reps", type=int, default=1, help="runs (default 1)")
    args = ap.parse_args()
    print(json.dumps(run(args.data, args.reps)))


if __name__ == "__main__":
    main()
