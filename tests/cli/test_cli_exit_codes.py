"""One table from the error tree to the `plinth` command's exit codes."""

from __future__ import annotations

import pytest

from plinth import errors
from plinth.cli.errors import exit_code_for

CASES = [
    (errors.PlinthError, 1),
    (errors.InvalidInput, 2),
    (errors.ConflictError, 2),
    (errors.ResourceError, 2),
    (errors.ConfigError, 2),
    (errors.StorageNotShared, 2),
    (errors.WrongAuditKey, 2),
    (errors.NotFound, 3),
    (errors.IntegrityError, 4),
    (errors.SignatureError, 4),
    (errors.AuditTampered, 4),
    (errors.StoreError, 5),
    (errors.StoreBusy, 5),
    (errors.SchemaError, 5),
    (errors.RunNotActive, 1),
    (errors.ModelFailed, 1),
    (errors.StepFailed, 1),
]


@pytest.mark.parametrize(("kind", "code"), CASES)
def test_each_error_exits_with_its_code(kind: type[errors.PlinthError], code: int) -> None:
    assert exit_code_for(kind) == code
    assert exit_code_for(kind("message")) == code


def test_the_cases_cover_every_public_error() -> None:
    tree = {getattr(errors, name) for name in errors.__all__} - {errors.PlinthWarning}
    assert tree == {kind for kind, _code in CASES}
