"""Register files already in the blob store as a model version: MLflow models, logged elsewhere.

A model MLflow's client logged (through `plinth server`'s MLflow dialect) or one `plinth import
mlflow` brought over is a folder of files whose bytes are already stored, content-addressed, as
artifacts of a run. `register_files` makes them the next version of a registered model without
copying a byte: it writes the manifest that lists them (signed when a signer is given), keeps
where they came from (`source`) and records that the run produced the version.

`mlflow_model_meta` reads the package's `MLmodel` (MLflow's YAML description of a model) into the
manifest's `meta` for the "mlflow" flavor, the environment the model needs, and a plinth
signature where MLflow's converts. `meta` holds:

- `mlmodel`: the path of the `MLmodel` file in the package ("MLmodel", or "model/MLmodel" when
  the model lies one folder down);
- `flavors`: MLflow's `flavors` section as written (e.g. `python_function`, `sklearn`);
- `model_uuid`, `model_id`, `mlflow_version`: as `MLmodel` records them (None when absent).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from plinth.core.entities import Artifact, LineageEdge, ModelFile, ModelVersion
from plinth.core.errors import InvalidInput
from plinth.core.ids import now_ms
from plinth.core.refs import check_ref_name
from plinth.core.validation import check_text
from plinth.registry.flavors.mlflow import MLMODEL, shallowest_mlmodels
from plinth.store.base import NewModelVersion, SealedManifest

if TYPE_CHECKING:
    from plinth.registry.signing import Signer
    from plinth.store.base import Store
    from plinth.store.blobs import BlobStore

"""The file that makes a folder an MLflow model."""
REQUIREMENTS = "requirements.txt"
PYTHON_ENV = "python_env.yaml"

# MLflow's flavor names -> the distributions whose versions decide whether a model loads the same
_FLAVOR_LIBRARIES = {
    "sklearn": ("scikit-learn",),
    "xgboost": ("xgboost",),
    "lightgbm": ("lightgbm",),
    "catboost": ("catboost",),
    "pytorch": ("torch",),
    "onnx": ("onnx", "onnxruntime"),
    "tensorflow": ("tensorflow",),
    "keras": ("keras",),
    "statsmodels": ("statsmodels",),
    "prophet": ("prophet",),
    "transformers": ("transformers",),
}
# MLflow's column types -> the dtypes plinth's signatures name (see plinth.registry.signature)
_COLUMN_DTYPES = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": "object",
    "datetime": "datetime64[ns]",
}
_PINNED = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def register_files(
    store: Store,
    blobs: BlobStore,
    *,
    name: str,
    files: list[ModelFile],
    source: str,
    run_id: str | None,
    description: str = "",
    flavor: str = "mlflow",
    meta: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
    signer: Signer | None = None,
    signature: dict[str, Any] | None = None,
) -> ModelVersion:
    """Register `files` (their bytes already in `blobs`) as the next version of model `name`.

    Nothing is copied: the manifest lists the files by digest, as `register_model` would have
    stored them. The version keeps `source` (where the files came from, e.g. an MLflow model URI)
    and, when `run_id` is given, a lineage edge run -produced-> model_version is written.

    Args:
        store: the store to register in (audit events name its actor).
        blobs: the blob store holding every file's bytes; the manifest is stored there too.
        name: the registered model's name (created with its first version).
        files: the package's files, paths relative to the package's root.
        source: where the files came from; kept on the version.
        run_id: the run that produced the model, if any.
        flavor: how the version loads ("mlflow" for an MLflow model folder).
        meta: the manifest's `meta` for the flavor (`mlflow_model_meta` gives MLflow's).
        environment: the Python and libraries the model needs (`{"python": ..., "libraries": {...}}`).
        signer: signs the manifest when given (`plinth.registry.signing.load_signer`).
        signature: the input signature plinth enforces on predict, if one is known.

    Raises:
        InvalidInput: a bad name or description, no files, or a file a package cannot hold.
        NotFound: `run_id` names no run.
    """
    check_ref_name(name, "model")
    check_text(description, "description")
    if not files:
        raise InvalidInput(f"No files to register as model {name!r}: a model version needs its files.")
    env = environment or {}
    manifest = {
        "name": name,
        "flavor": flavor,
        "meta": meta or {},
        "signature": signature,
        "environment": env,
    }
    mv = store.create_model_version(
        NewModelVersion(
            name=name,
            flavor=flavor,
            seal=manifest_sealer(blobs, signer, manifest, files),
            files=sorted(files, key=lambda f: f.path),
            signature=signature,
            environment=env,
            run_id=run_id,
            description=description,
            source=source,
        )
    )
    if run_id is not None:
        store.add_edge(
            LineageEdge("run", run_id, "produced", "model_version", mv.id, now_ms(), {"name": name})
        )
    return mv


def manifest_sealer(
    blobs: BlobStore, signer: Signer | None, manifest: dict[str, Any], files: list[ModelFile]
) -> Callable[[int], SealedManifest]:
    """What stores the manifest for the version number the store assigns, signed when `signer` is set."""
    from plinth.registry.package import store_manifest  # fsspec: loaded when first used

    def seal(version: int) -> SealedManifest:
        digest = store_manifest(blobs, {**manifest, "version": version}, sorted(files, key=lambda f: f.path))
        if signer is None:
            return SealedManifest(digest)
        signed = signer.sign(manifest["name"], version, manifest["flavor"], digest)
        return SealedManifest(digest, signed, signer.fingerprint)

    return seal


def artifact_files(artifacts: Sequence[Artifact], prefix: str) -> list[ModelFile]:
    """A run's artifacts under folder `prefix` as package files (paths relative to `prefix`).

    A `prefix` that names one file gives that file under its own name.
    """
    folder = prefix.strip("/")
    files = []
    for item in artifacts:
        if not folder:
            rel = item.path
        elif item.path == folder:
            rel = folder.rsplit("/", 1)[-1]
        elif item.path.startswith(folder + "/"):
            rel = item.path[len(folder) + 1 :]
        else:
            continue
        files.append(ModelFile(rel, item.digest, item.size))
    return sorted(files, key=lambda f: f.path)


def mlflow_model_meta(
    blobs: BlobStore, files: Sequence[ModelFile]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The "mlflow" flavor's meta, the environment and the plinth signature of an MLflow model.

    Reads the package's `MLmodel` (the shallowest one: a run's folder may hold the model one
    folder down) and the `requirements.txt` / `python_env.yaml` beside it, when there. The
    environment is `{"python": ..., "libraries": {...}, "requirements": [...]}`: `libraries`
    holds the pinned versions of the model's own flavor libraries and NumPy (what loading
    compares), `requirements` every line MLflow recorded. The signature is None where MLflow's
    does not convert (optional columns, named tensors, types plinth has no dtype for).

    Raises:
        InvalidInput: the files hold no `MLmodel`, several at the same shallowest depth, or one
            that is not an MLflow model file.
    """
    path = mlmodel_path(files)
    folder = posixpath.dirname(path)
    beside = {posixpath.basename(f.path): f for f in files if posixpath.dirname(f.path) == folder}
    mlmodel = _yaml(blobs, beside[MLMODEL])
    if not isinstance(mlmodel, dict) or not isinstance(mlmodel.get("flavors"), dict):
        raise InvalidInput(f"{path} is not an MLflow model file: it has no 'flavors' section.")
    flavors = _json_safe(mlmodel["flavors"])
    meta = {
        "mlmodel": path,
        "flavors": flavors,
        "model_uuid": _text(mlmodel.get("model_uuid")),
        "model_id": _text(mlmodel.get("model_id")),
        "mlflow_version": _text(mlmodel.get("mlflow_version")),
    }
    return meta, _environment(blobs, beside, flavors), plinth_signature(mlmodel.get("signature"))


def mlmodel_path(files: Sequence[ModelFile]) -> str:
    """The path of the package's `MLmodel`: the shallowest one.

    Raises:
        InvalidInput: none, or several at the shallowest depth (register each model's folder).
    """
    shallowest = shallowest_mlmodels(f.path for f in files)
    if not shallowest:
        raise InvalidInput(
            f"These files hold no {MLMODEL}, so they are not an MLflow model; register the folder "
            f"MLflow saved the model in (e.g. runs:/<run_id>/model or models:/<model_id>)."
        )
    if len(shallowest) > 1:
        raise InvalidInput(
            f"These files hold several MLflow models ({', '.join(shallowest[:5])}); register each "
            "model's own folder as its own version."
        )
    return shallowest[0]


def _environment(blobs: BlobStore, beside: dict[str, ModelFile], flavors: dict[str, Any]) -> dict[str, Any]:
    requirements: list[str] = []
    if REQUIREMENTS in beside:
        text = blobs.read_bytes(beside[REQUIREMENTS].digest, name=REQUIREMENTS).decode("utf-8", "replace")
        requirements = [
            line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
        ]
    python = None
    if PYTHON_ENV in beside:
        env = _yaml(blobs, beside[PYTHON_ENV])
        python = _text(env.get("python")) if isinstance(env, dict) else None
    pyfunc = flavors.get("python_function")
    if python is None and isinstance(pyfunc, dict):
        python = _text(pyfunc.get("python_version"))
    wanted = {"numpy", *(lib for flavor in flavors for lib in _FLAVOR_LIBRARIES.get(flavor, ()))}
    pinned = {m[1]: m[2] for m in map(_PINNED.match, requirements) if m}
    libraries = {lib: version for lib, version in pinned.items() if _normalized(lib) in wanted}
    environment: dict[str, Any] = {"libraries": libraries, "requirements": requirements}
    if python is not None:
        environment["python"] = python
    return environment


def plinth_signature(signature: object) -> dict[str, Any] | None:
    """MLflow's `MLmodel` signature as a plinth signature, or None where it does not convert."""
    if not isinstance(signature, dict):
        return None
    inputs = _spec(signature.get("inputs"))
    if inputs is None:
        return None
    converted: dict[str, Any] = {"inputs": inputs}
    outputs = _spec(signature.get("outputs"))
    if outputs is not None:
        converted["outputs"] = outputs
    return converted


def _spec(schema: object) -> dict[str, Any] | None:
    """One side of a signature (MLflow writes each as a JSON list inside the YAML)."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError:
            return None
    if not isinstance(schema, list) or not schema or not all(isinstance(s, dict) for s in schema):
        return None
    if len(schema) == 1 and schema[0].get("type") == "tensor" and "name" not in schema[0]:
        tensor = schema[0].get("tensor-spec")
        if isinstance(tensor, dict) and isinstance(tensor.get("shape"), list) and tensor.get("dtype"):
            return {"type": "tensor", "shape": list(tensor["shape"]), "dtype": str(tensor["dtype"])}
        return None
    columns = []
    for column in schema:
        dtype = _COLUMN_DTYPES.get(str(column.get("type")))
        if dtype is None or not isinstance(column.get("name"), str) or column.get("required") is False:
            return None
        columns.append({"name": column["name"], "dtype": dtype})
    return {"type": "frame", "columns": columns}


def _yaml(blobs: BlobStore, file: ModelFile) -> Any:
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no types; loaded with the first MLflow model

    data = blobs.read_bytes(file.digest, name=f"{file.path} of an MLflow model")
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{file.path} of this MLflow model is not valid YAML: {exc}") from None


def _json_safe(value: Any) -> Any:
    """`value` as JSON holds it (YAML may hold dates and other types a manifest cannot)."""
    return json.loads(json.dumps(value, default=str))


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()
