"""Checks for user-supplied names and values, shared by every capability."""

from __future__ import annotations

import decimal
import math
import numbers
import re
import unicodedata

from plinth.core.errors import InvalidInput

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_ARTIFACT_PATH = 1024  # UTF-8 bytes: leaves a destination folder room under PATH_MAX (4096)
MAX_ARTIFACT_DEPTH = 64
MAX_ARTIFACT_PART = 255  # bytes in one file name, the limit of common file systems
_NOT_IN_NAMES = ("Cc", "Cs", "Zl", "Zp")  # controls, lone surrogates, line and paragraph breaks
MAX_ID = 128
MAX_NAME = 256
MAX_INT64 = 2**63 - 1  # the largest step or timestamp a store holds
# What a name or key may not hold: controls (C0 and C1), line and paragraph separators, and
# lone surrogates, which no store can encode as UTF-8. A free-text value may hold line breaks,
# tabs and separators, but no other C0 control and no lone surrogate.
_NOT_IN_KEYS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NOT_IN_VALUES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
"""What no database binds as text: a NUL, a lone surrogate."""
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


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
    if _NOT_IN_KEYS.search(key):
        raise InvalidInput(f"{what.capitalize()} key {key!r} holds {_bad_text(key)}; use printable text.")
    parts = key.split("/")
    if "\\" in key or key.startswith("/") or key.endswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(
            f"{what.capitalize()} key {key!r} looks like a file path; use names like 'train/loss' "
            "without leading or trailing '/', '..', '//' or backslashes."
        )
    return key


def check_metric_value(key: str, value: object) -> float:
    """Return `value` as a float, or raise InvalidInput when it is not a real number.

    Real numbers are ints, floats, Fractions, Decimals and numpy or torch scalars; NaN and ±inf
    are among them. Booleans, complex numbers and numbers beyond the float range are not.
    """
    if isinstance(value, bool):
        raise InvalidInput(f"Metric {key!r} must be a number, got the boolean {value}; log float({value}).")
    if isinstance(value, (numbers.Real, decimal.Decimal)):
        return _real(key, value)
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:  # 0-d arrays, torch scalars
        try:
            return check_metric_value(key, value.item())
        except (TypeError, ValueError):
            pass
    raise InvalidInput(
        f"Metric {key!r} must be a number, got {type(value).__name__} {value!r:.60}; {_not_real(value)}."
    )


def _real(key: str, value: numbers.Real | decimal.Decimal) -> float:
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    except (TypeError, ValueError) as exc:  # a signaling NaN
        raise InvalidInput(
            f"Metric {key!r} is {value!r:.60}, which no float holds ({exc}); log float('nan') instead."
        ) from None
    if math.isinf(result) and value != result:  # float() rounds a huge Decimal to inf
        raise InvalidInput(f"Metric {key!r} is beyond the range of a 64-bit float.")
    return result


def _not_real(value: object) -> str:
    """What to do with a value that is not a real number, for a message."""
    if isinstance(value, numbers.Complex):
        return "log its magnitude, abs(value), or its real part, value.real"
    if isinstance(value, (str, bytes)):
        return "convert a number written as text with float(text); log other text as a tag or a param"
    return "log text as a tag or a param instead"


def metric_array_problem(kind: str, dtype: str, shape: tuple[int, ...]) -> str | None:
    """Why an array of numpy dtype `kind` ('f', 'U', ...) and `shape` cannot be a metric's values.

    None when it can: a 1-D array of integers or floats. The answer names what was found and
    what to do, e.g. "it holds text (dtype <U3); convert numbers written as text with .astype(float)".
    """
    if len(shape) != 1:
        return f"it has shape {shape}; log a 1-D series per metric, e.g. values.ravel() or one key per column"
    if kind in "iuf":
        return None
    found, todo = _ARRAY_HINTS.get(kind, ("no numbers", "log an array of floats"))
    return f"it holds {found} (dtype {dtype}); {todo}"


_ARRAY_HINTS = {  # numpy dtype kind: (what the array holds, what to do)
    "b": ("booleans", "convert them with .astype(float) if you mean 0 and 1"),
    "U": ("text", "convert numbers written as text with .astype(float); log other text as a tag"),
    "S": ("bytes", "decode them, then convert numbers with .astype(float)"),
    "c": ("complex numbers", "log np.abs(values) or values.real"),
    "M": ("dates", "log numbers, e.g. seconds since an origin"),
    "m": ("durations", "log numbers, e.g. values / np.timedelta64(1, 's')"),
}


def check_step(key: str, step: object) -> int:
    """Return a step as an int; raise InvalidInput for negative or non-integer steps."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidInput(f"Step of metric {key!r} must be an integer, got {step!r}.")
    if int(step) < 0:
        raise InvalidInput(f"Step of metric {key!r} must be >= 0, got {step}.")
    if int(step) > MAX_INT64:
        raise InvalidInput(f"Step of metric {key!r} must be below 2**63, got {step}.")
    return int(step)


def param_text(key: str, value: object, what: str = "param") -> str:
    """Render a param (or, with `what="tag"`, a tag) value as the string it is stored as.

    Raises:
        InvalidInput: the text is too long, or holds a lone surrogate or a control character
            other than a line break or a tab; the message names the key and `what`.
    """
    if isinstance(value, float) and not math.isfinite(value):
        text = repr(value)
    elif isinstance(value, str):
        text = value
    else:
        text = str(value)
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidInput(
            f"{what.capitalize()} {key!r} is {len(text)} characters long; the limit is {MAX_PARAM_VALUE}. "
            "Log large values as an artifact."
        )
    return check_text(text, f"value of {what} {key!r}")


def check_text(text: object, what: str) -> str:
    """Validate free text (a description, a param or tag value) and return it.

    Line breaks, tabs and any printable character are welcome; other control characters and
    lone surrogates (which no store can encode) are not.

    Raises:
        InvalidInput: `text` is not a string or holds such a character; the message names `what`.
    """
    if not isinstance(text, str):
        raise InvalidInput(f"The {what} must be text, got {type(text).__name__}.")
    if _NOT_IN_VALUES.search(text):
        problem = _bad_text(text) if _SURROGATE.search(text) else "a control character"
        raise InvalidInput(f"The {what} holds {problem}; use printable text (line breaks and tabs are fine).")
    return text


def storable(text: str | None) -> str | None:
    """`text` with each NUL and lone surrogate written as its escape (`\\x00`, `\\udce9`).

    For text plinth records rather than takes from a user, such as an exception's message: a
    file name decoded with errors='surrogateescape', or a NUL in a message, must not stop a
    failed run from being ended (PostgreSQL holds no NUL in text, and no store a surrogate).
    """
    if text is None or not UNSTORABLE.search(text):
        return text
    return UNSTORABLE.sub(lambda m: ascii(m.group())[1:-1], text)


def unstorable(text: str) -> str | None:
    """What in `text` no database can take as text (a NUL, a lone surrogate), or None."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"a NUL character (\\x00) at position {found.start()}"
    return f"a lone surrogate ({ascii(found.group())[1:-1]}) at position {found.start()}"


def check_name(name: object, what: str) -> str:
    """Validate an experiment, run, dataset, model or flow name: 1 to 256 characters on one line.

    Raises:
        InvalidInput: not text, blank, too long, or holding a control character, a line or
            paragraph separator or a lone surrogate; the message names `what`.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"A {what} name must be a non-empty string, got {name!r}.")
    if len(name) > MAX_NAME:
        raise InvalidInput(
            f"{what.capitalize()} name {name[:40]!r}… is {len(name)} characters; the limit is {MAX_NAME}."
        )
    if _NOT_IN_KEYS.search(name):
        raise InvalidInput(f"{what.capitalize()} name {name!r} holds {_bad_text(name)}; use printable text.")
    return name


def _bad_text(text: str) -> str:
    """What `text` holds that a store or a terminal cannot take, for a message."""
    if _SURROGATE.search(text):
        return (
            "a lone surrogate, which cannot be stored as UTF-8 (text decoded with errors='surrogateescape'?)"
        )
    if _CONTROLS.search(text):
        return "a control character or a line break"
    return "a line or paragraph separator"


def check_id(value: object, what: str) -> str:
    """Validate a request or subject id and return it.

    An id is 1 to 128 characters of printable text (a UUID, a ULID, an email address); control
    characters, lone surrogates and blank ids are refused, as the stores cannot hold them all.

    Raises:
        InvalidInput: the id is not text, blank, too long or not printable.
    """
    problem = id_problem(value)
    if problem is not None:
        raise InvalidInput(f"The {what} {value!r:.60} is not valid: {problem}.")
    return value  # type: ignore[return-value]


def id_problem(value: object) -> str | None:
    """Why `value` cannot be a request or subject id, or None when it can."""
    if not isinstance(value, str):
        return f"ids are text, not {type(value).__name__}"
    if not value.strip():
        return "ids are not blank"
    if len(value) > MAX_ID:
        return f"ids are at most {MAX_ID} characters, this one has {len(value)}"
    if not value.isprintable():
        return "ids are printable text, without control characters or lone surrogates"
    return None


def check_artifact_path(path: object) -> str:
    """Normalize a logical artifact path (`\\` to `/`, no trailing `/`) and return it.

    The path must name a file every platform can write under a download folder: relative,
    no `.` or `..` parts, printable text, parts of at most 255 bytes, at most
    MAX_ARTIFACT_DEPTH parts and MAX_ARTIFACT_PATH bytes in UTF-8 (within the width of its
    column, and short enough to be written under a destination folder).

    Raises:
        InvalidInput: the path breaks one of these rules; the message names which.
    """
    if not isinstance(path, str):
        raise InvalidInput(f"An artifact path must be a string, got {type(path).__name__}.")
    clean = path.replace("\\", "/").rstrip("/")
    problem = _artifact_path_problem(clean)
    if problem:
        raise InvalidInput(f"Artifact path {path[:200]!r} {problem}; use e.g. 'plots/confusion.png'.")
    return clean


def _artifact_path_problem(clean: str) -> str | None:
    parts = clean.split("/")
    if clean.startswith("/") or re.match(r"[A-Za-z]:", clean):
        return "is absolute; artifact paths are relative to the run"
    if not clean or any(p in ("", ".", "..") for p in parts):
        return "is not a plain relative path (empty, '.' or '..' parts)"
    if any(unicodedata.category(c) in _NOT_IN_NAMES for c in clean):
        return "holds a control character, a line break or a lone surrogate; use printable text"
    size = len(clean.encode())
    if size > MAX_ARTIFACT_PATH:
        return f"is {size} bytes long in UTF-8; the limit is {MAX_ARTIFACT_PATH}"
    if len(parts) > MAX_ARTIFACT_DEPTH:
        return f"is {len(parts)} folders deep; the limit is {MAX_ARTIFACT_DEPTH}"
    if any(len(p.encode()) > MAX_ARTIFACT_PART for p in parts):
        return f"has a part longer than {MAX_ARTIFACT_PART} bytes, more than file systems allow"
    return None
