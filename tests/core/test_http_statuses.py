"""One table from the error tree to HTTP statuses: every error answers as its nearest listed class."""

from __future__ import annotations

import pytest

from plinth import errors
from plinth.core.http import RequestError, status_for

CASES = [
    (errors.InvalidInput("bad"), 422),
    (errors.ConflictError("taken"), 409),
    (errors.NotFound("no such model"), 404),
    (errors.RunNotActive("ended"), 409),
    (errors.ResourceError("too many GPUs"), 422),
    (errors.IntegrityError("digest"), 500),
    (errors.SignatureError("unsigned"), 500),
    (errors.AuditTampered("edited"), 500),
    (errors.StoreError("down"), 503),
    (errors.StoreBusy("locked"), 503),
    (errors.SchemaError("newer"), 503),
    (errors.ModelFailed("raised"), 500),
    (errors.StepFailed("step"), 500),
    (errors.ConfigError("setting"), 500),
    (errors.StorageNotShared("sqlite"), 500),
    (errors.WrongAuditKey("key"), 500),
    (errors.PlinthError("anything"), 500),
]


@pytest.mark.parametrize(("error", "status"), CASES)
def test_each_error_answers_with_its_status(error: errors.PlinthError, status: int) -> None:
    assert status_for(error) == status


def test_the_cases_cover_every_public_error() -> None:
    tree = {getattr(errors, name) for name in errors.__all__} - {errors.PlinthWarning}
    assert tree == {type(error) for error, _status in CASES}


@pytest.mark.parametrize("status", [400, 413, 415, 422])
def test_a_refused_request_carries_its_own_status(status: int) -> None:
    assert status_for(RequestError("refused", status)) == status


def test_an_error_outside_the_tree_is_a_500() -> None:
    assert status_for(KeyError("x")) == 500
    assert status_for(RuntimeError("a bug")) == 500
