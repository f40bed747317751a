"""An MLflow server as a `Source`: its REST API (`/api/2.0/mlflow/...`), read with httpx.

Slower than reading MLflow's database (a request per run and metric for the points), but it
needs no access to the database and serves the artifacts too (`artifacts/list`,
`/get-artifact`; a logged model's through its `logged-models/<id>/artifacts` endpoints).
A server that asks for a token gets `token` as a bearer token; a user and password in the URL
are sent as basic auth.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any
from urllib.parse import quote, urlparse, urlunparse

import httpx
import numpy as np

from plinth.core.errors import StoreError
from plinth.importers.mlflow.records import (
    MlDataset,
    MlExperiment,
    MlInput,
    MlLoggedModel,
    MlModelVersion,
    MlRegisteredModel,
    MlRun,
    RunPoints,
    Source,
    SourceFile,
    restore_infinities,
)

API = "/api/2.0/mlflow"
PAGE = 1000
_LOGGED_STATUSES = {
    "LOGGED_MODEL_PENDING": "PENDING",
    "LOGGED_MODEL_READY": "READY",
    "LOGGED_MODEL_UPLOAD_FAILED": "FAILED",
}


class HttpSource(Source):
    """The MLflow server at `url` (http(s)://host:port, with its path prefix if any).

    Raises:
        StoreError: the server does not answer, refuses, or is not an MLflow server.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 120.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout_s, follow_redirects=True
        )
        self._runs: dict[str, MlRun] = {}
        self._inputs: dict[str, list[MlInput]] = {}
        self._metric_keys: dict[str, list[str]] = {}
        self._experiment_ids: list[str] = []
        self._get("/health", what="check /health")

    def describe(self) -> str:
        parsed = urlparse(self.url)
        host = parsed.hostname or ""
        netloc = host if parsed.port is None else f"{host}:{parsed.port}"
        return f"the MLflow server {urlunparse(parsed._replace(netloc=netloc))}"

    # requests -----------------------------------------------------------------------------------
    def _get(self, path: str, params: Any = None, *, what: str) -> httpx.Response:
        return self._send("GET", path, what, params=params)

    def _post(self, path: str, body: dict[str, Any], *, what: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._send("POST", path, what, json=body).json()
        return answer

    def _send(self, method: str, path: str, what: str, **options: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise StoreError(f"Could not {what} at {self.describe()}: {exc}. Is the server up?") from exc
        if response.status_code in (401, 403):
            raise StoreError(
                f"{self.describe()} refused to {what} ({response.status_code}): give a token with "
                "--mlflow-token or MLFLOW_TRACKING_TOKEN, or a user and password in the URL."
            )
        if response.status_code == 404 and method == "GET" and path.endswith("/health"):
            raise StoreError(f"{self.describe()} is not an MLflow server (no /health); check --from.")
        if response.status_code >= 400:
            raise StoreError(
                f"{self.describe()} failed to {what} ({response.status_code}): {_message(response)}"
            )
        return response

    def _pages(self, method: str, path: str, body: dict[str, Any], field: str, what: str) -> Iterator[Any]:
        """Every item of a paged list answer."""
        token: str | None = None
        while True:
            request = {**body, **({"page_token": token} if token else {})}
            if method == "POST":
                answer = self._post(path, request, what=what)
            else:
                answer = self._get(path, request, what=what).json()
            yield from answer.get(field, [])
            token = answer.get("next_page_token")
            if not token:
                return

    # experiments and runs -----------------------------------------------------------------------
    def experiments(self) -> list[MlExperiment]:
        body = {"max_results": PAGE, "view_type": "ACTIVE_ONLY"}
        found = [
            MlExperiment(
                id=str(e["experiment_id"]),
                name=e["name"],
                artifact_location=e.get("artifact_location"),
                tags=_pairs(e.get("tags")),
            )
            for e in self._pages("POST", f"{API}/experiments/search", body, "experiments", "list experiments")
        ]
        self._experiment_ids = [e.id for e in found]
        return found

    def runs(self, experiment_ids: Sequence[str]) -> list[MlRun]:
        if not experiment_ids:
            return []
        body = {"experiment_ids": list(experiment_ids), "max_results": PAGE, "run_view_type": "ACTIVE_ONLY"}
        out = []
        for item in self._pages("POST", f"{API}/runs/search", body, "runs", "search runs"):
            run = _run(item)
            self._runs[run.id] = run
            self._metric_keys[run.id] = sorted({m["key"] for m in item.get("data", {}).get("metrics", [])})
            self._inputs[run.id] = _inputs(run.id, item.get("inputs", {}))
            out.append(run)
        return out

    def metric_points(self, run_ids: Collection[str], experiment_ids: Sequence[str]) -> Iterator[RunPoints]:
        for run_id in sorted(run_ids):
            keys = self._metric_keys.get(run_id, [])
            if keys:
                yield self._run_points(run_id, keys)

    def _run_points(self, run_id: str, keys: Sequence[str]) -> RunPoints:
        rows: list[tuple[str, int, int, float]] = []
        for key in keys:
            params = {"run_id": run_id, "metric_key": key}
            answer = self._get(
                f"{API}/metrics/get-history", params, what=f"read metric {key!r} of run {run_id}"
            )
            rows += [
                (key, int(m.get("step", 0)), int(m.get("timestamp", 0)), float(m.get("value", "NaN")))
                for m in answer.json().get("metrics", [])
            ]
        names, steps, stamps, values = zip(*rows, strict=True) if rows else ((), (), (), ())
        return RunPoints(
            run_id,
            np.array(names, dtype=object),
            np.array(steps, dtype=np.int64),
            np.array(stamps, dtype=np.int64),
            restore_infinities(np.array(values, dtype=np.float64)),
        )

    def inputs(self, experiment_ids: Sequence[str]) -> list[MlInput]:
        chosen = set(experiment_ids)
        return [
            i
            for run_id, items in self._inputs.items()
            if self._runs[run_id].experiment_id in chosen
            for i in items
        ]

    # logged models and registry -------------------------------------------------------------------
    def logged_models(self, experiment_ids: Sequence[str] | None) -> list[MlLoggedModel]:
        ids = list(experiment_ids) if experiment_ids is not None else self._experiment_ids
        if not ids:
            return []
        body = {"experiment_ids": ids, "max_results": 100}
        try:
            found = list(
                self._pages("POST", f"{API}/logged-models/search", body, "models", "search logged models")
            )
        except StoreError:
            return []  # an MLflow 2 server: no logged models
        return [_logged_model(item) for item in found]

    def registered_models(self) -> list[MlRegisteredModel]:
        items = self._pages(
            "GET",
            f"{API}/registered-models/search",
            {"max_results": PAGE},
            "registered_models",
            "list models",
        )
        return [
            MlRegisteredModel(
                name=m["name"],
                description=m.get("description") or "",
                tags=_pairs(m.get("tags")),
                aliases={a["alias"]: int(a["version"]) for a in m.get("aliases", [])},
            )
            for m in items
        ]

    def model_versions(self, name: str) -> list[MlModelVersion]:
        literal = name.replace("'", "\\'")
        body = {"filter": f"name='{literal}'", "max_results": 200}
        items = self._pages(
            "GET", f"{API}/model-versions/search", body, "model_versions", f"list versions of {name!r}"
        )
        versions = [_version(v) for v in items]
        return sorted((v for v in versions if v.name == name), key=lambda v: v.version)

    # artifacts --------------------------------------------------------------------------------------
    def remote_files(self, kind: str, owner_id: str) -> list[SourceFile] | None:
        if kind == "run":
            return self._listing(owner_id, "")
        return self._model_listing(owner_id, "")

    def _listing(self, run_id: str, path: str) -> list[SourceFile]:
        params = {"run_id": run_id, **({"path": path} if path else {})}
        files = []
        for item in self._pages(
            "GET", f"{API}/artifacts/list", params, "files", f"list artifacts of run {run_id}"
        ):
            if item.get("is_dir"):
                files += self._listing(run_id, item["path"])
            else:
                location = f"/get-artifact?path={quote(item['path'])}&run_uuid={quote(run_id)}"
                files.append(SourceFile(item["path"], item.get("file_size"), location, local=False))
        return files

    def _model_listing(self, model_id: str, path: str) -> list[SourceFile]:
        params = {"artifact_directory_path": path} if path else {}
        what = f"list the files of logged model {model_id}"
        answer = self._get(
            f"{API}/logged-models/{quote(model_id)}/artifacts/directories", params, what=what
        ).json()
        files = []
        for item in answer.get("files", []):
            if item.get("is_dir"):
                files += self._model_listing(model_id, item["path"])
            else:
                location = (
                    f"/ajax-api/2.0/mlflow/logged-models/{quote(model_id)}/artifacts/files"
                    f"?artifact_file_path={quote(item['path'])}"
                )
                files.append(SourceFile(item["path"], item.get("file_size"), location, local=False))
        return files

    def download(self, file: SourceFile, dest: str) -> None:
        try:
            with self._client.stream("GET", file.location) as response, open(dest, "wb") as out:
                if response.status_code >= 400:
                    response.read()
                    raise StoreError(
                        f"{self.describe()} failed to send {file.path} ({response.status_code}): "
                        f"{_message(response)}"
                    )
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
        except httpx.HTTPError as exc:
            raise StoreError(f"Could not read {file.path} from {self.describe()}: {exc}") from exc

    def close(self) -> None:
        self._client.close()


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message") or body)[:200] if isinstance(body, dict) else str(body)[:200]


def _pairs(items: Any) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in items or []}


def _run(item: dict[str, Any]) -> MlRun:
    info, data = item.get("info", {}), item.get("data", {})
    tags = _pairs(data.get("tags"))
    return MlRun(
        id=info.get("run_id") or info["run_uuid"],
        experiment_id=str(info["experiment_id"]),
        name=info.get("run_name") or tags.get("mlflow.runName"),
        user=info.get("user_id") or tags.get("mlflow.user"),
        status=info.get("status", "RUNNING"),
        start_ms=_int(info.get("start_time")),
        end_ms=_int(info.get("end_time")),
        artifact_uri=info.get("artifact_uri"),
        params=_pairs(data.get("params")),
        tags=tags,
    )


def _inputs(run_id: str, inputs: dict[str, Any]) -> list[MlInput]:
    out = []
    for item in inputs.get("dataset_inputs", []):
        ds = item.get("dataset", {})
        context = _pairs(item.get("tags")).get("mlflow.data.context")
        dataset = MlDataset(
            id=f"{ds.get('name')}:{ds.get('digest')}",
            name=ds.get("name", ""),
            digest=ds.get("digest", ""),
            source_type=ds.get("source_type", ""),
            source=ds.get("source", ""),
            schema=ds.get("schema"),
            profile=ds.get("profile"),
        )
        out.append(MlInput(run_id, dataset, context))
    return out


def _logged_model(item: dict[str, Any]) -> MlLoggedModel:
    info, data = item.get("info", {}), item.get("data", {})
    return MlLoggedModel(
        id=info["model_id"],
        experiment_id=str(info["experiment_id"]),
        name=info.get("name", ""),
        artifact_location=info.get("artifact_uri"),
        status=_LOGGED_STATUSES.get(info.get("status", ""), "PENDING"),
        model_type=info.get("model_type") or "",
        source_run_id=info.get("source_run_id"),
        created_ms=_int(info.get("creation_timestamp_ms")) or 0,
        updated_ms=_int(info.get("last_updated_timestamp_ms")) or 0,
        tags=_pairs(info.get("tags")),
        params=_pairs(data.get("params")),
    )


def _version(item: dict[str, Any]) -> MlModelVersion:
    stage = item.get("current_stage")
    return MlModelVersion(
        name=item["name"],
        version=int(item["version"]),
        source=item.get("source"),
        storage_location=None,
        run_id=item.get("run_id") or None,
        description=item.get("description") or "",
        status=item.get("status", "READY"),
        stage=None if stage in (None, "None") else stage,
        tags=_pairs(item.get("tags")),
    )


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)
