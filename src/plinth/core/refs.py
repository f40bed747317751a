"""References to numbered versions: `NAME/VERSION` for models and datasets, `NAME@ALIAS` for models.

One reading for every face (the registry, the CLI, lineage, monitoring): a version is written in
ASCII digits only (`str.isdigit()` also accepts '²' and '٣', which `int()` then refuses), with no
sign and no spaces, and is at most MAX_VERSION, the largest number a store's version column holds.
A reference is text a store can hold: not blank, and no lone surrogates.
"""

from __future__ import annotations

import re

from plinth.core.errors import InvalidInput

MAX_VERSION = 2**31 - 1
_DIGITS = re.compile(r"[0-9]+")


def check_ref(ref: object, what: str, forms: str) -> str:
    """Return `ref` when it is text a store can look up; InvalidInput naming `forms` otherwise.

    Args:
        ref: the reference as given.
        what: what it names ("model", "dataset"), for the message.
        forms: the accepted forms, e.g. "'name', 'name/VERSION' or 'name@ALIAS'".
    """
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f"A {what} reference must be {forms}, got {ref!r:.80}.")
    try:
        ref.encode()
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"The {what} reference {ref!r:.80} holds a lone surrogate, which no store can hold; "
            "use printable text."
        ) from exc
    return ref


def is_version(text: str) -> bool:
    """True when `text` is written as a version number (ASCII digits), whatever its size."""
    return _DIGITS.fullmatch(text) is not None


def parse_version(text: str, ref: str) -> int:
    """The version number `text` spells (1 to MAX_VERSION); `ref` is the whole reference, for messages.

    Raises:
        InvalidInput: not ASCII digits, zero, or past MAX_VERSION.
    """
    if not is_version(text) or not text.strip("0"):
        raise InvalidInput(f"The version in {ref!r:.80} must be a positive whole number, e.g. 3.")
    digits = text.lstrip("0")
    if len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
        raise InvalidInput(
            f"The version in {ref!r:.80} is larger than any version can be (at most {MAX_VERSION})."
        )
    return int(digits)


def split_version(ref: str) -> tuple[str, int | None]:
    """('NAME', N) for 'NAME/N' whose last part is written as a number, else (ref, None).

    Raises:
        InvalidInput: the last part is a number but not a valid version (0, too large), or
            nothing comes before it.
    """
    name, slash, number = ref.rpartition("/")
    if not slash or not is_version(number):
        return ref, None
    if not name:
        raise InvalidInput(f"The reference {ref!r:.80} has no name before its version; use NAME/VERSION.")
    return name, parse_version(number, ref)


def version_text(version: int) -> str:
    """A version number as a message shows it; one past what any store holds is not spelled out."""
    if -MAX_VERSION <= version <= MAX_VERSION:
        return str(version)
    return f"{'below -' if version < 0 else 'above '}{MAX_VERSION}"
