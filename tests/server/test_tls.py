"""TLS: `plinth server --ssl-certfile/--ssl-keyfile` with a certificate made here (trustme).

A client trusts the server through PLINTH_CA_BUNDLE (or the system's CAs, or SSL_CERT_FILE);
without any of them it fails at once with an error that names the certificate problem.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from plinth.core.errors import PlinthError
from plinth.core.settings import Settings
from plinth.store.http import client_from_settings


@pytest.fixture
def https_server(server_process: Callable[..., Any], tmp_path: Path) -> tuple[Any, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, bundle = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(bundle))
    server = server_process(
        f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}",
        args=["--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)],
        scheme="https",
    )
    return server, bundle


@pytest.mark.slow
def test_a_client_trusting_the_bundle_talks_to_the_server(https_server: tuple[Any, Path]) -> None:
    server, bundle = https_server
    settings = Settings(store_url=server.url, token=server.admin_token, ca_bundle=str(bundle))
    client = client_from_settings(settings)
    try:
        answer = client.request("GET", "/whoami")
    finally:
        client.close()
    assert answer.json()["name"] == "admin"
    assert answer.headers["strict-transport-security"].startswith("max-age=")


@pytest.mark.slow
def test_a_client_without_the_bundle_is_refused_clearly(https_server: tuple[Any, Path]) -> None:
    server, _bundle = https_server
    client = client_from_settings(Settings(store_url=server.url, token=server.admin_token))
    try:
        with pytest.raises(PlinthError, match="certificate") as refused:
            client.request("GET", "/whoami")
    finally:
        client.close()
    assert "PLINTH_CA_BUNDLE" in str(refused.value)


@pytest.mark.slow
def test_plain_http_to_the_tls_port_does_not_get_through(https_server: tuple[Any, Path]) -> None:
    server, _bundle = https_server
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url.replace("https://", "http://") + "/api/v1/whoami", timeout=5)
