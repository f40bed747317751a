"""Batch-scoring side of `benchmarks/bench_serving.py`; runs in the project's interpreter.

Usage: python _serving_batch.py --data DATA --work DIR --rows N --batch-size B
       (PLINTH_HOME set by the caller, model "bc@champion" already registered there)

Writes DIR/input.parquet: N rows x the model's 30 float64 columns (breast_cancer rows drawn
with replacement and jittered by 2%, seeded; row groups of 1,000,000 rows, snappy). Then,
in this order: the raw loop (ParquetFile.iter_batches(B) -> RecordBatch.to_pandas() ->
model.predict on the unpickled estimator), plinth's `batch_predict("bc@champion", input,
output, batch_size=B)` (defaults otherwise: 1 worker, output stored as the run's artifact,
input hashed for lineage), the raw loop again. plinth's output is checked row for row
against the raw loop's labels. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time

from bench_serving import ALIAS, MODEL_FILE, MODEL_NAME, SEED

ROW_GROUP = 1_000_000
JITTER = 0.02


def _progress(msg: str) -> None:
    print(f"[batch] {msg}", file=sys.stderr, flush=True)


def generate(path: str, rows: int) -> float:
    """Write the input Parquet file; returns the seconds it took."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_breast_cancer

    t0 = time.perf_counter()
    X = load_breast_cancer(as_frame=True).data
    names = [str(c) for c in X.columns]
    base = X.to_numpy(dtype=np.float64)
    rng = np.random.default_rng(SEED)
    schema = pa.schema([(n, pa.float64()) for n in names])
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        done = 0
        while done < rows:
            n = min(ROW_GROUP, rows - done)
            block = base[rng.integers(0, len(base), n)] * rng.normal(1.0, JITTER, (n, len(names)))
            writer.write_table(pa.Table.from_arrays(list(block.T), schema=schema), row_group_size=ROW_GROUP)
            done += n
    return time.perf_counter() - t0


def raw_loop(model: object, path: str, batch_size: int) -> tuple[float, float, object]:
    """(wall s, s inside model.predict, labels) of reading the file in chunks and predicting each."""
    import numpy as np
    import pyarrow.parquet as pq

    predict_s = 0.0
    out = []
    t0 = time.perf_counter()
    with pq.ParquetFile(path) as pf:
        for batch in pf.iter_batches(batch_size=batch_size):
            frame = batch.to_pandas()
            t1 = time.perf_counter()
            out.append(model.predict(frame))  # type: ignore[attr-defined]
            predict_s += time.perf_counter() - t1
    wall = time.perf_counter() - t0
    return wall, predict_s, np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--batch-size", type=int, required=True)
    args = ap.parse_args()
    if not os.environ.get("PLINTH_HOME"):
        raise SystemExit("set PLINTH_HOME first")
    os.makedirs(args.work, exist_ok=True)
    src = os.path.join(args.work, "input.parquet")
    dst = os.path.join(args.work, "predictions.parquet")
    res: dict[str, object] = {"rows": args.rows, "batch_size": args.batch_size}

    _progress(f"writing {args.rows:,} rows to {src}")
    res["generate_s"] = generate(src, args.rows)
    res["input_bytes"] = os.path.getsize(src)
    _progress(f"  {res['input_bytes'] / 1e9:.2f} GB in {res['generate_s']:.1f} s")

    with open(os.path.join(args.data, MODEL_FILE), "rb") as fh:
        model = pickle.load(fh)

    _progress("raw loop (1/2)")
    wall_a, pred_a, labels = raw_loop(model, src, args.batch_size)
    res["raw_s"] = [wall_a]
    res["raw_predict_s"] = [pred_a]

    try:
        from plinth.serving.batch import batch_predict
    except ImportError as exc:  # the batch API is not there (yet)
        res["plinth_error"] = f"plinth.serving.batch.batch_predict is not importable: {exc}"
        _progress(str(res["plinth_error"]))
    else:
        ref = f"{MODEL_NAME}@{ALIAS}"
        _progress(f"plinth batch_predict({ref!r}, batch_size={args.batch_size:,})")
        t0 = time.perf_counter()
        try:
            result = batch_predict(ref, src, dst, batch_size=args.batch_size, progress=False)
        except Exception as exc:  # report, keep the raw numbers
            res["plinth_error"] = f"{type(exc).__name__}: {exc}"
            _progress(f"  FAILED: {res['plinth_error']}")
        else:
            res["plinth_s"] = time.perf_counter() - t0
            res["plinth_result"] = {
                "rows": result.rows,
                "chunks": result.chunks,
                "chunks_skipped": result.chunks_skipped,
                "seconds": result.seconds,
                "rows_per_s": result.rows_per_s,
                "model_version": result.model_version,
            }
            import numpy as np
            import pyarrow.parquet as pq

            got = pq.read_table(dst, columns=["prediction"]).column("prediction").to_numpy()
            res["plinth_rows_match"] = bool(len(got) == len(labels))
            res["plinth_mismatches"] = int((got != labels).sum()) if len(got) == len(labels) else None
            res["output_bytes"] = os.path.getsize(dst)
            res["positive_share"] = float(np.mean(labels))
            _progress(f"  {res['plinth_s']:.1f} s, mismatches: {res['plinth_mismatches']}")

    _progress("raw loop (2/2)")
    wall_b, pred_b, _ = raw_loop(model, src, args.batch_size)
    res["raw_s"].append(wall_b)  # type: ignore[union-attr]
    res["raw_predict_s"].append(pred_b)  # type: ignore[union-attr]
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
