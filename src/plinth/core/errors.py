"""The error tree. Every error plinth raises for a domain condition is one of these.

    PlinthError
    ├── InvalidInput          bad argument, key, value, filter, file
    │   └── ConflictError     a write that contradicts what is stored (param re-logged, name taken)
    ├── NotFound              an id, name or path that does not exist
    ├── RunNotActive          logging to a run that has ended
    ├── IntegrityError        stored bytes whose hash does not match (tampered or corrupted)
    ├── StoreError            the metadata or artifact store failed or is unreachable
    │   ├── StoreBusy         the database stayed locked past the retry budget
    │   └── SchemaError       the database schema is newer or older than this plinth
    └── ConfigError           a setting that cannot be used as given

Messages say what was wrong and what to do about it.
"""

from __future__ import annotations


class PlinthError(Exception):
    """Base of every error plinth raises on purpose."""

    exit_code: int = 1


class InvalidInput(PlinthError):
    """An argument, key, value, filter or file that plinth cannot accept."""

    exit_code = 2


class ConflictError(InvalidInput):
    """A write that contradicts something already stored."""


class NotFound(PlinthError):
    """An id, name or path that does not exist in the store."""

    exit_code = 3


class RunNotActive(PlinthError):
    """Logging was attempted on a run that is no longer running."""


class IntegrityError(PlinthError):
    """Stored bytes whose sha256 no longer matches the recorded digest."""

    exit_code = 4


class StoreError(PlinthError):
    """The metadata or artifact store failed or could not be reached."""

    exit_code = 5


class StoreBusy(StoreError):
    """The database stayed locked by other writers past the retry budget."""


class SchemaError(StoreError):
    """The database schema does not match this version of plinth."""


class ConfigError(PlinthError):
    """A setting (PLINTH_* variable or argument) that cannot be used as given."""

    exit_code = 2
