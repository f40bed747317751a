"""The `plinth` command's exit codes: one table from the error tree, read by `main`.

0 ok, 1 error, 2 bad input or settings, 3 not found, 4 integrity failure, 5 store failure,
130 interrupted.
"""

from __future__ import annotations

from collections.abc import Mapping

from plinth.core.errors import (
    ConfigError,
    IntegrityError,
    InvalidInput,
    NotFound,
    PlinthError,
    ResourceError,
    StoreError,
)

EXIT_CODES: Mapping[type[BaseException], int] = {
    InvalidInput: 2,
    ResourceError: 2,
    ConfigError: 2,
    NotFound: 3,
    IntegrityError: 4,
    StoreError: 5,
    PlinthError: 1,
}
"""The exit code of each error type; subclasses not listed exit as their nearest listed base."""


def exit_code_for(error: BaseException | type[BaseException]) -> int:
    """The exit code `plinth` ends with after `error` (an error or its type); 1 where none is listed.

    Example:
        >>> exit_code_for(NotFound)
        3
    """
    kind = error if isinstance(error, type) else type(error)
    for base in kind.__mro__:
        code = EXIT_CODES.get(base)
        if code is not None:
            return code
    return 1
