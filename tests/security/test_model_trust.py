"""What a model version loads is the model it names: records, manifests, caches, signatures, refs.

SQLite and PostgreSQL where the store is involved.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import pickle
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sqlalchemy import update
from starlette.testclient import TestClient

import plinth
from loops import run_loop
from plinth.cli.main import main
from plinth.core.entities import ModelVersion
from plinth.core.errors import (
    ConfigError,
    IntegrityError,
    InvalidInput,
    NotFound,
    PlinthError,
    SignatureError,
)
from plinth.core.refs import MAX_VERSION
from plinth.core.settings import Settings
from plinth.registry import package
from plinth.registry.models import sign_versions
from plinth.serving.app import create_app
from plinth.serving.options import ServeOptions
from plinth.store import schema as t
from plinth.store.open import open_store
from plinth.tracking.context import Backend

Iris = tuple[pd.DataFrame, LogisticRegression]


@pytest.fixture(scope="module")
def iris() -> Iris:
    x, y = load_iris(return_X_y=True, as_frame=True)
    return x, LogisticRegression(max_iter=1000).fit(x, y)


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything is unpickled from here on."""
    for name in ("pickle.load", "pickle.loads"):
        monkeypatch.setattr(name, lambda *a, **k: pytest.fail("bytes were unpickled"))


def private_key(path: Path) -> Path:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    return path


def public_half(private: Path, path: Path) -> Path:
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.write_bytes(pem)
    return path


def edit_version(be: Backend, mv: ModelVersion, **values: Any) -> None:
    """Change a version's row behind plinth's back, as a writer of the database could."""
    mvs = t.model_versions
    with be.store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(update(mvs).where(mvs.c.id == mv.id).values(**values))


def forge_manifest(be: Backend, mv: ModelVersion, payload: bytes) -> str:
    """Store a manifest naming `mv` whose model.pkl is `payload`; return its digest."""
    manifest = json.loads(be.blobs.read_bytes(mv.digest))
    digest, size = be.blobs.put_bytes(payload)
    manifest["files"] = [{"path": "model.pkl", "digest": digest, "size": size}]
    forged, _ = be.blobs.put_bytes(json.dumps(manifest, sort_keys=True, indent=1).encode())
    return forged


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


EVIL = b"cos\nsystem\n(S'echo pwned'\ntR."  # a pickle that would run a command


# --- a version's record and its manifest ----------------------------------------------------------


def test_a_record_pointing_at_another_models_package_is_refused(
    tracking: Backend, iris: Iris, no_unpickling: None
) -> None:
    x, clf = iris
    mv = plinth.register_model("victim", clf, input_example=x[:5])
    other = plinth.register_model("other", clf, input_example=x[:5])
    edit_version(tracking, mv, digest=other.digest)
    with pytest.raises(IntegrityError, match=r"victim/1 \(sklearn\) points at the package of other/1"):
        plinth.load_model("victim")


def test_a_record_pointing_at_another_version_is_refused(
    tracking: Backend, iris: Iris, no_unpickling: None
) -> None:
    x, clf = iris
    first = plinth.register_model("m", clf, input_example=x[:5])
    second = plinth.register_model("m", clf, input_example=x[:5])
    edit_version(tracking, first, digest=second.digest)
    with pytest.raises(IntegrityError, match="package of m/2"):
        plinth.load_model("m/1")


def test_a_forged_manifest_loads_nothing_from_a_signed_version(
    tracking: Backend, iris: Iris, tmp_path: Path, no_unpickling: None
) -> None:
    x, clf = iris
    plinth.configure(dataclasses.replace(tracking.settings, signing_key=str(private_key(tmp_path / "k.pem"))))
    mv = plinth.register_model("signed", clf, input_example=x[:5])
    verify = public_half(tmp_path / "k.pem", tmp_path / "k.pub")
    be = plinth.configure(dataclasses.replace(tracking.settings, verify_keys=(str(verify),)))
    edit_version(be, mv, digest=forge_manifest(be, mv, EVIL))
    with pytest.raises(SignatureError, match="signature of model signed/1 does not match"):
        plinth.load_model("signed")


def test_a_forged_unsigned_version_is_refused_where_signing_is_required(
    tracking: Backend, iris: Iris, tmp_path: Path, no_unpickling: None
) -> None:
    x, clf = iris
    key = private_key(tmp_path / "k.pem")
    plinth.configure(dataclasses.replace(tracking.settings, signing_key=str(key)))
    mv = plinth.register_model("signed", clf, input_example=x[:5])
    verify = public_half(key, tmp_path / "k.pub")
    be = plinth.configure(
        dataclasses.replace(tracking.settings, verify_keys=(str(verify),), require_signed=True)
    )
    edit_version(be, mv, digest=forge_manifest(be, mv, EVIL), manifest_signature=None, signing_key=None)
    with pytest.raises(SignatureError, match="not signed and PLINTH_REQUIRE_SIGNED=1"):
        plinth.load_model("signed")


def test_a_signature_cannot_be_replayed_onto_another_version(
    tracking: Backend, iris: Iris, tmp_path: Path, no_unpickling: None
) -> None:
    x, clf = iris
    plinth.configure(dataclasses.replace(tracking.settings, signing_key=str(private_key(tmp_path / "k.pem"))))
    first = plinth.register_model("m", clf, input_example=x[:5])
    plinth.configure(tracking.settings)
    second = plinth.register_model("m", clf)  # the same files; a manifest naming version 2
    be = plinth.configure(dataclasses.replace(tracking.settings, signing_key=str(tmp_path / "k.pem")))
    edit_version(be, second, manifest_signature=first.manifest_signature, signing_key=first.signing_key)
    with pytest.raises(SignatureError, match="copied from another version"):
        plinth.load_model("m/2")


def test_a_version_registered_before_manifests_named_their_version_loads_and_can_be_signed(
    tracking: Backend, iris: Iris, tmp_path: Path
) -> None:
    x, clf = iris
    mv = plinth.register_model("older", clf, input_example=x[:5])
    manifest = json.loads(tracking.blobs.read_bytes(mv.digest))
    del manifest["version"]
    older, _ = tracking.blobs.put_bytes(json.dumps(manifest, sort_keys=True, indent=1).encode())
    edit_version(tracking, mv, digest=older)
    assert plinth.load_model("older").version == 1
    key = private_key(tmp_path / "k.pem")
    plinth.configure(dataclasses.replace(tracking.settings, signing_key=str(key), require_signed=True))
    [signed] = sign_versions("older/1").signed
    assert signed.digest == older and plinth.load_model("older").version == 1


def forge_meta(be: Backend, mv: ModelVersion, **meta: Any) -> str:
    """Store a manifest naming `mv` whose flavor metadata is changed; return its digest."""
    manifest = json.loads(be.blobs.read_bytes(mv.digest))
    manifest["meta"].update(meta)
    forged, _ = be.blobs.put_bytes(json.dumps(manifest, sort_keys=True, indent=1).encode())
    return forged


@pytest.mark.parametrize("target", ["subprocess:Popen", "os:system", "builtins:type", "subprocess"])
def test_a_forged_torch_manifest_calls_nothing_but_a_module_class(
    tracking: Backend, tmp_path: Path, target: str
) -> None:
    torch = pytest.importorskip("torch")
    marker = tmp_path / "PWNED"
    mv = plinth.register_model("tnet", torch.nn.Linear(2, 1), input_example=np.zeros((2, 2), np.float32))
    shell = {"args": f"touch {marker}", "shell": True}
    forged = {"format": "state_dict", "class": target, "init_kwargs": shell}
    edit_version(tracking, mv, digest=forge_meta(tracking, mv, **forged))
    with pytest.raises(IntegrityError, match=r"tnet/1 names .* \(meta\.class\), which is not"):
        plinth.load_model("tnet/1")
    assert not marker.exists()


@pytest.mark.parametrize("target", ["subprocess.Popen", "os.system", "xgboost.DMatrix", "Popen"])
def test_a_forged_xgboost_manifest_builds_only_an_xgboost_model(
    tracking: Backend, iris: Iris, target: str
) -> None:
    xgb = pytest.importorskip("xgboost")
    x, _clf = iris
    model = xgb.XGBClassifier(n_estimators=2).fit(x, load_iris().target)
    mv = plinth.register_model("xgb", model, input_example=x[:5])
    edit_version(tracking, mv, digest=forge_meta(tracking, mv, **{"class": target}))
    with pytest.raises(IntegrityError, match=r"xgb/1 names .* \(meta\.class\), which is not"):
        plinth.load_model("xgb/1")


# --- signing ---------------------------------------------------------------------------------------


def test_versions_are_signed_when_registered_and_verified_with_the_public_key(
    tracking: Backend, iris: Iris, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, clf = iris
    key = private_key(tmp_path / "k.pem")
    plinth.configure(dataclasses.replace(tracking.settings, signing_key=str(key)))
    mv = plinth.register_model("s", clf, input_example=x[:5])
    assert mv.manifest_signature and len(mv.signing_key or "") == 64
    assert plinth.get_model_version("s", 1).signing_key == mv.signing_key
    verifier = dataclasses.replace(
        tracking.settings, verify_keys=(str(public_half(key, tmp_path / "k.pub")),), require_signed=True
    )
    plinth.configure(verifier)
    np.testing.assert_array_equal(plinth.load_model("s").predict(x[:5]), clf.predict(x[:5]))
    code, out, _ = cli(capsys, "models", "show", "s")
    assert code == 0 and f"signed by key {mv.signing_key}, verified" in out
    code, out, _ = cli(capsys, "models", "show", "s", "--json")
    shown = json.loads(out)
    assert (shown["signing_key"], shown["signing"]) == (mv.signing_key, "verified")


def test_require_signed_refuses_unsigned_versions_in_load_model_and_serve(
    tracking: Backend, iris: Iris, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, clf = iris
    plinth.register_model("u", clf, input_example=x[:5])
    key = private_key(tmp_path / "k.pem")
    plinth.configure(dataclasses.replace(tracking.settings, signing_key=str(key), require_signed=True))
    with pytest.raises(SignatureError, match="plinth models sign u/1"):
        plinth.load_model("u")
    code, _out, err = cli(capsys, "serve", "u")
    assert code == 4 and "not signed" in err
    code, out, _ = cli(capsys, "models", "show", "u")
    assert code == 0 and "unsigned" in out


def test_sign_signs_existing_versions_and_is_audited(
    tracking: Backend, iris: Iris, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, clf = iris
    for _ in range(2):
        plinth.register_model("old", clf, input_example=x[:5])
    key = private_key(tmp_path / "k.pem")
    be = plinth.configure(dataclasses.replace(tracking.settings, signing_key=str(key), require_signed=True))
    code, out, _ = cli(capsys, "models", "sign", "old")
    assert code == 0 and "old/1, old/2" in out
    assert plinth.load_model("old/1").version == 1 and plinth.load_model("old/2").version == 2
    signed = [
        (e.entity_id, e.before, e.after) for e in be.store.audit_events() if e.action == "model.version.sign"
    ]
    fingerprint = plinth.get_model_version("old", 1).signing_key
    assert signed == [("old/1", None, fingerprint), ("old/2", None, fingerprint)]
    code, out, _ = cli(capsys, "models", "sign", "old")
    assert code == 0 and "Nothing to sign" in out


def test_sign_refuses_a_version_whose_record_was_changed(
    tracking: Backend, iris: Iris, tmp_path: Path, no_unpickling: None
) -> None:
    x, clf = iris
    mv = plinth.register_model("victim", clf, input_example=x[:5])
    other = plinth.register_model("other", clf, input_example=x[:5])
    edit_version(tracking, mv, digest=other.digest)
    plinth.configure(dataclasses.replace(tracking.settings, signing_key=str(private_key(tmp_path / "k.pem"))))
    with pytest.raises(IntegrityError, match="points at the package of other/1"):
        sign_versions("victim/1")
    assert plinth.get_model_version("victim", 1).signing_key is None


@pytest.mark.parametrize("forged_key", ["0" * 64, None])  # a key nobody trusts; the signer's own
def test_sign_does_not_replace_a_signature_it_cannot_verify(
    tracking: Backend,
    iris: Iris,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_unpickling: None,
    forged_key: str | None,
) -> None:
    x, clf = iris
    plinth.register_model("clf", clf, input_example=x[:5])
    key = private_key(tmp_path / "k1.pem")
    be = plinth.configure(dataclasses.replace(tracking.settings, signing_key=str(key)))
    mv = plinth.register_model("clf", clf, input_example=x[:5])
    forged = {"signing_key": forged_key} if forged_key else {}
    edit_version(be, mv, digest=forge_manifest(be, mv, EVIL), **forged)
    code, _out, err = cli(capsys, "models", "sign", "clf")
    assert code == 4 and "clf/2" in err and "--resign" in err and "Nothing was signed" in err
    assert plinth.get_model_version("clf", 1).signing_key is None
    assert plinth.get_model_version("clf", 2).signing_key == (forged_key or mv.signing_key)
    plinth.configure(dataclasses.replace(be.settings, require_signed=True))
    with pytest.raises(SignatureError):
        plinth.load_model("clf/2")
    plinth.configure(be.settings)
    code, out, _ = cli(capsys, "models", "sign", "clf", "--resign")
    assert code == 0 and "Signed clf/1, clf/2" in out
    resigned = [(e.entity_id, e.before) for e in be.store.audit_events() if e.action == "model.version.sign"]
    assert resigned == [("clf/1", None), ("clf/2", forged_key or mv.signing_key)]


def test_sign_leaves_versions_signed_by_another_trusted_key(
    tracking: Backend, iris: Iris, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, clf = iris
    a = private_key(tmp_path / "a.pem")
    plinth.configure(dataclasses.replace(tracking.settings, signing_key=str(a)))
    first = plinth.register_model("m", clf, input_example=x[:5])
    plinth.configure(tracking.settings)
    plinth.register_model("m", clf, input_example=x[:5])
    trusting_a = (str(public_half(a, tmp_path / "a.pub")),)
    be = plinth.configure(
        dataclasses.replace(
            tracking.settings, signing_key=str(private_key(tmp_path / "b.pem")), verify_keys=trusting_a
        )
    )
    code, out, _ = cli(capsys, "models", "sign", "m")
    assert code == 0 and "Signed m/2 with key" in out
    assert f"Left m/1 as signed by key {first.signing_key} (verified)" in out
    assert plinth.get_model_version("m", 1).manifest_signature == first.manifest_signature
    assert [e.entity_id for e in be.store.audit_events() if e.action == "model.version.sign"] == ["m/2"]
    code, out, _ = cli(capsys, "models", "sign", "m/1", "--resign")
    assert code == 0 and "Nothing to sign" in out


def test_a_server_refuses_an_unsigned_alias_target_once_and_says_so(
    tracking: Backend, iris: Iris, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x, clf = iris
    signer = dataclasses.replace(
        tracking.settings, signing_key=str(private_key(tmp_path / "k.pem")), require_signed=True
    )
    plinth.configure(signer)
    plinth.register_model("iris", clf, input_example=x[:5])
    plinth.set_alias("iris", "champion", 1)
    app = create_app(["iris@champion"], signer, ServeOptions(alias_poll_s=3600))
    with TestClient(app) as client:
        [deployment] = app.state.plinth.deployments()
        plinth.configure(tracking.settings)  # no key: version 2 is registered unsigned
        plinth.register_model("iris", clf, input_example=x[:5])
        plinth.set_alias("iris", "champion", 2)
        with caplog.at_level(logging.ERROR, logger="plinth.serving"):
            polls = [run_loop(deployment.refresh()) for _ in range(3)]
        assert polls == ["failed", None, None]
        assert [r.getMessage()[:37] for r in caplog.records] == ["iris@champion moved to version 2, whi"]
        watch = client.get("/readyz").json()["degraded"]["alias_watch"]
        assert (
            watch.startswith("iris@champion -> 2 refused, still serving 1: SignatureError")
            and "not signed" in watch
        )
        answer = client.post("/v1/models/iris/predict", json={"instances": x[:1].to_dict("records")})
        assert answer.json()["version"] == 1
        be = plinth.configure(signer)
        sign_versions("iris/2")
        assert run_loop(deployment.refresh()) == "swapped"
        assert client.get("/readyz").json()["degraded"] == {}
    swaps = [e.action for e in be.store.audit_events(entity_id="iris") if e.action.startswith("serving.")]
    assert swaps == ["serving.swap_failed", "serving.swap"]


def test_a_key_not_trusted_here_loads_only_where_signing_is_not_required(
    tracking: Backend, iris: Iris, tmp_path: Path
) -> None:
    x, clf = iris
    plinth.configure(dataclasses.replace(tracking.settings, signing_key=str(private_key(tmp_path / "a.pem"))))
    plinth.register_model("s", clf, input_example=x[:5])
    stranger = public_half(private_key(tmp_path / "b.pem"), tmp_path / "b.pub")
    trusting_b = dataclasses.replace(tracking.settings, verify_keys=(str(stranger),))
    plinth.configure(trusting_b)
    assert plinth.load_model("s").version == 1
    plinth.configure(dataclasses.replace(trusting_b, require_signed=True))
    with pytest.raises(SignatureError, match="not among the trusted keys"):
        plinth.load_model("s")


def _rsa(folder: Path) -> Path:
    path = folder / "rsa.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    return path


def _encrypted(folder: Path) -> Path:
    path = folder / "encrypted.pem"
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    path.write_bytes(pem)
    return path


@pytest.mark.parametrize(
    ("setting", "make", "message"),
    [
        ("PLINTH_SIGNING_KEY", lambda d: d / "absent.pem", "there is no key file"),
        ("PLINTH_SIGNING_KEY", lambda d: _text(d / "x.pem", "hello"), "not a PEM key file"),
        ("PLINTH_SIGNING_KEY", _rsa, "an RSA key, not an Ed25519 key"),
        ("PLINTH_SIGNING_KEY", _encrypted, "encrypted with a passphrase"),
        (
            "PLINTH_SIGNING_KEY",
            lambda d: public_half(private_key(d / "k.pem"), d / "k.pub"),
            "is a public key",
        ),
        ("PLINTH_VERIFY_KEYS", lambda d: private_key(d / "k.pem"), "a private key; give its public half"),
        ("PLINTH_VERIFY_KEYS", lambda d: d / "absent.pub", "there is no key file"),
        (
            "PLINTH_VERIFY_KEYS",
            lambda d: _text(d / "x.pub", "-----BEGIN PUBLIC KEY-----"),
            "not a PEM public key",
        ),
    ],
)
def test_bad_key_files_are_config_errors_naming_the_setting(
    tracking: Backend, iris: Iris, tmp_path: Path, setting: str, make: Callable[[Path], Path], message: str
) -> None:
    x, clf = iris
    plinth.register_model("k", clf, input_example=x[:5])
    path = str(make(tmp_path))
    if setting == "PLINTH_SIGNING_KEY":
        plinth.configure(dataclasses.replace(tracking.settings, signing_key=path))
        with pytest.raises(ConfigError, match=message) as caught:
            plinth.register_model("k", clf, input_example=x[:5])
        assert [v.version for v in plinth.list_model_versions("k")] == [1]  # nothing half-registered
    else:
        plinth.configure(dataclasses.replace(tracking.settings, verify_keys=(path,)))
        with pytest.raises(ConfigError, match=message) as caught:
            plinth.load_model("k")
    assert setting in str(caught.value)


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_signing_without_cryptography_says_what_to_install(
    tracking: Backend, iris: Iris, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, clf = iris
    plinth.configure(dataclasses.replace(tracking.settings, signing_key=str(private_key(tmp_path / "k.pem"))))
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(ConfigError, match=r"pip install 'plinth\[signing\]'"):
        plinth.register_model("k", clf, input_example=x[:5])


# --- the local cache --------------------------------------------------------------------------------


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """Same inode, same size, same modification time: only the bytes differ."""
    st = path.stat()
    data = data.ljust(st.st_size, b" ")[: st.st_size]
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("flavor", ["sklearn", "python"])
def test_a_cached_pickle_rewritten_in_place_is_never_unpickled(
    tracking: Backend, iris: Iris, monkeypatch: pytest.MonkeyPatch, flavor: str
) -> None:
    x, clf = iris
    mv = plinth.register_model("c", clf, input_example=x[:5], flavor=flavor)
    for _ in range(2):  # fetched, then loaded warm from the cache
        plinth.load_model("c")
    cached = Path(tracking.settings.home) / "cache" / "models" / mv.digest / "model.pkl"
    _rewrite_in_place(cached, EVIL)
    real_loads = pickle.loads

    def loads(data: bytes, *args: object, **kwargs: object) -> object:
        if bytes(data[: len(EVIL)]) == EVIL[: len(data)]:
            pytest.fail("the rewritten copy was unpickled")
        return real_loads(data, *args, **kwargs)

    monkeypatch.setattr("pickle.loads", loads)
    warm = plinth.load_model("c")  # this process unpickles the bytes it verified, not the file
    assert warm.predict(x[:5]).tolist() == clf.predict(x[:5]).tolist()
    package.VERIFIED.clear()  # as a new process would start
    with pytest.raises(IntegrityError, match="was modified"):
        plinth.load_model("c")
    assert plinth.load_model("c").version == 1  # a verified copy is fetched again


# --- aliases moved at once --------------------------------------------------------------------------


def test_concurrent_alias_moves_audit_the_value_each_replaced(settings: Settings) -> None:
    be = plinth.configure(settings)
    movers = 6
    for _ in range(movers + 1):
        plinth.register_model("race", lambda data: np.asarray(data)[:, 0])
    plinth.set_alias("race", "champion", 1)
    stores = [open_store(settings) for _ in range(movers)]  # one connection pool each
    start = threading.Barrier(movers)

    def move(i: int) -> int | None:
        start.wait()
        return stores[i].set_alias("race", "champion", i + 2)

    try:
        with ThreadPoolExecutor(movers) as pool:
            replaced = list(pool.map(move, range(movers)))
    finally:
        for store in stores:
            store.close()
    moves = [
        (e.before, e.after) for e in be.store.audit_events(entity_id="race") if e.action == "model.alias.set"
    ]
    assert moves[0] == (None, "champion=1") and len(moves) == movers + 1
    for (_before, after), (before, _after) in itertools.pairwise(moves):
        assert before == after  # each move replaced what the one before it set
    assert sorted(replaced) == sorted(int(b.split("=")[1]) for b, _ in moves[1:])  # type: ignore[union-attr]


def test_concurrent_alias_deletes_audit_one_removal(settings: Settings) -> None:
    be = plinth.configure(settings)
    plinth.register_model("race", lambda data: np.asarray(data)[:, 0])
    plinth.set_alias("race", "champion", 1)
    stores = [open_store(settings) for _ in range(4)]
    start = threading.Barrier(4)

    def remove(i: int) -> str:
        start.wait()
        try:
            stores[i].delete_alias("race", "champion")
        except NotFound:
            return "gone"
        return "removed"

    try:
        with ThreadPoolExecutor(4) as pool:
            outcomes = sorted(pool.map(remove, range(4)))
    finally:
        for store in stores:
            store.close()
    assert outcomes == ["gone", "gone", "gone", "removed"]
    removals = [e for e in be.store.audit_events(entity_id="race") if e.action == "model.alias.delete"]
    assert [(e.before, e.after) for e in removals] == [("champion=1", None)]


# --- references -------------------------------------------------------------------------------------

BAD_REFS = [
    "x/99999999999999999999999",
    "x/" + "9" * 5000,
    f"x/{MAX_VERSION + 1}",
    "x/-1",
    "x/0",
    "x/",
    "x/²",
    "x/\uff13",  # a fullwidth 3
    "x/ 3",
    "x/3 ",
    "x/1_000",
    "\ud800/1",
    "x\ud800",
    "x@\ud800",
    "x/\ud800",
    "x@",
    "/3",
    "",
    "   ",
    "x/3@champion",
]


@pytest.mark.parametrize("ref", BAD_REFS)
def test_bad_model_references_are_invalid_input(tracking: Backend, ref: str) -> None:
    with pytest.raises(InvalidInput):
        plinth.load_model(ref)


@pytest.mark.parametrize("version", [10**22, MAX_VERSION + 1, -1, 0])
def test_versions_no_store_can_hold_are_not_found(tracking: Backend, version: int) -> None:
    plinth.register_model("x", lambda data: data)
    with pytest.raises(NotFound, match="has no version"):
        plinth.get_model_version("x", version)
    with pytest.raises(NotFound, match="has no version"):
        plinth.set_alias("x", "champion", version)
    with pytest.raises(NotFound, match="has no version"):
        plinth.set_model_description("x", "d", version=version)


@pytest.mark.parametrize(
    "ref", ["x/99999999999999999999999", "x/" + "9" * 5000, "x/²", "x\ud800/1", "x@\ud800"]
)
def test_lineage_and_dataset_references_agree(
    tracking: Backend, capsys: pytest.CaptureFixture[str], ref: str
) -> None:
    plinth.register_model("x", lambda data: data)
    with pytest.raises(PlinthError):
        plinth.lineage(ref)
    code, _out, err = cli(capsys, "datasets", "show", ref)
    assert code in (2, 3) and "Traceback" not in err
