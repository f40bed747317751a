"""Request bodies: the media type, a size limit enforced while reading, and the JSON document.

A body is read chunk by chunk and refused (413) as soon as it passes the limit, whether or not
it declared a Content-Length. JSON is parsed by orjson; bodies it refuses (NaN, Infinity, numbers
past the float range, escaped surrogates) are decoded as strict UTF-8 and get a second, lenient
parse so that the signature check can name the value; bytes that are not UTF-8 and escapes that are
not valid Unicode are refused with where they were found.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from plinth.serving.inputs import RequestError

JSON = "application/json"
_DIGITS = re.compile(r"[0-9]+")
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_PROBLEMS = 20


def is_json(content_type: str) -> bool:
    """True for application/json and structured `+json` types (application/vnd.api+json), with parameters."""
    media = content_type.partition(";")[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or (subtype.endswith("+json") and len(subtype) > 5))


async def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request's JSON object.

    Raises:
        RequestError: 415 for another media type, 413 past `max_bytes`, 400 for a body that is
            not a JSON object of valid Unicode text.
    """
    ctype = request.headers.get("content-type", "")
    if not is_json(ctype):
        raise RequestError(
            f"Send JSON with Content-Type: {JSON} (or an application/*+json type); got {ctype or 'none'}.",
            415,
        )
    doc = parse_json(await read_limited(request, max_bytes))
    if not isinstance(doc, dict):
        raise RequestError('The body must be a JSON object like {"instances": [...]}.', 400)
    return doc


async def read_limited(request: Request, max_bytes: int) -> bytes:
    """The body, read no further than `max_bytes` (a chunked body is not read whole before the 413)."""
    declared = request.headers.get("content-length")
    if declared is not None and _DIGITS.fullmatch(declared) and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestError("The client closed the connection before its body was read.", 400) from None
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """The document in `raw`; numbers past the float range become ±inf, as orjson would read them."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        doc = _lenient(_text(raw), exc)
    if _ESCAPED_SURROGATE.search(raw):
        problems = _surrogates(doc)
        if problems:
            raise RequestError(
                "The body holds text that is not valid Unicode (a lone surrogate escape such as "
                "\\ud800); send UTF-8 text: " + "; ".join(f"{p['field']}: {p['got']}" for p in problems[:5]),
                400,
                problems,
            )
    return doc


def _text(raw: bytes) -> str:
    """`raw` decoded as strict UTF-8: encoded surrogates (ED A0 80) and other invalid bytes are a 400.

    Bytes are never decoded leniently: `json.loads(bytes)` would let UTF-8-encoded surrogates
    through as lone surrogates, which no encoder downstream (the model, the log) can write.
    """
    skip = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0  # RFC 8259 lets parsers ignore it
    try:
        return raw[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        start, end = exc.start + skip, exc.end + skip
        got = f"the bytes {raw[start:end].hex(' ')} at byte offset {start} ({exc.reason})"
        raise RequestError(
            f"The body is not valid UTF-8: {got}; send the JSON as UTF-8 text.",
            400,
            [{"field": "<body>", "expected": "UTF-8 text", "got": got}],
        ) from None


def _lenient(text: str, error: Exception) -> Any:
    """Bodies with NaN or Infinity (not JSON, but common): parsed so the signature check names them."""
    try:
        return json.loads(text, parse_int=_integer)
    except (ValueError, RecursionError):
        raise RequestError(f"The body is not valid JSON: {error}", 400) from None


def _integer(text: str) -> int | float:
    """An integer literal as orjson reads it: exact within 64 bits, else the nearest float."""
    if len(text) <= 20:
        number = int(text)
        if -(2**63) <= number < 2**64:
            return number
    return float(text)


def _surrogates(doc: Any) -> list[dict[str, str]]:
    """Where text in `doc` holds a lone surrogate: up to 20 problems, each field and value escaped."""
    problems: list[dict[str, str]] = []
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack and len(problems) < _MAX_PROBLEMS:
        path, value = stack.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                problems.append(_surrogate_problem(path or "<body>", f"the text {_escaped(value)}"))
        elif isinstance(value, dict):
            for key, item in value.items():
                if _LONE_SURROGATE.search(key):
                    problems.append(_surrogate_problem(path or "<body>", f"the key {_escaped(key)}"))
                stack.append((f"{path}.{_escaped(key)}" if path else _escaped(key), item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return problems


def _surrogate_problem(field: str, got: str) -> dict[str, str]:
    return {"field": field, "expected": "valid Unicode text (no lone surrogates)", "got": got}


def _escaped(text: str) -> str:
    """`text` with surrogates written as \\udxxx escapes, at most 60 characters."""
    return text[:60].encode("utf-8", "backslashreplace").decode("utf-8")


def _too_large(max_bytes: int) -> RequestError:
    return RequestError(f"The body is larger than this server takes ({max_bytes} bytes).", 413)
