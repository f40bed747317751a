"""PLINTH_OPENTELEMETRY turns on FastAPI's own OpenTelemetry layer in both HTTP servers.

Each case runs in a fresh interpreter: a process sets its global tracer provider once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from plinth.core.settings import Settings
from plinth.server.app import create_app
from plinth.server.config import ServerConfig
from plinth.serving.app import create_app as create_model_server

settings = Settings.from_env()
spans = {}
with TestClient(create_app(ServerConfig.load(None, settings))) as client:
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/experiments").status_code == 401
spans["team"] = [span.name for span in exporter.get_finished_spans()]
exporter.clear()
with TestClient(create_model_server([], settings)) as client:
    assert client.get("/healthz").status_code == 200
spans["model"] = [span.name for span in exporter.get_finished_spans()]
print(json.dumps(spans))
"""


def _spans(tmp_path: Path, flag: str | None) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLINTH_", "OTEL_"))}
    env["PLINTH_HOME"] = str(tmp_path / "home")
    if flag is not None:
        env["PLINTH_OPENTELEMETRY"] = flag
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    spans: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return spans


@pytest.mark.slow
def test_the_servers_trace_each_request_when_asked(tmp_path: Path) -> None:
    spans = _spans(tmp_path, "1")
    assert spans["team"].count("fastapi.endpoint") == 1  # /healthz; the refused store call has no endpoint
    assert len([name for name in spans["team"] if name.startswith("GET")]) == 2
    assert "GET /healthz" in spans["model"]


@pytest.mark.slow
@pytest.mark.parametrize("flag", [None, "0"])
def test_the_servers_trace_nothing_by_default(tmp_path: Path, flag: str | None) -> None:
    assert _spans(tmp_path, flag) == {"team": [], "model": []}
