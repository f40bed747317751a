"""Public home of plinth's errors; see `plinth.core.errors` for the tree."""

from plinth.core.errors import AuditTampered as AuditTampered
from plinth.core.errors import ConfigError as ConfigError
from plinth.core.errors import ConflictError as ConflictError
from plinth.core.errors import IntegrityError as IntegrityError
from plinth.core.errors import InvalidInput as InvalidInput
from plinth.core.errors import ModelFailed as ModelFailed
from plinth.core.errors import NotFound as NotFound
from plinth.core.errors import PlinthError as PlinthError
from plinth.core.errors import PlinthWarning as PlinthWarning
from plinth.core.errors import ResourceError as ResourceError
from plinth.core.errors import RunNotActive as RunNotActive
from plinth.core.errors import SchemaError as SchemaError
from plinth.core.errors import SignatureError as SignatureError
from plinth.core.errors import StepFailed as StepFailed
from plinth.core.errors import StorageNotShared as StorageNotShared
from plinth.core.errors import StoreBusy as StoreBusy
from plinth.core.errors import StoreError as StoreError
from plinth.core.errors import WrongAuditKey as WrongAuditKey

__all__ = [
    "AuditTampered",
    "ConfigError",
    "ConflictError",
    "IntegrityError",
    "InvalidInput",
    "ModelFailed",
    "NotFound",
    "PlinthError",
    "PlinthWarning",
    "ResourceError",
    "RunNotActive",
    "SchemaError",
    "SignatureError",
    "StepFailed",
    "StorageNotShared",
    "StoreBusy",
    "StoreError",
    "WrongAuditKey",
]
