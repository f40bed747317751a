"""Identity of a step call: its code, its inputs, and the cache key made of both."""

from __future__ import annotations

import hashlib
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import cloudpickle


def code_hash(fn: Callable[..., Any]) -> str:
    """sha256 of a function's source (or bytecode when there is no source)."""
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        code = fn.__code__
        text = repr((code.co_code, code.co_consts, code.co_names))
    return hashlib.sha256(f"{fn.__qualname__}\n{text}".encode()).hexdigest()


def input_digest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """sha256 of the arguments, with upstream results standing as their content digests."""
    data = cloudpickle.dumps((args, sorted(kwargs.items())), protocol=5)
    return hashlib.sha256(data).hexdigest()


def cache_key(code: str, inputs: str) -> str:
    """The key under which a step call's result can be reused."""
    return hashlib.sha256(f"{code}:{inputs}".encode()).hexdigest()
