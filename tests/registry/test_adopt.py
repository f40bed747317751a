"""Registering files already stored (an MLflow model a run logged) as a plinth model version."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import plinth
from plinth.core.entities import Artifact, ModelFile
from plinth.core.errors import InvalidInput
from plinth.registry import signing
from plinth.registry.adopt import artifact_files, mlflow_model_meta, plinth_signature, register_files
from plinth.registry.package import read_manifest, store_files
from plinth.tracking.context import Backend

sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    env:
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.5.2
mlflow_version: 3.17.2
model_id: m-0123456789abcdef0123456789abcdef
model_uuid: 8e6eb2e9b2494e60999519b23ad3bfec
signature:
  inputs: '[{"type": "double", "name": "a", "required": true}, {"type": "long",
    "name": "b", "required": true}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
  params: null
utc_time_created: 2026-12-05 23:18:06.797948
"""
REQUIREMENTS = "mlflow==3.17.2\nnumpy==2.4.6\npandas==3.1.1\nscikit-learn==1.5.2\ncloudpickle==3.1.1\n"
PYTHON_ENV = "python: 3.11.9\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n"


def mlflow_folder(root: Path, mlmodel: str = MLMODEL) -> Path:
    """A folder laid out as MLflow saves a scikit-learn model (the model's bytes are a stand-in)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "MLmodel").write_text(mlmodel)
    (root / "model.pkl").write_bytes(b"not really a pickle")
    (root / "requirements.txt").write_text(REQUIREMENTS)
    (root / "python_env.yaml").write_text(PYTHON_ENV)
    return root


@sqlite_only
def test_meta_environment_and_signature_come_from_mlmodel(tracking: Backend, tmp_path: Path) -> None:
    files = store_files(tracking.blobs, str(mlflow_folder(tmp_path / "model")))
    meta, environment, signature = mlflow_model_meta(tracking.blobs, files)
    assert meta["mlmodel"] == "MLmodel"
    assert set(meta["flavors"]) == {"python_function", "sklearn"}
    assert meta["flavors"]["sklearn"]["pickled_model"] == "model.pkl"
    assert meta["model_uuid"] == "8e6eb2e9b2494e60999519b23ad3bfec"
    assert meta["model_id"] == "m-0123456789abcdef0123456789abcdef"
    assert meta["mlflow_version"] == "3.17.2"
    assert environment["python"] == "3.11.9"
    assert environment["libraries"] == {"numpy": "2.4.6", "scikit-learn": "1.5.2"}
    assert environment["requirements"] == REQUIREMENTS.split()
    assert signature == {
        "inputs": {
            "type": "frame",
            "columns": [{"name": "a", "dtype": "float64"}, {"name": "b", "dtype": "int64"}],
        },
        "outputs": {"type": "tensor", "shape": [-1], "dtype": "int64"},
    }
    json.dumps(meta)  # the manifest holds it: JSON only (MLmodel's dates included)


@sqlite_only
def test_python_version_falls_back_to_the_pyfunc_flavor(tracking: Backend, tmp_path: Path) -> None:
    folder = mlflow_folder(tmp_path / "model")
    (folder / "python_env.yaml").unlink()
    (folder / "requirements.txt").unlink()
    _, environment, _ = mlflow_model_meta(tracking.blobs, store_files(tracking.blobs, str(folder)))
    assert environment == {"python": "3.11.7", "libraries": {}, "requirements": []}


@sqlite_only
def test_model_one_folder_down_is_found(tracking: Backend, tmp_path: Path) -> None:
    mlflow_folder(tmp_path / "run" / "model")
    (tmp_path / "run" / "notes.txt").write_text("beside the model")
    files = store_files(tracking.blobs, str(tmp_path / "run"))
    meta, environment, _ = mlflow_model_meta(tracking.blobs, files)
    assert meta["mlmodel"] == "model/MLmodel"
    assert environment["python"] == "3.11.9"


@sqlite_only
@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"model.pkl": "x"}, "hold no MLmodel"),
        ({"a/MLmodel": MLMODEL, "b/MLmodel": MLMODEL}, "several MLflow models"),
        ({"MLmodel": "just: text\n"}, "no 'flavors' section"),
        ({"MLmodel": "flavors: [unclosed\n"}, "not valid YAML"),
    ],
)
def test_what_is_no_mlflow_model_is_refused(
    tracking: Backend, tmp_path: Path, layout: dict[str, str], message: str
) -> None:
    for rel, text in layout.items():
        (tmp_path / "pkg" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / rel).write_text(text)
    with pytest.raises(InvalidInput, match=message):
        mlflow_model_meta(tracking.blobs, store_files(tracking.blobs, str(tmp_path / "pkg")))


@pytest.mark.parametrize(
    ("mlflow_signature", "expected"),
    [
        (
            {"inputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]'},
            {"inputs": {"type": "tensor", "shape": [-1, 4], "dtype": "float32"}},
        ),
        (
            {"inputs": '[{"type": "string", "name": "city"}, {"type": "boolean", "name": "ok"}]'},
            {
                "inputs": {
                    "type": "frame",
                    "columns": [{"name": "city", "dtype": "object"}, {"name": "ok", "dtype": "bool"}],
                }
            },
        ),
        ({"inputs": '[{"type": "double", "name": "a", "required": false}]'}, None),
        ({"inputs": '[{"type": "binary", "name": "blob"}]'}, None),
        ({"inputs": '[{"type": "double"}]'}, None),
        ({"inputs": "not json"}, None),
        ({"inputs": None}, None),
        (None, None),
    ],
)
def test_signatures_convert_where_plinth_can_enforce_them(mlflow_signature: Any, expected: Any) -> None:
    assert plinth_signature(mlflow_signature) == expected


def test_artifact_files_are_relative_to_their_folder() -> None:
    artifacts = [
        Artifact("r", "models/m-1/MLmodel", "d1", 1, 0),
        Artifact("r", "models/m-1/sub/model.pkl", "d2", 2, 0),
        Artifact("r", "models/m-10/MLmodel", "d3", 3, 0),
        Artifact("r", "notes.txt", "d4", 4, 0),
    ]
    assert artifact_files(artifacts, "models/m-1/") == [
        ModelFile("MLmodel", "d1", 1),
        ModelFile("sub/model.pkl", "d2", 2),
    ]
    assert artifact_files(artifacts, "notes.txt") == [ModelFile("notes.txt", "d4", 4)]
    assert [f.path for f in artifact_files(artifacts, "")] == sorted(a.path for a in artifacts)


@sqlite_only
def test_register_files_copies_nothing_and_keeps_source_and_lineage(
    tracking: Backend, tmp_path: Path
) -> None:
    folder = mlflow_folder(tmp_path / "model")
    with plinth.start_run("adopt", capture_env=False, system_metrics=False) as run:
        logged = run.log_artifact(str(folder), "model")
    files = artifact_files(logged, "model")
    meta, environment, signature = mlflow_model_meta(tracking.blobs, files)
    source = f"runs:/{run.id}/model"
    mv = register_files(
        tracking.store,
        tracking.blobs,
        name="adopted",
        files=files,
        source=source,
        run_id=run.id,
        description="from MLflow",
        meta=meta,
        environment=environment,
        signature=signature,
    )
    assert (mv.name, mv.version, mv.flavor, mv.source, mv.run_id) == ("adopted", 1, "mlflow", source, run.id)
    assert mv.description == "from MLflow" and mv.signature == signature
    assert tracking.store.model_files(mv.id) == files
    manifest = read_manifest(tracking.blobs, mv)
    assert {f["digest"] for f in manifest["files"]} == {a.digest for a in logged}
    assert manifest["meta"] == meta and manifest["version"] == 1
    edges = tracking.store.edges(src=("run", run.id))
    assert [(e.relation, e.dst_type, e.dst_id) for e in edges] == [("produced", "model_version", mv.id)]
    again = register_files(
        tracking.store, tracking.blobs, name="adopted", files=files, source=source, run_id=None
    )
    assert again.version == 2 and plinth.get_model_version("adopted").version == 2


@sqlite_only
def test_register_files_signs_with_a_signer(tracking: Backend, tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    signer = signing.Signer(key, signing.fingerprint(key.public_key()))
    files = store_files(tracking.blobs, str(mlflow_folder(tmp_path / "model")))
    mv = register_files(
        tracking.store,
        tracking.blobs,
        name="signed",
        files=files,
        source="file:///x",
        run_id=None,
        signer=signer,
    )
    assert mv.signing_key == signer.fingerprint
    statement = signing.statement(mv.name, mv.version, mv.flavor, mv.digest)
    key.public_key().verify(base64.b64decode(mv.manifest_signature or ""), statement)


@sqlite_only
def test_register_files_refuses_no_files(tracking: Backend) -> None:
    with pytest.raises(InvalidInput, match="No files to register"):
        register_files(tracking.store, tracking.blobs, name="empty", files=[], source="x", run_id=None)
