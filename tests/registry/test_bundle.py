"""A model version baked into a folder loads with no store, byte-identical and verified."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.core.entities import ModelVersion
from plinth.core.errors import IntegrityError, InvalidInput, NotFound, SignatureError
from plinth.core.settings import Settings
from plinth.registry.bundle import BundleSource, check_bundle, read_bundle, write_bundle
from plinth.registry.models import load_version, resolve
from plinth.tracking import context

Iris = tuple[pd.DataFrame, LogisticRegression]


@pytest.fixture(scope="module")
def iris() -> Iris:
    x, y = load_iris(return_X_y=True, as_frame=True)
    return x, LogisticRegression(max_iter=1000).fit(x, y)


@pytest.fixture
def champion(iris: Iris) -> ModelVersion:
    """`iris/1`, aliased `champion`, registered in the store under PLINTH_HOME."""
    x, clf = iris
    plinth.configure()
    plinth.register_model("iris", clf, input_example=x[:3])
    plinth.set_alias("iris", "champion", 1)
    return plinth.get_model_version("iris@champion")


def bake(mv: ModelVersion, folder: Path) -> Path:
    write_bundle(context.backend(), mv, str(folder))
    return folder


def elsewhere(tmp_path: Path, **settings: Any) -> Settings:
    """Settings of a process that has never seen the store: a fresh, empty home."""
    return Settings(home=str(tmp_path / "elsewhere"), **settings)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file and folder under `folder`: bytes, mode and modification time."""
    found = {}
    for path in sorted([folder, *folder.rglob("*")]):
        st = path.stat()
        data = path.read_bytes() if path.is_file() else b""
        found[str(path.relative_to(folder))] = (data, st.st_mode, st.st_mtime_ns)
    return found


def file_blobs(folder: Path, mv: ModelVersion) -> list[Path]:
    """The blob files of the package's files (not its manifest)."""
    return [p for p in (folder / "blobs").rglob("*") if p.is_file() and p.parent.name + p.name != mv.digest]


def private_key(path: Path) -> Path:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    return path


def public_half(private: Path, path: Path) -> Path:
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.write_bytes(pem)
    return path


def test_a_version_bakes_into_byte_identical_folders(champion: ModelVersion, tmp_path: Path) -> None:
    digest = write_bundle(context.backend(), champion, str(tmp_path / "a"))
    bake(champion, tmp_path / "b")
    assert digest == champion.digest
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    bake(champion, tmp_path / "a")  # written again over itself
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "home"]  # no staging folder left behind


def test_the_record_keeps_every_field_and_the_aliases(champion: ModelVersion, tmp_path: Path) -> None:
    folder = bake(champion, tmp_path / "bundle")
    assert read_bundle(str(folder)) == champion
    doc = json.loads((folder / "version.json").read_text())
    assert doc["aliases"] == ["champion"] and doc["digest"] == champion.digest
    assert set(doc) == {f.name for f in dataclasses.fields(ModelVersion)}


def test_a_bundle_predicts_as_load_model_does(iris: Iris, champion: ModelVersion, tmp_path: Path) -> None:
    x, _clf = iris
    folder = bake(champion, tmp_path / "bundle")
    expected = plinth.load_model("iris@champion").predict(x)
    context.reset()
    source = BundleSource(str(folder), elsewhere(tmp_path))
    model = load_version(source, resolve("iris@champion", source))
    np.testing.assert_array_equal(model.predict(x), expected)
    assert model.model_version == champion
    assert context.current() is None
    assert (tmp_path / "elsewhere" / "cache" / "models" / champion.digest).is_dir()
    assert not (tmp_path / "elsewhere" / "plinth.db").exists()


def test_loading_writes_nothing_into_the_bundle(champion: ModelVersion, tmp_path: Path) -> None:
    folder = bake(champion, tmp_path / "bundle")
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = snapshot(folder)
    source = BundleSource(str(folder), elsewhere(tmp_path))
    load_version(source, resolve("iris", source))
    check_bundle(str(folder), [], source.settings)
    assert snapshot(folder) == before


@pytest.mark.parametrize("ref", ["iris", "iris@latest", "iris/1", "iris@champion", "models:/iris/1"])
def test_references_to_the_baked_version_resolve(champion: ModelVersion, tmp_path: Path, ref: str) -> None:
    source = BundleSource(str(bake(champion, tmp_path / "bundle")), elsewhere(tmp_path))
    assert resolve(ref, source) == champion


@pytest.mark.parametrize("ref", ["other", "iris/2", "iris@challenger", "other@champion"])
def test_other_references_name_what_the_bundle_holds(
    champion: ModelVersion, tmp_path: Path, ref: str
) -> None:
    source = BundleSource(str(bake(champion, tmp_path / "bundle")), elsewhere(tmp_path))
    with pytest.raises(NotFound, match=r"holds iris/1 \(also iris@champion\) only"):
        resolve(ref, source)
    with pytest.raises(NotFound, match="is not in it"):
        check_bundle(source.folder, [ref], source.settings)


def test_check_bundle_defaults_to_the_baked_model(champion: ModelVersion, tmp_path: Path) -> None:
    folder = str(bake(champion, tmp_path / "bundle"))
    assert check_bundle(folder, [], elsewhere(tmp_path)) == ["iris"]
    assert check_bundle(folder, ["iris@champion"], elsewhere(tmp_path)) == ["iris@champion"]


@pytest.mark.parametrize("which", ["file", "manifest"])
def test_a_tampered_blob_is_refused(champion: ModelVersion, tmp_path: Path, which: str) -> None:
    folder = bake(champion, tmp_path / "bundle")
    digest = champion.digest
    manifest = folder / "blobs" / digest[:2] / digest[2:]
    target = manifest if which == "manifest" else file_blobs(folder, champion)[0]
    target.write_bytes(target.read_bytes() + b" ")
    source = BundleSource(str(folder), elsewhere(tmp_path))
    with pytest.raises(IntegrityError, match="corrupted"):
        load_version(source, resolve("iris", source))


def test_unsigned_versions_are_refused_where_signing_is_required(
    champion: ModelVersion, tmp_path: Path
) -> None:
    folder = bake(champion, tmp_path / "bundle")
    source = BundleSource(str(folder), elsewhere(tmp_path, require_signed=True))
    with pytest.raises(SignatureError, match="not signed"):
        load_version(source, resolve("iris", source))
    with pytest.raises(SignatureError, match="not signed"):
        check_bundle(str(folder), [], source.settings)


def test_a_signed_bundle_is_verified_and_an_edited_record_refused(iris: Iris, tmp_path: Path) -> None:
    x, clf = iris
    key = private_key(tmp_path / "k.pem")
    plinth.configure(dataclasses.replace(Settings.from_env(), signing_key=str(key)))
    mv = plinth.register_model("signed", clf, input_example=x[:3])
    folder = bake(mv, tmp_path / "bundle")
    public = str(public_half(key, tmp_path / "k.pub"))
    verifier = elsewhere(tmp_path, verify_keys=(public,), require_signed=True)
    source = BundleSource(str(folder), verifier)
    np.testing.assert_array_equal(load_version(source, mv).predict(x[:5]), clf.predict(x[:5]))
    record = folder / "version.json"
    record.write_text(record.read_text().replace('"flavor": "sklearn"', '"flavor": "python"'))
    edited = BundleSource(str(folder), verifier)
    with pytest.raises(SignatureError):
        load_version(edited, edited.version)


def test_a_missing_or_corrupt_bundle_says_so(champion: ModelVersion, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such folder"):
        read_bundle(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFound, match=r"holds no version\.json"):
        read_bundle(str(tmp_path / "empty"))
    folder = bake(champion, tmp_path / "bundle")
    (folder / "version.json").write_text('{"name": "iris"}')
    with pytest.raises(IntegrityError, match=r"corrupted: its version\.json is not a model version"):
        read_bundle(str(folder))
    (folder / "version.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="is corrupted"):
        BundleSource(str(folder), elsewhere(tmp_path))


def test_a_bundle_replaces_a_bundle_but_not_other_files(
    iris: Iris, champion: ModelVersion, tmp_path: Path
) -> None:
    folder = bake(champion, tmp_path / "bundle")
    second = plinth.register_model("iris", iris[1])
    bake(second, folder)
    assert read_bundle(str(folder)).version == 2
    other = tmp_path / "project"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="holds other files"):
        bake(champion, other)
    assert os.listdir(other) == ["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["bundle", "home", "project"]
