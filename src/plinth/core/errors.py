"""The error tree. Every error plinth raises for a domain condition is one of these.

    PlinthError
    ├── InvalidInput          bad argument, key, value, filter, file
    │   ├── ConflictError     a write that contradicts what is stored (param re-logged, name taken)
    │   └── RequestError      an HTTP request refused with its own status (`plinth.core.http`)
    ├── NotFound              an id, name or path that does not exist
    ├── RunNotActive          logging to a run that has ended
    ├── IntegrityError        stored bytes whose hash does not match (tampered or corrupted)
    │   ├── SignatureError    a model version unsigned or badly signed where signing is required
    │   └── AuditTampered     the audit chain was edited, cut or rewritten
    ├── StoreError            the metadata or artifact store failed or is unreachable
    │   ├── StoreBusy         the database stayed locked past the retry budget
    │   ├── SchemaError       the database schema is newer or older than this plinth
    │   └── ServerUnavailable the team server did not answer, or answered 5xx, after retries
    ├── ModelFailed           a model raised, or answered the wrong rows, while predicting
    ├── ResourceError         a step asks for more CPU, memory or GPUs than there are
    ├── StepFailed            a flow step failed after its retries
    ├── AccessError           refused for who asked (team server, model server with --auth)
    │   ├── Unauthorized      no token, or an unknown, revoked or expired one (401)
    │   ├── Forbidden         the role in this workspace does not allow it (403)
    │   └── TooManyAttempts   repeated failed logins from one client: back off (429)
    └── ConfigError           a setting that cannot be used as given
        ├── StorageNotShared  workers on other hosts cannot reach a SQLite file or local folder
        └── WrongAuditKey     the audit key is not the one the chain was written with

    PlinthWarning (UserWarning): worth attention, does not stop the operation (e.g. a model
    loaded under other library versions than it was saved with).

Messages say what was wrong and what to do about it. Faces decide what an error means to
their users: `plinth.core.http` maps the tree to HTTP statuses, `plinth.cli.errors` to exit codes.
"""

from __future__ import annotations


class PlinthError(Exception):
    """Base of every error plinth raises on purpose."""


class InvalidInput(PlinthError):
    """An argument, key, value, filter or file that plinth cannot accept.

    `problems` lists each thing found wrong as {"field", "expected", "got"} where the input
    had structure (a model's input against its signature); servers return it as is.
    """

    def __init__(self, message: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    def __reduce__(self) -> tuple[type, tuple[str, list[dict[str, str]]]]:
        return (type(self), (str(self), self.problems))


class ConflictError(InvalidInput):
    """A write that contradicts something already stored."""


class NotFound(PlinthError):
    """An id, name or path that does not exist in the store."""


class RunNotActive(PlinthError):
    """Logging was attempted on a run that is no longer running."""


class IntegrityError(PlinthError):
    """Stored bytes whose sha256 no longer matches the recorded digest."""


class SignatureError(IntegrityError):
    """A model version whose manifest is unsigned, signed by an unknown key, or badly signed,
    where a signature is required (PLINTH_REQUIRE_SIGNED=1) or present."""


class AuditTampered(IntegrityError):
    """The audit chain was edited, cut or rewritten: some events no longer match their keyed hashes,
    the keyed head, or an anchor."""


class StoreError(PlinthError):
    """The metadata or artifact store failed or could not be reached."""


class StoreBusy(StoreError):
    """The database stayed locked by other writers past the retry budget."""


class SchemaError(StoreError):
    """The database schema does not match this version of plinth."""


class PlinthWarning(UserWarning):
    """Something worth a user's attention that does not stop the operation."""


class ModelFailed(PlinthError):
    """A model raised an error or answered the wrong rows while predicting (a served request, a
    chunk of a batch job), or the worker scoring it died; the message names the model and rows."""


class ResourceError(PlinthError):
    """A task asks for more CPU, memory or GPUs than the executor can ever give it."""


class StepFailed(PlinthError):
    """A flow step failed after its retries; the flow stopped."""


class ConfigError(PlinthError):
    """A setting (PLINTH_* variable or argument) that cannot be used as given."""


class StorageNotShared(ConfigError):
    """Workers on other hosts cannot reach the metadata or artifact store (a SQLite file, a local
    folder): set PLINTH_STORE and PLINTH_ARTIFACTS to stores every node reaches. A ConfigError."""


class WrongAuditKey(ConfigError):
    """The audit key in use is not the one the chain was written with (PLINTH_AUDIT_KEY or the key
    file under PLINTH_HOME); nothing was found tampered, the key is wrong."""


class AccessError(PlinthError):
    """A request the team server (or a model server with `--auth`) refuses for who sent it."""


class Unauthorized(AccessError):
    """No token, or one that is unknown, revoked or expired (HTTP 401): log in again with
    `plinth login` or set PLINTH_TOKEN to a valid token."""


class Forbidden(AccessError):
    """The principal is known but its role in the workspace does not allow this (HTTP 403)."""


class TooManyAttempts(AccessError):
    """Too many failed authentications from one client; wait before trying again (HTTP 429)."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[type, tuple[str, float]]:
        return (type(self), (str(self), self.retry_after_s))


class ServerUnavailable(StoreError):
    """The team server could not be reached or answered 5xx after retries (a StoreError)."""
