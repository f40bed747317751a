"""Where a flow's code lives, so workers can run its steps and `resume` can find it again."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Callable
from types import ModuleType
from typing import Any

import cloudpickle

from plinth.core.errors import InvalidInput

# Files loaded by path get module names with this prefix; they are recorded by path, since
# another process cannot import them by name.
_FILE_MODULE = "plinth_flowfile_"
_LIBRARY_DIRS = tuple(
    os.path.realpath(p)
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


INTERACTIVE = "<interactive>"
"""The source of a flow defined in a notebook or a REPL: found again only in that session."""


def source_of(fn: Callable[..., Any]) -> str:
    """'module:qualname' for importable code, '/path/file.py:qualname' for scripts and files,
    '<interactive>:qualname' for a flow defined in a notebook cell or at a REPL prompt (its steps
    travel by value; it resumes from the same session)."""
    module = sys.modules.get(fn.__module__)
    path = getattr(module, "__file__", None)
    by_path = fn.__module__ == "__main__" or fn.__module__.startswith(_FILE_MODULE)
    if not by_path and module is not None and _importable_as(fn.__module__, path):
        return f"{fn.__module__}:{fn.__qualname__}"
    if path is None and fn.__module__ == "__main__":
        return f"{INTERACTIVE}:{fn.__qualname__}"  # a notebook cell or a REPL
    if path is None:
        raise InvalidInput(
            f"Flow {fn.__qualname__} is not defined in a file, so it cannot be resumed or scheduled; "
            "define it in a .py file."
        )
    return f"{os.path.abspath(path)}:{fn.__qualname__}"


def _importable_as(name: str, path: str | None) -> bool:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    origin = getattr(spec, "origin", None)
    return bool(origin and path and os.path.realpath(origin) == os.path.realpath(path))


def load_module(path: str) -> ModuleType:
    """Import a .py file by path (once per path) under a stable private name."""
    real = os.path.realpath(path)
    if not os.path.isfile(real):
        raise InvalidInput(f"Flow file {path!r} does not exist.")
    name = _FILE_MODULE + hashlib.sha256(real.encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, real)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_object(source: str) -> Any:
    """The object a source string names ('module:qualname' or '/path/file.py:qualname')."""
    where, _, qualname = source.rpartition(":")
    if not where or not qualname:
        raise InvalidInput(f"{source!r} does not name a flow; use FILE.py:NAME or module:NAME.")
    if where == INTERACTIVE:
        module = _interactive(qualname)
    else:
        module = load_module(where) if where.endswith(".py") else _import(where)
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise InvalidInput(f"{where} has no {qualname!r}.")
    return found


def _interactive(qualname: str) -> ModuleType:
    """The session's `__main__`, when the flow defined in one of its cells is there."""
    main = sys.modules.get("__main__")
    if (
        main is None
        or getattr(main, "__file__", None) is not None
        or not hasattr(main, qualname.split(".")[0])
    ):
        raise InvalidInput(
            f"Flow {qualname} was defined in a notebook or an interactive session; resume it from a "
            "session where it is defined (run the cell that defines it first), or move it to a .py file."
        )
    return main


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
            raise  # the module exists; something it imports is missing
        raise InvalidInput(
            f"Cannot import module {name!r}: it is not on this Python's path. Run from the folder "
            f"that holds it, or add that folder to PYTHONPATH."
        ) from exc


def pickled_function(fn: Callable[..., Any]) -> bytes:
    """cloudpickle bytes of a step function; user code (not installed libraries) goes by value."""
    module = sys.modules.get(fn.__module__)
    if module is not None and fn.__module__ != "__main__" and _is_user_code(module):
        cloudpickle.register_pickle_by_value(module)
    return cloudpickle.dumps(fn, protocol=5)


def _is_user_code(module: ModuleType) -> bool:
    path = getattr(module, "__file__", None)
    if path is None or module.__name__.startswith("plinth."):
        return False
    real = os.path.realpath(path)
    return not any(real.startswith(d + os.sep) for d in _LIBRARY_DIRS)
