"""The team server's client: which CAs it trusts, and which error an answer becomes."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from plinth.core.errors import (
    ConfigError,
    ConflictError,
    Forbidden,
    InvalidInput,
    NotFound,
    PlinthError,
    ServerUnavailable,
    TooManyAttempts,
    Unauthorized,
)
from plinth.core.http import RequestError
from plinth.store.http import error_of, trust


def subjects(context: ssl.SSLContext) -> set[str]:
    return {str(cert.get("subject")) for cert in context.get_ca_certs()}


def test_the_client_trusts_the_system_ssl_cert_file_and_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = len(ssl.create_default_context().get_ca_certs())
    from_env, from_bundle = trustme.CA(organization_name="env-ca"), trustme.CA(organization_name="bundle-ca")
    from_env.cert_pem.write_to_path(str(tmp_path / "env.pem"))
    from_bundle.cert_pem.write_to_path(str(tmp_path / "bundle.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "env.pem"))
    context = trust(str(tmp_path / "bundle.pem"))
    names = " ".join(subjects(context))
    assert "env-ca" in names and "bundle-ca" in names
    assert len(context.get_ca_certs()) >= system  # the system's CAs are kept beside them


def test_a_bundle_that_is_not_pem_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="PLINTH_CA_BUNDLE"):
        trust(str(tmp_path / "bad.pem"))


def answer(
    status: int, kind: str | None = None, message: str = "what went wrong", **headers: str
) -> httpx.Response:
    body = json.dumps({"error": {"type": kind, "message": message, "problems": []}}) if kind else "<html>"
    return httpx.Response(status, content=body.encode(), headers=headers)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (answer(404, "NotFound"), NotFound),
        (answer(409, "ConflictError"), ConflictError),
        (answer(422, "FilterSyntaxError"), InvalidInput),  # a kind the client lacks: by its status
        (answer(401, "AccessError"), Unauthorized),
        (answer(403, "PlinthError"), Forbidden),
        (answer(413, "RequestError"), RequestError),
        (answer(413), RequestError),
        (answer(429, "TooManyAttempts", **{"retry-after": "3"}), TooManyAttempts),
        (answer(502), ServerUnavailable),
        (answer(500, "PlinthError"), PlinthError),
    ],
)
def test_an_error_answer_becomes_the_error_it_names(response: httpx.Response, expected: type) -> None:
    error = error_of(response)
    assert type(error) is expected
    assert str(error)


def test_the_message_and_problems_come_back_as_sent() -> None:
    body = {"error": {"type": "InvalidInput", "message": "bad lr", "problems": [{"field": "lr"}]}}
    error = error_of(httpx.Response(422, json=body))
    assert isinstance(error, InvalidInput) and str(error) == "bad lr" and error.problems == [{"field": "lr"}]
    assert error_of(answer(429, "TooManyAttempts", **{"retry-after": "3"})).retry_after_s == 3  # type: ignore[attr-defined]
    assert error_of(answer(413, "RequestError")).status == 413  # type: ignore[attr-defined]
