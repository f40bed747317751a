"""A stub of MLflow's tracking API for `benchmarks/bench_mlflow_compat.py`: it answers at once and keeps
nothing, so the MLflow client's time against it is the client's own floor.

    python _mlflow_compat_stub.py --port P [--search-body FILE] [--model-dir DIR]

Standard library only (a threading HTTP/1.1 server with keep-alive, as MLflow's client uses).
Each route the client script calls gets a fixed answer of the shape MLflow's server gives;
`runs/search` answers with the bytes in FILE (a real server's answer to the same search), so the
client parses exactly what it parses there. The registry and proxied-artifact routes serve one
registered model, `bench-model@champion` (version 1), whose files are those under DIR (read at
each request: the client writes them after the stub starts).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RUN_ID = "0123456789abcdef0123456789abcdef"
SEARCH_BODY = b'{"runs": []}'
MODEL_DIR = ""
MODEL_ROOT = "1/models/m-0123456789abcdef0123456789abcdef/artifacts"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def experiment(name: str = "bench") -> dict[str, Any]:
    return {
        "experiment_id": "1",
        "name": name,
        "artifact_location": "mlflow-artifacts:/1",
        "lifecycle_stage": "active",
        "creation_time": 0,
        "last_update_time": 0,
    }


def run_info(status: str = "RUNNING") -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {
        "run_id": RUN_ID,
        "run_uuid": RUN_ID,
        "run_name": "stub-run",
        "experiment_id": "1",
        "user_id": "stub",
        "status": status,
        "start_time": now,
        "end_time": now if status != "RUNNING" else None,
        "artifact_uri": f"mlflow-artifacts:/1/{RUN_ID}/artifacts",
        "lifecycle_stage": "active",
    }


def model_version(alias: str | None = None) -> dict[str, Any]:
    return {
        "name": "bench-model",
        "version": "1",
        "creation_timestamp": 0,
        "last_updated_timestamp": 0,
        "current_stage": "None",
        "source": f"mlflow-artifacts:/{MODEL_ROOT}",
        "run_id": RUN_ID,
        "status": "READY",
        "aliases": [alias] if alias else [],
    }


def artifact(path: str, query: str) -> bytes | dict[str, Any]:
    """A folder's entries (`?path=`) or a file's bytes, below MODEL_ROOT (mapped to MODEL_DIR)."""
    listed = path == ARTIFACTS
    rel = parse_qs(query).get("path", [""])[0] if listed else path[len(ARTIFACTS) + 1 :]
    local = os.path.join(MODEL_DIR, rel.removeprefix(MODEL_ROOT).lstrip("/"))
    if not listed:
        with open(local, "rb") as fh:
            return fh.read()
    entries = []
    for entry in sorted(os.scandir(local), key=lambda e: e.name):
        item: dict[str, Any] = {"path": entry.name, "is_dir": entry.is_dir()}
        if not entry.is_dir():
            item["file_size"] = entry.stat().st_size
        entries.append(item)
    return {"files": entries}


def answer(path: str, query: str, body: bytes) -> bytes | dict[str, Any]:
    """The stub's answer to one request."""
    if path == "/health":
        return b"OK"
    if path.startswith(ARTIFACTS):
        return artifact(path, query)
    if path == "/api/3.0/mlflow/server-info":
        return {"multipart_uploads_enabled": False, "multipart_downloads_enabled": False}
    route = path.split("/api/2.0/mlflow/", 1)[-1]
    if route == "registered-models/alias":
        return {"model_version": model_version(parse_qs(query).get("alias", ["champion"])[0])}
    if route == "registered-models/get":
        return {
            "registered_model": {
                "name": "bench-model",
                "creation_timestamp": 0,
                "last_updated_timestamp": 0,
                "aliases": [{"alias": "champion", "version": "1"}],
            }
        }
    if route == "model-versions/get-download-uri":
        return {"artifact_uri": f"mlflow-artifacts:/{MODEL_ROOT}"}
    if route == "model-versions/get":
        return {"model_version": model_version("champion")}
    if route == "experiments/get-by-name":
        name = parse_qs(query).get("experiment_name", ["bench"])[0]
        return {"experiment": experiment(name)}
    if route == "experiments/get":
        return {"experiment": experiment()}
    if route == "experiments/create":
        return {"experiment_id": "1"}
    if route in ("runs/create", "runs/get"):
        return {"run": {"info": run_info(), "data": {}}}
    if route == "runs/update":
        status = json.loads(body or b"{}").get("status", "FINISHED")
        return {"run_info": run_info(status)}
    if route == "runs/search":
        return SEARCH_BODY
    return {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body leave in two writes: without this, Nagle's algorithm holds the body
        # until the client's delayed ACK (40 ms), as uvicorn (asyncio) never does
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        got = answer(url.path, url.query, body)
        data = got if isinstance(got, bytes) else json.dumps(got).encode()
        self.send_response(200)
        raw = isinstance(got, bytes) and url.path.startswith(ARTIFACTS)
        self.send_header("Content-Type", "application/octet-stream" if raw else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet, as the servers compared run
        pass


def main() -> None:
    global SEARCH_BODY, MODEL_DIR
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--search-body")
    ap.add_argument("--model-dir", default="")
    args = ap.parse_args()
    MODEL_DIR = args.model_dir
    if args.search_body:
        with open(args.search_body, "rb") as fh:
            SEARCH_BODY = fh.read()
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
