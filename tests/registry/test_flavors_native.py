"""The native flavors: XGBoost, LightGBM, ONNX and PyTorch saved, loaded and predicting alike."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression

from plinth.core.errors import IntegrityError, InvalidInput
from plinth.registry.flavors.base import Flavor, detect_flavor
from plinth.registry.package import Package

RESOURCES = Path(__file__).parent.parent / "resources"


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    return x, y


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_diabetes(return_X_y=True)
    return x, y


@pytest.fixture(scope="module")
def sklearn_model(iris: tuple[pd.DataFrame, pd.Series]) -> LogisticRegression:
    x, y = iris
    return LogisticRegression(max_iter=1000).fit(x, y)


def roundtrip(flavor: Flavor, model: Any, tmp_path: Path, **options: Any) -> tuple[Any, dict[str, Any]]:
    """Save `model` into an empty folder, check the meta is JSON-safe, load it back."""
    folder = tmp_path / "pkg"
    folder.mkdir(parents=True)
    meta = flavor.save(model, str(folder), **options)
    meta = json.loads(json.dumps(meta))
    files = [
        {"path": f.relative_to(folder).as_posix(), "digest": hashlib.sha256(f.read_bytes()).hexdigest()}
        for f in folder.rglob("*")
        if f.is_file()
    ]
    return flavor.load(Package(str(folder), {"meta": meta, "files": files}, "native/1")), meta


def files(tmp_path: Path) -> set[str]:
    return set(os.listdir(tmp_path / "pkg"))


# --- XGBoost ---------------------------------------------------------------------------------------


def test_xgboost_classifier_roundtrip(
    tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series], sklearn_model: LogisticRegression
) -> None:
    xgb = pytest.importorskip("xgboost")
    from plinth.registry.flavors.xgboost import XGBoostFlavor

    x, y = iris
    model = xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(x, y)
    assert XGBoostFlavor.detect(model) and not XGBoostFlavor.detect(sklearn_model)
    assert isinstance(detect_flavor(model), XGBoostFlavor)
    flavor = XGBoostFlavor()
    loaded, meta = roundtrip(flavor, model, tmp_path)
    assert files(tmp_path) == {"model.ubj"}
    assert meta["class"] == "xgboost.sklearn.XGBClassifier" and type(loaded) is xgb.XGBClassifier
    np.testing.assert_array_equal(flavor.predict(loaded, x), model.predict(x))
    assert flavor.has_proba(loaded)
    np.testing.assert_allclose(flavor.predict_proba(loaded, x), model.predict_proba(x))


def test_xgboost_regressor_and_booster(tmp_path: Path, diabetes: tuple[np.ndarray, np.ndarray]) -> None:
    xgb = pytest.importorskip("xgboost")
    from plinth.registry.flavors.xgboost import XGBoostFlavor

    x, y = diabetes
    regressor = xgb.XGBRegressor(n_estimators=20).fit(x, y)
    flavor = XGBoostFlavor()
    loaded, _ = roundtrip(flavor, regressor, tmp_path / "reg")
    np.testing.assert_allclose(flavor.predict(loaded, x), regressor.predict(x))
    assert not flavor.has_proba(loaded)

    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    booster = xgb.train({"max_depth": 3}, xgb.DMatrix(frame, label=y), num_boost_round=10)
    assert XGBoostFlavor.detect(booster)
    loaded, meta = roundtrip(flavor, booster, tmp_path / "booster")
    assert meta["class"] == "Booster" and isinstance(loaded, xgb.Booster)
    expected = booster.predict(xgb.DMatrix(frame))
    np.testing.assert_allclose(flavor.predict(loaded, frame), expected)  # names kept from the frame
    np.testing.assert_allclose(flavor.predict(loaded, x), expected)  # an array gets the booster's names
    assert not flavor.has_proba(loaded)


def test_xgboost_refuses_an_unfitted_model(tmp_path: Path) -> None:
    xgb = pytest.importorskip("xgboost")
    from plinth.registry.flavors.xgboost import XGBoostFlavor

    with pytest.raises(InvalidInput, match="fit it first"):
        XGBoostFlavor().save(xgb.XGBClassifier(), str(tmp_path))


# --- LightGBM --------------------------------------------------------------------------------------


def test_lightgbm_classifier_roundtrip(
    tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series], sklearn_model: LogisticRegression
) -> None:
    lgb = pytest.importorskip("lightgbm")
    from plinth.registry.flavors.lightgbm import LightGBMFlavor

    x, y = iris
    model = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(x, y)
    assert LightGBMFlavor.detect(model) and not LightGBMFlavor.detect(sklearn_model)
    assert isinstance(detect_flavor(model), LightGBMFlavor)
    flavor = LightGBMFlavor()
    loaded, meta = roundtrip(flavor, model, tmp_path)
    assert files(tmp_path) == {"model.txt", "wrapper.pkl"} and not meta["booster_in_wrapper"]
    assert type(loaded) is lgb.LGBMClassifier and model.booster_ is not None  # the original keeps its booster
    np.testing.assert_array_equal(flavor.predict(loaded, x), model.predict(x))
    assert flavor.has_proba(loaded)
    np.testing.assert_allclose(flavor.predict_proba(loaded, x), model.predict_proba(x))


def test_lightgbm_regressor_and_booster(tmp_path: Path, diabetes: tuple[np.ndarray, np.ndarray]) -> None:
    lgb = pytest.importorskip("lightgbm")
    from plinth.registry.flavors.lightgbm import LightGBMFlavor

    x, y = diabetes
    flavor = LightGBMFlavor()
    regressor = lgb.LGBMRegressor(n_estimators=20, verbose=-1).fit(x, y)
    loaded, _ = roundtrip(flavor, regressor, tmp_path / "reg")
    np.testing.assert_allclose(flavor.predict(loaded, x), regressor.predict(x))
    assert not flavor.has_proba(loaded)

    booster = lgb.train({"verbose": -1}, lgb.Dataset(x, label=y), num_boost_round=10)
    assert LightGBMFlavor.detect(booster)
    loaded, meta = roundtrip(flavor, booster, tmp_path / "booster")
    assert files(tmp_path / "booster") == {"model.txt"} and "wrapper" not in meta
    assert isinstance(loaded, lgb.Booster)
    np.testing.assert_allclose(flavor.predict(loaded, x), booster.predict(x))
    assert not flavor.has_proba(loaded)


def test_lightgbm_refuses_an_unfitted_wrapper(tmp_path: Path) -> None:
    lgb = pytest.importorskip("lightgbm")
    from plinth.registry.flavors.lightgbm import LightGBMFlavor

    with pytest.raises(InvalidInput, match="not fitted"):
        LightGBMFlavor().save(lgb.LGBMRegressor(), str(tmp_path))


# --- ONNX ------------------------------------------------------------------------------------------


def to_onnx(model: Any, features: int, **options: Any) -> Any:
    """Convert a scikit-learn model with skl2onnx (float32 input of `features` columns)."""
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    initial = [("input", FloatTensorType([None, features]))]
    return skl2onnx.convert_sklearn(model, initial_types=initial, **options)


@pytest.mark.parametrize("zipmap", [True, False])
def test_onnx_classifier_roundtrip(
    tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series], sklearn_model: LogisticRegression, zipmap: bool
) -> None:
    pytest.importorskip("onnxruntime")
    from plinth.registry.flavors.onnx import OnnxFlavor

    x, _ = iris
    options = {} if zipmap else {"options": {id(sklearn_model): {"zipmap": False}}}
    proto = to_onnx(sklearn_model, x.shape[1], **options)
    assert OnnxFlavor.detect(proto) and not OnnxFlavor.detect(sklearn_model)
    assert isinstance(detect_flavor(proto), OnnxFlavor)
    flavor = OnnxFlavor()
    session, meta = roundtrip(flavor, proto, tmp_path)
    assert files(tmp_path) == {"model.onnx"}
    assert meta["inputs"] == ["input"] and meta["outputs"][1] == (
        "output_probability" if zipmap else "probabilities"
    )
    assert type(session).__name__ == "InferenceSession"
    np.testing.assert_array_equal(flavor.predict(session, x), sklearn_model.predict(x))  # float64 -> float32
    assert flavor.has_proba(session)
    proba = flavor.predict_proba(session, x.to_numpy())
    assert proba.shape == (len(x), 3)
    np.testing.assert_allclose(proba, sklearn_model.predict_proba(x), rtol=1e-4, atol=1e-5)


def test_onnx_regressor_has_no_proba(tmp_path: Path, diabetes: tuple[np.ndarray, np.ndarray]) -> None:
    pytest.importorskip("onnxruntime")
    from sklearn.linear_model import LinearRegression

    from plinth.registry.flavors.onnx import OnnxFlavor

    x, y = diabetes
    model = LinearRegression().fit(x, y)
    flavor = OnnxFlavor()
    session, _ = roundtrip(flavor, to_onnx(model, x.shape[1]), tmp_path)
    np.testing.assert_allclose(flavor.predict(session, x).ravel(), model.predict(x), rtol=1e-4)
    assert not flavor.has_proba(session)
    with pytest.raises(InvalidInput, match="no probability output"):
        flavor.predict_proba(session, x)


def test_onnx_maps_frame_columns_to_inputs(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from plinth.registry.flavors.onnx import OnnxFlavor

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["total"])],
        "add",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in ("a", "b")],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [None, 1])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    flavor = OnnxFlavor()
    session, meta = roundtrip(flavor, proto, tmp_path)
    assert meta["inputs"] == ["a", "b"] and meta["opset"] == 17
    frame = pd.DataFrame({"b": [1, 2, 3], "a": [0.5, 0.25, 0.0]})  # int64 column, any order
    np.testing.assert_allclose(flavor.predict(session, frame), [[1.5], [2.25], [3.0]])
    with pytest.raises(InvalidInput, match="2 inputs"):
        flavor.predict(session, np.ones((3, 2)))
    with pytest.raises(InvalidInput, match="'b' is missing"):
        flavor.predict(session, frame[["a"]])


# --- PyTorch ---------------------------------------------------------------------------------------


@pytest.fixture
def torch_models(monkeypatch: pytest.MonkeyPatch) -> Any:
    """tests/resources/torch_models.py, importable by name as the state-dict fallback needs."""
    pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(RESOURCES))
    import torch_models

    return torch_models


def test_torch_scriptable_module_is_saved_as_torchscript(
    tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series], sklearn_model: LogisticRegression, torch_models: Any
) -> None:
    import torch

    from plinth.registry.flavors.torch import TorchFlavor

    x, _ = iris
    torch.manual_seed(0)
    model = torch_models.Mlp()
    assert TorchFlavor.detect(model) and not TorchFlavor.detect(sklearn_model)
    assert isinstance(detect_flavor(model), TorchFlavor)
    flavor = TorchFlavor()
    loaded, meta = roundtrip(flavor, model, tmp_path)
    assert files(tmp_path) == {"model.pt"}
    assert meta["format"] == "torchscript" and meta["input_dtype"] == "float32"
    assert isinstance(loaded, torch.jit.ScriptModule) and not loaded.training
    with torch.no_grad():
        expected = model(torch.tensor(x.to_numpy(), dtype=torch.float32)).numpy()
    np.testing.assert_allclose(flavor.predict(loaded, x), expected, rtol=1e-6)  # a float64 frame
    np.testing.assert_allclose(flavor.predict(loaded, x.to_numpy()), expected, rtol=1e-6)
    assert not flavor.has_proba(loaded)


def test_torch_unscriptable_module_falls_back_to_state_dict(
    tmp_path: Path, diabetes: tuple[np.ndarray, np.ndarray], torch_models: Any
) -> None:
    import torch

    from plinth.registry.flavors.torch import TorchFlavor

    x, _ = diabetes
    torch.manual_seed(0)
    model = torch_models.Unscriptable(inputs=x.shape[1], hidden=6).train()
    flavor = TorchFlavor()
    loaded, meta = roundtrip(flavor, model, tmp_path, init_kwargs={"inputs": x.shape[1], "hidden": 6})
    assert files(tmp_path) == {"state_dict.pt"}
    assert meta["format"] == "state_dict" and meta["class"] == "torch_models:Unscriptable"
    assert meta["init_kwargs"] == {"inputs": 10, "hidden": 6}
    assert type(loaded) is torch_models.Unscriptable and not loaded.training
    with torch.no_grad():
        expected = model(torch.tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(TorchFlavor().predict(loaded, x), expected, rtol=1e-6)


def test_torch_fallback_needs_an_importable_class_and_its_arguments(
    tmp_path: Path, torch_models: Any
) -> None:
    from torch import nn

    from plinth.registry.flavors.torch import TorchFlavor

    class Local(torch_models.Unscriptable):
        pass

    flavor = TorchFlavor()
    with pytest.raises(InvalidInput, match="importable module"):
        flavor.save(Local(inputs=3), str(tmp_path))
    with pytest.raises(InvalidInput, match="init_kwargs"):
        flavor.save(torch_models.Unscriptable(inputs=3), str(tmp_path))  # `inputs` is required
    with pytest.raises(InvalidInput, match="JSON-safe"):
        flavor.save(torch_models.Unscriptable(inputs=3), str(tmp_path), init_kwargs={"inputs": nn.ReLU()})
    with pytest.raises(InvalidInput, match="Unknown pytorch save option"):
        flavor.save(torch_models.Mlp(), str(tmp_path), init_kwarg={})
    with pytest.raises(InvalidInput, match="not a torch dtype"):
        flavor.save(torch_models.Mlp(), str(tmp_path), input_dtype="float31")


@pytest.mark.parametrize(
    ("meta", "error", "needle"),
    [
        (
            {"init_kwargs": {}},
            InvalidInput,
            r"could not be built: torch_models:Unscriptable\(\*\*\{\}\) raised",
        ),
        ({"init_kwargs": {"inputs": 3}}, InvalidInput, "do not fit torch_models:Unscriptable"),
        ({"init_kwargs": [10]}, IntegrityError, "meta.init_kwargs, where a dict was expected"),
        ({"class": "torch_models:Nowhere"}, InvalidInput, "Cannot import the module class"),
        ({"class": ":Unscriptable"}, IntegrityError, "is not a 'module:QualName' path"),
        ({"class": 7}, IntegrityError, "holds 7 as meta.class"),
        ({"file": None}, IntegrityError, "holds nothing as meta.file"),
    ],
)
def test_torch_state_dicts_that_do_not_build_are_plinth_errors(
    tmp_path: Path,
    diabetes: tuple[np.ndarray, np.ndarray],
    torch_models: Any,
    meta: dict[str, Any],
    error: type[Exception],
    needle: str,
) -> None:
    from plinth.registry.flavors.torch import TorchFlavor

    x, _ = diabetes
    flavor = TorchFlavor()
    _loaded, saved = roundtrip(
        flavor, torch_models.Unscriptable(inputs=x.shape[1]), tmp_path, init_kwargs={"inputs": 10}
    )
    package = Package(str(tmp_path / "pkg"), {"meta": {**saved, **meta}, "files": listing(tmp_path)}, "t/1")
    with pytest.raises(error, match=needle):
        flavor.load(package)


def listing(tmp_path: Path) -> list[dict[str, str]]:
    """The manifest's file list for what `roundtrip` saved."""
    folder = tmp_path / "pkg"
    return [{"path": f.name, "digest": hashlib.sha256(f.read_bytes()).hexdigest()} for f in folder.iterdir()]


def test_importing_the_torch_flavor_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from plinth.registry.flavors import lightgbm, onnx, torch, xgboost\n"
        "from sklearn.linear_model import LinearRegression\n"
        "assert not torch.TorchFlavor.detect(LinearRegression())\n"
        "assert not xgboost.XGBoostFlavor.detect(LinearRegression())\n"
        "assert not lightgbm.LightGBMFlavor.detect(LinearRegression())\n"
        "assert not onnx.OnnxFlavor.detect(LinearRegression())\n"
        "heavy = {'torch', 'xgboost', 'lightgbm', 'onnx', 'onnxruntime'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_detection_order_keeps_native_models_off_sklearn() -> None:
    """An LGBMClassifier is also a scikit-learn estimator; the native flavor must win."""
    lgb = pytest.importorskip("lightgbm")
    assert detect_flavor(lgb.LGBMRegressor()).name == "lightgbm"
