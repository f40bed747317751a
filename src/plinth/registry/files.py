"""Reading model input from files and writing predictions (for `plinth models predict`)."""

from __future__ import annotations

import json
import os
from typing import Any

from plinth.core.errors import InvalidInput

READABLE = (".csv", ".parquet", ".pq", ".json", ".jsonl")


def read_frame(path: str) -> Any:
    """A DataFrame from CSV, Parquet, JSON (records, {"columns", "data"} or {"instances"}) or JSONL."""
    import pandas as pd

    if not os.path.isfile(path):
        raise InvalidInput(f"Input file {path!r} does not exist.")
    lower = path.lower()
    try:
        if lower.endswith(".csv"):
            return pd.read_csv(path)
        if lower.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if lower.endswith(".jsonl"):
            return pd.read_json(path, lines=True)
        if lower.endswith(".json"):
            with open(path) as fh:
                return frame_from_json(json.load(fh))
    except (ValueError, OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"Cannot read {path!r}: {exc}") from exc
    raise InvalidInput(f"Cannot read {path!r}: use one of {', '.join(READABLE)}.")


def frame_from_json(doc: Any) -> Any:
    """A DataFrame from a list of records, {"instances": [...]} or {"columns": [...], "data": [[...]]}."""
    import pandas as pd

    if isinstance(doc, dict) and "instances" in doc:
        doc = doc["instances"]
    if isinstance(doc, dict) and "columns" in doc and "data" in doc:
        return pd.DataFrame(doc["data"], columns=doc["columns"])
    if isinstance(doc, list) and all(isinstance(r, dict) for r in doc):
        return pd.DataFrame(doc)
    raise InvalidInput(
        'JSON input must be a list of records, {"instances": [...]} or {"columns": [...], "data": [[...]]}.'
    )


def write_predictions(predictions: Any, path: str) -> None:
    """Write predictions (one row per input row) to CSV, Parquet or JSON, atomically."""
    import numpy as np
    import pandas as pd

    array = np.asarray(predictions)
    frame = (
        pd.DataFrame(array, columns=[f"prediction_{i}" for i in range(array.shape[1])])
        if array.ndim == 2
        else pd.DataFrame({"prediction": array})
    )
    lower = path.lower()
    tmp = f"{path}.tmp-{os.getpid()}"
    if lower.endswith(".csv"):
        frame.to_csv(tmp, index=False)
    elif lower.endswith((".parquet", ".pq")):
        frame.to_parquet(tmp, index=False)
    elif lower.endswith(".json"):
        frame.to_json(tmp, orient="records")
    else:
        raise InvalidInput(f"Cannot write {path!r}: use .csv, .parquet or .json.")
    os.replace(tmp, path)
