"""Delayed labels: ground truth that arrives after the prediction, joined to it by request id."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from plinth.core.entities import Label
from plinth.core.errors import InvalidInput, NotFound
from plinth.core.ids import now_ms
from plinth.core.validation import id_problem
from plinth.store.base import Store

LabelInput = Mapping[str, Any] | Iterable[tuple[Any, ...]] | Any  # mapping, pairs/triples, or a DataFrame


def log_labels(store: Store, model: str, labels: LabelInput) -> int:
    """Store labels for served requests of `model`; returns how many were stored.

    `labels` is {request_id: label}, an iterable of (request_id, label) or
    (request_id, label, subject_id), or a DataFrame with columns request_id, label and
    optionally subject_id. A label is one value, or a list with one value per row for a
    multi-row request. A later label for the same request replaces the earlier one.
    Request and subject ids are 1 to 128 characters of printable text (a whole-number
    subject id is taken as its digits).

    Raises:
        NotFound: no registered model of that name.
        InvalidInput: a bad request id or label (every problem is listed; nothing is stored).
    """
    try:  # what loading a model reads, so a model server's predictor token may post labels
        store.list_model_versions(model)
    except NotFound:
        raise NotFound(f"No registered model {model!r}; list them with `plinth models list`.") from None
    rows = list(_triples(labels))
    if not rows:
        raise InvalidInput("No labels given: pass (request_id, label) pairs, a mapping or a DataFrame.")
    problems: list[dict[str, str]] = []
    lines: list[str] = []
    out: list[Label] = []
    stamp = now_ms()
    for number, (request_id, value, given) in enumerate(rows, 1):
        subject = _subject(given)
        problem, got = _check(request_id, value, subject)
        if problem:
            problems.append({"field": f"labels[{number - 1}]", "expected": problem, "got": f"{got!r:.60}"})
            lines.append(f"label {number} ({request_id!r:.60}): {problem}")
            continue
        out.append(Label(model, request_id, _json(value), stamp, subject))
    if problems:
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InvalidInput(
            f"{len(problems)} of {len(rows)} labels are not valid; none stored:\n  "
            + "\n  ".join(lines[:20])
            + more,
            problems[:50],
        )
    return store.write_labels(model, out)


def read_label_file(path: str) -> Any:
    """Read labels from CSV, JSON lines or Parquet (columns request_id, label[, subject_id])."""
    import pandas as pd

    if not os.path.isfile(path):
        raise InvalidInput(f"No label file at {path!r}.")
    lower = path.lower()
    try:
        if lower.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        elif lower.endswith((".jsonl", ".ndjson", ".json")):
            frame = pd.read_json(path, lines=True, dtype={"request_id": str, "subject_id": str})
        else:
            frame = pd.read_csv(path, dtype={"request_id": str, "subject_id": str})
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InvalidInput(f"Could not read labels from {path!r}: {exc}") from None
    missing = [c for c in ("request_id", "label") if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"{path!r} lacks the column(s) {', '.join(missing)}; it needs request_id and label "
            f"(and may have subject_id); it has {', '.join(map(str, frame.columns))}."
        )
    return frame


def _triples(labels: LabelInput) -> Iterable[tuple[Any, Any, Any]]:
    if hasattr(labels, "columns") and hasattr(labels, "itertuples"):  # a DataFrame
        frame: Any = labels
        columns = list(frame.columns)
        if "request_id" not in columns or "label" not in columns:
            raise InvalidInput(
                "A label frame needs the columns request_id and label (and may have subject_id)."
            )
        subjects = frame["subject_id"] if "subject_id" in columns else [None] * len(frame)
        for request_id, value, subject in zip(frame["request_id"], frame["label"], subjects, strict=True):
            yield request_id, _plain(value), None if _missing(subject) else subject
        return
    if isinstance(labels, Mapping):
        for request_id, value in labels.items():
            yield request_id, value, None
        return
    if isinstance(labels, (str, bytes)):
        raise InvalidInput("labels must be (request_id, label) pairs, a mapping or a DataFrame, not text.")
    for item in labels:
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise InvalidInput(
                "Each label must be (request_id, label) or (request_id, label, subject_id), "
                f"got {item!r:.80}."
            )
        yield item[0], item[1], item[2] if len(item) == 3 else None


def _subject(value: Any) -> Any:
    value = _plain(value)
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _check(request_id: Any, value: Any, subject: Any) -> tuple[str | None, Any]:
    """What is wrong with one label (None when nothing is) and the value at fault."""
    problem = id_problem(request_id)
    if problem is not None:
        return f"the request id is not valid ({problem})", request_id
    problem = None if subject is None else id_problem(subject)
    if problem is not None:
        return f"the subject id is not valid ({problem})", subject
    values = value if isinstance(value, list) else [value]
    if not values:
        return "an empty list is not a label", value
    for item in values:
        if _missing(item):
            return "the label is missing (None or NaN)", item
        if not isinstance(item, (str, int, float, bool)):
            return f"a label must be a number, text or a list of them, not {type(item).__name__}", item
    return None, None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # NumPy scalars
    return item() if callable(item) and not isinstance(value, (list, str)) else value


def _json(value: Any) -> str:
    import json

    return json.dumps(value if not isinstance(value, list) else [_plain(v) for v in value])
