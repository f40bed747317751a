"""The error tree as HTTP: one table from error types to statuses, shared by every HTTP face.

The model server, the team server and the MLflow dialect answer an error with the status
`status_for` gives: the status a `RequestError` carries (a body that is malformed, too large or
of another media type), else the table's entry for the error's nearest class, else 500. A new
error gets its status here, in one place; an exception outside the tree is a 500, never a 4xx.

Data only: faces turn the status into a response and log what answers 5xx.
"""

from __future__ import annotations

from collections.abc import Mapping

from plinth.core.errors import (
    AccessError,
    ConfigError,
    ConflictError,
    Forbidden,
    IntegrityError,
    InvalidInput,
    ModelFailed,
    NotFound,
    PlinthError,
    ResourceError,
    RunNotActive,
    StepFailed,
    StoreBusy,
    StoreError,
    TooManyAttempts,
    Unauthorized,
)

STATUSES: Mapping[type[BaseException], int] = {
    InvalidInput: 422,
    ConflictError: 409,
    NotFound: 404,
    RunNotActive: 409,
    ResourceError: 422,
    IntegrityError: 500,
    StoreError: 503,
    StoreBusy: 503,
    ModelFailed: 500,
    StepFailed: 500,
    ConfigError: 500,
    AccessError: 403,
    Unauthorized: 401,
    Forbidden: 403,
    TooManyAttempts: 429,
    PlinthError: 500,
}
"""The status of each error type; subclasses not listed answer as their nearest listed base."""


class RequestError(InvalidInput):
    """A request refused for its transport or shape, with the status that says why.

    400 for a body that is not the JSON asked for, 413 past the size or row limit, 415 for
    another media type, 422 (the default) for well-formed input the model cannot take.
    """

    def __init__(self, message: str, status: int = 422, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message, problems)
        self.status = status

    def __reduce__(self) -> tuple[type, tuple[str, int, list[dict[str, str]]]]:  # type: ignore[override]
        return (type(self), (str(self), self.status, self.problems))


def status_for(error: BaseException) -> int:
    """The HTTP status that answers `error`.

    Example:
        >>> status_for(NotFound("No model 'x'."))
        404
        >>> status_for(RequestError("Too large.", 413))
        413
        >>> status_for(KeyError("x"))
        500
    """
    if isinstance(error, RequestError):
        return error.status
    for kind in type(error).__mro__:
        status = STATUSES.get(kind)
        if status is not None:
            return status
    return 500
