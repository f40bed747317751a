"""Extension points where one capability lends behaviour to another without importing it.

The package's top level wires them (see `plinth/__init__.py`); e.g. the registry provides
`ActiveRun.log_model` to tracking this way, so tracking never imports the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plinth.core.errors import ConfigError

_hooks: dict[str, Callable[..., Any]] = {}


def provide(name: str, fn: Callable[..., Any]) -> None:
    """Register the implementation of hook `name` (the last one wins)."""
    _hooks[name] = fn


def call(name: str, *args: Any, **kwargs: Any) -> Any:
    """Call hook `name`; raise ConfigError when nothing provides it."""
    fn = _hooks.get(name)
    if fn is None:
        raise ConfigError(f"No implementation of {name!r} is loaded; import plinth (the package) first.")
    return fn(*args, **kwargs)
