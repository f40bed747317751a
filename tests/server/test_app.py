"""The team server's app: probes, metrics, the OpenAPI document, the error shape, its config."""

from __future__ import annotations

import gc
import logging
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from plinth.core.collector import YOUNG_THRESHOLD
from plinth.core.errors import ConfigError
from plinth.core.settings import Settings
from plinth.server.config import DEFAULT_MAX_BODY, ServerConfig
from plinth.server.metrics import quantile

Factory = Callable[..., Any]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}"


def test_probes_answer_without_a_token(server_factory: Factory, sqlite_url: str) -> None:
    server = server_factory(sqlite_url)
    with server.client(token="") as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").json() == {"status": "ready"}


def test_a_started_server_leaves_what_it_loaded_out_of_the_collectors_scans(
    server_factory: Factory, sqlite_url: str
) -> None:
    """A full collection that walks the libraries and the store pauses every waiting request."""
    threshold = gc.get_threshold()
    gc.unfreeze()  # what an earlier server of this process froze
    try:
        server = server_factory(sqlite_url)
        with server.client(token="") as anonymous:
            assert anonymous.get("/readyz").status_code == 200
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_metrics_need_an_admin_unless_open(server_factory: Factory, sqlite_url: str) -> None:
    server = server_factory(sqlite_url)
    with server.client(token="") as anonymous, server.client() as admin:
        assert anonymous.get("/metrics").status_code == 401
        assert admin.get("/metrics").status_code == 200
    opened = server_factory(sqlite_url, metrics_open=True)
    with opened.client(token="") as anonymous:
        assert anonymous.get("/metrics").status_code == 200


def test_metrics_show_latency_percentiles_per_route(server_factory: Factory, sqlite_url: str) -> None:
    server = server_factory(sqlite_url)
    with server.client() as admin:
        for _ in range(20):
            admin.get("/healthz")
        text = admin.get("/metrics").text
    assert 'plinth_server_request_latency_seconds_count{route="/healthz"} 20.0' in text
    p99 = re.search(
        r'plinth_server_request_latency_quantile_seconds\{route="\*",quantile="0.99"\} (\S+)', text
    )
    assert p99 is not None and 0 < float(p99.group(1)) < 10
    assert 'plinth_server_requests_total{method="GET",route="/healthz",status="200"} 20.0' in text


def test_quantile_interpolates_within_its_bucket() -> None:
    assert quantile({0.1: 50, 0.2: 100, float("inf"): 100}, 0.75) == pytest.approx(0.15)
    assert quantile({0.1: 0, float("inf"): 0}, 0.5) is None
    assert quantile({0.1: 1, float("inf"): 10}, 0.99) == 0.1  # past the last bound: that bound


def test_openapi_declares_the_bearer_scheme(server_factory: Factory, sqlite_url: str) -> None:
    server = server_factory(sqlite_url)
    with server.client(token="") as anonymous:
        doc = anonymous.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (`plinth tokens create`) or a `plinth login` session.",
    }
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    assert doc["paths"]["/metrics"]["get"]["security"] == [{"bearer": []}]
    assert doc["paths"]["/metrics"]["get"]["x-plinth-right"] == "admin"


def test_refusals_share_one_shape(server_factory: Factory, sqlite_url: str) -> None:
    server = server_factory(sqlite_url)
    with server.client() as admin, server.client(token="") as anonymous:
        missing = admin.get("/api/v1/no-such-thing")
        wrong_method = admin.delete("/healthz")
        malformed = admin.post(
            "/api/v1/workspaces", content=b"{not json", headers={"content-type": "application/json"}
        )
        unauthorized = anonymous.get("/api/v1/whoami")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFound"
    assert "/api/v1/no-such-thing" in missing.json()["error"]["message"]
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["type"] == "InvalidInput"
    assert malformed.status_code == 422
    assert malformed.json()["error"]["type"] == "InvalidInput" and malformed.json()["error"]["problems"]
    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"] == {
        "type": "Unauthorized",
        "message": unauthorized.json()["error"]["message"],
        "problems": [],
    }
    assert "PLINTH_TOKEN" in unauthorized.json()["error"]["message"]


def add_failing_route(app: FastAPI) -> None:
    from plinth.core.access import Right
    from plinth.server.context import right_extra

    @app.get("/api/v1/boom/{thing}", openapi_extra=right_extra(Right.PUBLIC))
    def boom(thing: str) -> None:
        raise RuntimeError(f"internal detail {thing}")


def test_a_fault_is_a_logged_500_without_internals(
    server_factory: Factory, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_factory(sqlite_url, prepare=add_failing_route)
    with caplog.at_level(logging.ERROR, logger="plinth.server"), server.client() as admin:
        answer = admin.get("/api/v1/boom/secret-path-part")
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["type"] == "PlinthError" and "internal detail" not in error["message"]
    incident = re.search(r"incident (\w+)", error["message"])
    assert incident is not None
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"GET /api/v1/boom/{{thing}} failed (incident {incident.group(1)})" in logged
    assert server.admin_token not in caplog.text


# config --------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return path


def test_config_reads_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'store = "sqlite:////srv/plinth.db"\nartifacts = "s3://bucket/plinth"\n'
        'public_url = "https://plinth.example.com/"\ncors_origins = ["https://app.example.com"]\n'
        "max_body_bytes = 1024\nmetrics_open = true\nworkers = 3\n"
        '[oidc]\nissuer = "https://login.example.com"\n',
    )
    config = ServerConfig.load(path, Settings(home=str(tmp_path)), environ={})
    assert config.store_url == "sqlite:////srv/plinth.db"
    assert config.artifacts_url == "s3://bucket/plinth"
    assert config.public_url == "https://plinth.example.com"
    assert config.cors_origins == ("https://app.example.com",)
    assert (config.max_body_bytes, config.metrics_open, config.workers) == (1024, True, 3)
    assert config.oidc == {"issuer": "https://login.example.com"}
    assert config.settings.store_url == "sqlite:////srv/plinth.db"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'store = "sqlite:////srv/a.db"\nmetrics_open = true\nmax_body_bytes = 10\n')
    settings = Settings.from_env({"PLINTH_HOME": str(tmp_path), "PLINTH_STORE": "sqlite:////srv/b.db"}, None)
    environ = {
        "PLINTH_METRICS_OPEN": "0",
        "PLINTH_MAX_BODY_BYTES": "2048",
        "PLINTH_CORS_ORIGINS": "https://a.example, https://b.example",
        "PLINTH_ADMIN_TOKEN": "plt_bootstrap-secret",
    }
    config = ServerConfig.load(path, settings, environ=environ)
    assert config.store_url == "sqlite:////srv/b.db"
    assert (config.metrics_open, config.max_body_bytes) == (False, 2048)
    assert config.cors_origins == ("https://a.example", "https://b.example")
    assert config.admin_token == "plt_bootstrap-secret"
    assert "plt_bootstrap-secret" not in repr(config)


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = ServerConfig.load(None, Settings(home=str(tmp_path)), environ={})
    assert config.store_url == f"sqlite:///{tmp_path / 'plinth.db'}"
    assert (config.cors_origins, config.max_body_bytes, config.metrics_open) == ((), DEFAULT_MAX_BODY, False)
    assert config.admin_token is None and config.oidc == {}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("max_body_bytes = 'lots'", "max_body_bytes"),
        ("max_body_bytes = 0", "max_body_bytes"),
        ("metrics_open = 'sometimes'", "metrics_open"),
        ("cors_origins = 'ftp://x'", "cors_origins"),
        ("cors_origins = [1]", "cors_origins"),
        ("public_url = 'plinth.example.com'", "public_url"),
        ("oidc = 3", "oidc"),
        ("store = 'http://other-server:8080'", "store"),
        ("colour = 'blue'", "colour"),
        ("store = ", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        ServerConfig.load(write(tmp_path, text), Settings(home=str(tmp_path)), environ={})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"No server config at .*--config"):
        ServerConfig.load(tmp_path / "nope.toml", Settings(home=str(tmp_path)), environ={})


# the command ---------------------------------------------------------------------------------


def test_the_command_refuses_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    from plinth.cli.main import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["server", "--port", str(port)]) == 2
    assert f"Port {port} on 127.0.0.1 is in use" in capsys.readouterr().err


def test_the_command_refuses_a_bad_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from plinth.cli.main import main

    assert main(["server", "--config", str(write(tmp_path, "metrics_open = 'maybe'"))]) == 2
    assert "metrics_open" in capsys.readouterr().err
    assert main(["server", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "No server config at" in capsys.readouterr().err


def test_the_command_wants_both_tls_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from plinth.cli.main import main

    (tmp_path / "cert.pem").write_text("")
    assert main(["server", "--ssl-certfile", str(tmp_path / "cert.pem")]) == 2
    assert "--ssl-keyfile" in capsys.readouterr().err


@pytest.mark.slow
def test_init_admin_prints_a_working_superuser_token_once(server_process: Factory, sqlite_url: str) -> None:
    server = server_process(sqlite_url, args=["--init-admin"])
    printed = re.findall(r"^plt_\S+$", server.log(), flags=re.MULTILINE)
    assert len(printed) == 1
    with server.client(token=printed[0]) as admin:
        me = admin.get("/api/v1/whoami").json()
    assert me["name"] == "admin" and me["superuser"] is True
    assert me["token_name"].startswith("init-")
