"""What the MLflow client scripts share: their arguments, their result file, error codes, hashes.

Each script runs under `.venv-mlflow` (MLflow 3.17.2), never under plinth's venv, and is
called as `python SCRIPT.py '<json args>' RESULT_PATH` with MLFLOW_TRACKING_URI (and
MLFLOW_TRACKING_TOKEN) set. Standard library only here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any


def args() -> dict[str, Any]:
    """The script's arguments (its first command-line argument, a JSON object)."""
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    return json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}


def emit(result: dict[str, Any]) -> None:
    """Write the script's result (JSON; NaN and infinities as strings) where the caller asked."""
    with open(sys.argv[2], "w") as fh:
        json.dump(_jsonable(result), fh, indent=1, sort_keys=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_digests(root: str) -> dict[str, str]:
    """Every file under `root` (relative path -> sha256)."""
    out = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(folder, name)
            out[os.path.relpath(full, root).replace(os.sep, "/")] = sha256_file(full)
    return out


def error_of(call: Callable[[], Any]) -> dict[str, Any]:
    """What an MlflowException raised by `call` says: {"error_code", "message"}; {"raised": None}
    when `call` returned."""
    from mlflow.exceptions import MlflowException

    try:
        call()
    except MlflowException as exc:
        return {"error_code": exc.error_code, "message": str(exc)[:500], "type": type(exc).__name__}
    return {"raised": None}
