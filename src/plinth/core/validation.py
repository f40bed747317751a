"""Checks for user-supplied names and values, shared by every capability."""

from __future__ import annotations

import math
import numbers
import re

from plinth.core.errors import InvalidInput

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_key(key: object, what: str) -> str:
    """Validate a metric, param or tag key and return it.

    Keys may use `/` to namespace (`train/loss`) but may not look like paths that escape
    (`/abs`, `a/../b`, `a//b`, backslashes) or hold control characters.
    """
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput(f"A {what} key must be a non-empty string, got {key!r}.")
    if len(key) > MAX_KEY:
        raise InvalidInput(
            f"{what.capitalize()} key {key[:40]!r}… is {len(key)} characters; the limit is {MAX_KEY}."
        )
    if _CONTROL.search(key):
        raise InvalidInput(f"{what.capitalize()} key {key!r} holds a control character; use printable text.")
    parts = key.split("/")
    if "\\" in key or key.startswith("/") or key.endswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(
            f"{what.capitalize()} key {key!r} looks like a file path; use names like 'train/loss' "
            "without leading or trailing '/', '..', '//' or backslashes."
        )
    return key


def check_metric_value(key: str, value: object) -> float:
    """Return `value` as a float, or raise InvalidInput when it is not a real number."""
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:  # 0-d arrays, torch scalars
        try:
            return check_metric_value(key, value.item())
        except (TypeError, ValueError):
            pass
    raise InvalidInput(
        f"Metric {key!r} must be a number, got {type(value).__name__} {value!r:.60}; "
        "log text as a tag or a param instead."
    )


def check_step(key: str, step: object) -> int:
    """Return a step as an int; raise InvalidInput for negative or non-integer steps."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidInput(f"Step of metric {key!r} must be an integer, got {step!r}.")
    if step < 0:
        raise InvalidInput(f"Step of metric {key!r} must be >= 0, got {step}.")
    return int(step)


def param_text(key: str, value: object) -> str:
    """Render a param value as the string it is stored as."""
    if isinstance(value, float) and not math.isfinite(value):
        text = repr(value)
    elif isinstance(value, str):
        text = value
    else:
        text = str(value)
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidInput(
            f"Param {key!r} is {len(text)} characters long; the limit is {MAX_PARAM_VALUE}. "
            "Log large values as an artifact."
        )
    if _CONTROL.sub("", text.replace("\n", "").replace("\t", "")) != text.replace("\n", "").replace("\t", ""):
        raise InvalidInput(f"Param {key!r} holds control characters; use printable text.")
    return text


def check_name(name: object, what: str) -> str:
    """Validate an experiment, run or dataset name."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"A {what} name must be a non-empty string, got {name!r}.")
    if len(name) > 256 or _CONTROL.search(name):
        raise InvalidInput(f"{what.capitalize()} name {name[:40]!r} is too long or holds control characters.")
    return name


def check_artifact_path(path: str) -> str:
    """Normalize a logical artifact path; refuse absolute paths and `..` segments."""
    clean = path.replace("\\", "/").strip("/")
    parts = clean.split("/")
    if not clean or any(p in ("", ".", "..") for p in parts) or _CONTROL.search(clean):
        raise InvalidInput(
            f"Artifact path {path!r} is not a plain relative path; use e.g. 'plots/confusion.png'."
        )
    return clean
