"""The registry as users call it: register, alias, load, validate, verify; SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.core.errors import IntegrityError, InvalidInput, NotFound, PlinthWarning
from plinth.core.settings import Settings
from plinth.registry import package
from plinth.tracking.context import Backend

RESOURCES = Path(__file__).parent.parent / "resources"


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series, LogisticRegression]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    return x, y, LogisticRegression(max_iter=1000).fit(x, y)


class Doubler:
    def predict(self, data: np.ndarray) -> np.ndarray:
        return np.asarray(data).sum(axis=1) * 2


def test_issue_example(
    tracking: Backend, iris: tuple[pd.DataFrame, pd.Series, LogisticRegression], actor: str
) -> None:
    x, _y, clf = iris
    with plinth.start_run(experiment="iris") as run:
        ds = run.log_dataset(x, name="iris-train")
        mv = run.log_model(clf, name="iris-clf", input_example=x[:5])
    assert (mv.name, mv.version, mv.flavor, mv.run_id) == ("iris-clf", 1, "sklearn", run.id)
    assert [c["name"] for c in mv.signature["inputs"]["columns"]] == list(x.columns)
    assert "scikit-learn" in mv.environment["libraries"] and mv.creator == actor
    mv2 = plinth.register_model("iris-clf", clf, input_example=x[:5], description="outside a run")
    assert mv2.version == 2 and mv2.run_id is None
    plinth.set_alias("iris-clf", "champion", version=mv.version)
    m = plinth.load_model("iris-clf@champion")
    assert (m.name, m.version) == ("iris-clf", 1)
    np.testing.assert_array_equal(m.predict(x[:10]), clf.predict(x[:10]))
    np.testing.assert_allclose(m.predict_proba(x[:3]), clf.predict_proba(x[:3]))
    assert isinstance(m.raw, LogisticRegression)
    assert plinth.load_model("iris-clf").version == 2
    assert plinth.load_model("iris-clf/1").version == 1
    assert [v.version for v in plinth.list_model_versions("iris-clf")] == [1, 2]
    assert plinth.get_model_version("iris-clf", 1).aliases == ("champion",)
    [model] = plinth.list_models()
    assert (model.name, model.latest_version, model.aliases) == ("iris-clf", 2, {"champion": 1})
    edges = tracking.store.edges(src=("run", run.id))
    assert [(e.relation, e.dst_id) for e in edges] == [("produced", mv.id)]
    assert tracking.store.edges(dst=("run", run.id))[0].src_id == ds.id  # model <- run <- dataset
    plinth.delete_alias("iris-clf", "champion")
    with pytest.raises(NotFound, match="no alias 'champion'"):
        plinth.load_model("iris-clf@champion")


def test_safe_casts_are_applied(
    tracking: Backend, iris: tuple[pd.DataFrame, pd.Series, LogisticRegression]
) -> None:
    x, _y, clf = iris
    plinth.register_model("m", clf, input_example=x[:5])
    m = plinth.load_model("m")
    expected = clf.predict(x[:4])
    reordered = x[:4][list(reversed(x.columns))]
    as_ints = x[:4].round().astype({x.columns[0]: "int64"})
    np.testing.assert_array_equal(m.predict(reordered), expected)
    np.testing.assert_array_equal(m.predict(as_ints), clf.predict(as_ints.astype(float)))
    np.testing.assert_array_equal(m.predict(x[:4].to_numpy()), expected)
    np.testing.assert_array_equal(m.predict(x[:4].to_dict("records")), expected)


@pytest.mark.parametrize(
    ("mutate", "field", "got"),
    [
        (lambda d: d.drop(columns=["petal width (cm)"]), "petal width (cm)", "missing"),
        (lambda d: d.assign(extra=1.0), "extra", "present"),
        (lambda d: d.assign(**{"sepal width (cm)": ["a"] * len(d)}), "sepal width (cm)", "str"),
        (lambda d: d.to_numpy()[:, :3], "<input>", "shape (2, 3)"),
    ],
)
def test_bad_input_names_the_problem(tracking: Backend, iris, mutate, field, got) -> None:  # type: ignore[no-untyped-def]
    x, _y, clf = iris
    plinth.register_model("m", clf, input_example=x[:5])
    with pytest.raises(InvalidInput, match="signature") as info:
        plinth.load_model("m").predict(mutate(x[:2].copy()))
    assert info.value.problems[0]["field"] == field
    assert info.value.problems[0]["got"] == got


class Lengths:
    """A model over a text column and a number: the text's length plus the number."""

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return data["s"].str.len().to_numpy() + data["v"].to_numpy()


@pytest.mark.parametrize("text_dtype", ["str", "object", "string"])
def test_text_columns_predict(tracking: Backend, text_dtype: str) -> None:
    example = pd.DataFrame({"s": ["ab", "c"], "v": [1.0, 2.0]}).astype({"s": text_dtype})
    with plinth.start_run(experiment="text") as run:
        mv = run.log_model(Lengths(), name="t", input_example=example, flavor="python")
    assert mv.signature["inputs"]["columns"] == [
        {"name": "s", "dtype": text_dtype},
        {"name": "v", "dtype": "float64"},
    ]
    m = plinth.load_model("t")
    assert m.predict(example).tolist() == [3.0, 3.0]
    assert m.predict(pd.DataFrame({"v": [1], "s": ["xyz"]})).tolist() == [4.0]  # any text dtype, ints
    assert m.predict([{"s": "é", "v": 0.5}, {"s": "", "v": 0.0}]).tolist() == [1.5, 0.0]
    assert m.predict(m.input_example).tolist() == [3.0, 3.0]
    with pytest.raises(InvalidInput, match="s: expected") as info:
        m.predict(pd.DataFrame({"s": [1, 2], "v": [1.0, 2.0]}))
    assert info.value.problems == [{"field": "s", "expected": text_dtype, "got": "int64"}]


def test_tensor_signature(tracking: Backend) -> None:
    plinth.register_model("d", Doubler(), input_example=np.ones((2, 3)))
    m = plinth.load_model("d")
    assert m.flavor.name == "python"
    assert m.signature == {"inputs": {"type": "tensor", "shape": [-1, 3], "dtype": "float64"}}
    np.testing.assert_array_equal(m.predict(np.ones((4, 3), dtype=np.int32)), [6, 6, 6, 6])
    with pytest.raises(InvalidInput, match=r"shape \(n, 3\)"):
        m.predict(np.ones((4, 2)))
    assert not m.has_proba
    with pytest.raises(InvalidInput, match="no predict_proba"):
        m.predict_proba(np.ones((1, 3)))


def test_plain_callable(tracking: Backend) -> None:
    offset = 10
    plinth.register_model("f", lambda data: np.asarray(data)[:, 0] + offset)
    np.testing.assert_array_equal(plinth.load_model("f").predict([[1, 2], [3, 4]]), [11, 13])


def test_tampered_blob_is_never_unpickled(
    tracking: Backend,
    iris: tuple[pd.DataFrame, pd.Series, LogisticRegression],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, _y, clf = iris
    mv = plinth.register_model("t", clf, input_example=x[:5])
    [model_file] = [f for f in tracking.store.model_files(mv.id) if f.path == "model.pkl"]
    path = tracking.blobs.path_of(model_file.digest)
    with open(path, "wb") as fh:
        fh.write(b"cos\nsystem\n(S'echo pwned'\ntR.")  # a pickle that would run a command
    for unpickle in ("pickle.load", "pickle.loads"):
        monkeypatch.setattr(unpickle, lambda *a, **k: pytest.fail("tampered bytes were unpickled"))
    with pytest.raises(IntegrityError, match="model t/1"):
        plinth.load_model("t")


def test_tampered_cache_is_refused_and_refetched(
    tracking: Backend, iris: tuple[pd.DataFrame, pd.Series, LogisticRegression]
) -> None:
    x, _y, clf = iris
    mv = plinth.register_model("c", clf, input_example=x[:5])
    plinth.load_model("c")
    cached = Path(tracking.settings.home) / "cache" / "models" / mv.digest / "model.pkl"
    cached.write_bytes(b"not the model")
    package.VERIFIED.clear()  # the bytes this process verified are kept; a new process reads the file
    with pytest.raises(IntegrityError, match="modified"):
        plinth.load_model("c")
    assert plinth.load_model("c").version == 1  # a verified copy is fetched again


def test_alias_rules_and_audit(
    tracking: Backend, iris: tuple[pd.DataFrame, pd.Series, LogisticRegression], actor: str
) -> None:
    x, _y, clf = iris
    for _ in range(2):
        plinth.register_model("a", clf, input_example=x[:5])
    with pytest.raises(NotFound, match="no version 7"):
        plinth.set_alias("a", "champion", version=7)
    with pytest.raises(InvalidInput, match="reserved"):
        plinth.set_alias("a", "latest", version=1)
    with pytest.raises(NotFound, match="No model named"):
        plinth.set_alias("nope", "champion", version=1)
    assert plinth.set_alias("a", "champion", version=1) is None
    assert plinth.set_alias("a", "champion", version=2) == 1
    plinth.set_model_description("a", "iris classifier")
    actions = [(e.action, e.before, e.after) for e in tracking.store.audit_events(entity_id="a")]
    assert ("model.alias.set", None, "champion=1") in actions
    assert ("model.alias.set", "champion=1", "champion=2") in actions
    assert ("model.description.set", "", "iris classifier") in actions
    assert all(e.actor == actor for e in tracking.store.audit_events(entity_id="a"))


@pytest.mark.parametrize("ref", ["", "a//b", "a/b/", "a/0", "a/./b", "a@", "a@1bad", "a b@x/"])
def test_bad_references(tracking: Backend, ref: str) -> None:
    with pytest.raises(InvalidInput):
        plinth.load_model(ref)


def test_unregistrable_object(tracking: Backend) -> None:
    with pytest.raises(InvalidInput, match="no predict method"):
        plinth.register_model("x", object())
    with pytest.raises(InvalidInput, match="may not contain '@'"):
        plinth.register_model("a@b", Doubler())


def test_environment_mismatch_warns_once(
    tracking: Backend,
    iris: tuple[pd.DataFrame, pd.Series, LogisticRegression],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, _y, clf = iris
    plinth.register_model("w", clf, input_example=x[:5])
    real = plinth.registry.environment.installed_version
    fake = lambda name: "0.1.0" if name == "scikit-learn" else real(name)  # noqa: E731
    monkeypatch.setattr(plinth.registry.environment, "installed_version", fake)
    with pytest.warns(PlinthWarning, match="scikit-learn"):
        plinth.load_model("w")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plinth.load_model("w")  # once per model and library


@pytest.mark.slow
def test_concurrent_registration_gets_distinct_versions(settings: Settings) -> None:
    env = {
        **os.environ,
        "PLINTH_HOME": settings.home,
        "PLINTH_STORE": settings.resolved_store_url,
        "PLINTH_TOKEN": settings.token or "",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(RESOURCES / "register_many.py"), "5"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    versions = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        versions += [int(v) for v in out.split()]
    assert sorted(versions) == list(range(1, 21))
    plinth.configure(settings)
    assert [v.version for v in plinth.list_model_versions("shared")] == list(range(1, 21))


def test_input_example_is_kept_with_the_model(
    tracking: Backend, iris: tuple[pd.DataFrame, pd.Series, LogisticRegression]
) -> None:
    x, _y, clf = iris
    plinth.register_model("ex", clf, input_example=x[:3])
    example = plinth.load_model("ex").input_example
    pd.testing.assert_frame_equal(example, x[:3].reset_index(drop=True))
    plinth.register_model("arr", Doubler(), input_example=np.ones((2, 3), dtype=np.float32))
    assert plinth.load_model("arr").input_example.dtype == np.float32
    plinth.register_model("none", Doubler())
    assert plinth.load_model("none").input_example is None
