"""MLflow model directories: an `MLmodel` file and its flavor's files, as MLflow saves them.

scikit-learn, XGBoost and LightGBM models load without MLflow, from the bytes the package
checks: pickle and cloudpickle files (skops files when skops is installed), XGBoost's
ubj/json/xgb files and LightGBM's text files. Every other MLflow flavor loads through
`mlflow.pyfunc.load_model` when MLflow is importable; without it, loading raises ModelFailed
naming the flavor found and what to install.

Paths in `MLmodel` are relative to its folder, which may be the package's root or a subfolder
(the shallowest `MLmodel` is the model). A flavor configuration naming a `code` folder puts it
at the front of `sys.path`, as MLflow does, after checking its files: pickled models may refer
to classes defined there. Like plinth's own pickle-based flavors, loading runs code the package
holds; the store is the trust root.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import posixpath
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no types

from plinth.core.errors import InvalidInput, ModelFailed
from plinth.registry.flavors.base import Flavor
from plinth.registry.flavors.xgboost import XGBoostFlavor

if TYPE_CHECKING:
    from plinth.registry.package import Package

MLMODEL = "MLmodel"
PYFUNC = "python_function"
NATIVE = ("xgboost", "lightgbm", "sklearn")  # the MLflow flavors plinth loads itself, in this order
XGB_BOOSTERS = ("xgboost.core.Booster", "xgboost.Booster")
LGB_BOOSTER = "lightgbm.basic.Booster"
# what mlflow.sklearn's pyfunc may answer `predict` with (python_function's `predict_fn`)
SKLEARN_PREDICT_FNS = ("predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba")
_DOTTED = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)+")

# MLflow flavor -> what `pip install` needs besides mlflow to load it
FLAVOR_LIBRARIES: dict[str, str] = {
    "catboost": "catboost",
    "h2o": "h2o",
    "keras": "keras",
    "lightgbm": "lightgbm",
    "onnx": "onnx onnxruntime",
    "paddle": "paddlepaddle",
    "pmdarima": "pmdarima",
    "prophet": "prophet",
    "pytorch": "torch",
    "sentence_transformers": "sentence-transformers",
    "sklearn": "scikit-learn",
    "spacy": "spacy",
    "spark": "pyspark",
    "statsmodels": "statsmodels",
    "tensorflow": "tensorflow",
    "transformers": "transformers",
    "xgboost": "xgboost",
}


@dataclass(frozen=True)
class MlflowModel:
    """The MLflow model a package holds: where its `MLmodel` lies and its flavors' configurations."""

    package: Package
    folder: str  # "" when `MLmodel` is at the package's root
    flavors: dict[str, dict[str, Any]]

    @property
    def flavor_names(self) -> str:
        """The flavors `MLmodel` declares, python_function last (for messages)."""
        named = sorted(f for f in self.flavors if f != PYFUNC)
        return ", ".join(named + ([PYFUNC] if PYFUNC in self.flavors else []))

    def text(self, flavor: str, key: str, default: str | None = None) -> str:
        """`flavors[flavor][key]` as text (or `default` when absent); ModelFailed when it is not text."""
        value = self.flavors[flavor].get(key)
        if value is None and default is not None:
            return default
        if not isinstance(value, str):
            raise self.failed(
                f"its MLmodel gives {value!r:.100} as {flavor}.{key}, where a text was expected"
            )
        return value

    def join(self, rel: str) -> str:
        """The package path of `rel`, a path relative to the `MLmodel` folder ("" for the folder)."""
        path = posixpath.normpath(posixpath.join(self.folder, rel))
        if rel.startswith("/") or path == ".." or path.startswith("../"):
            raise self.failed(f"its MLmodel names {rel[:200]!r}, a path outside the model's folder")
        return "" if path == "." else path

    def file(self, rel: str) -> str:
        """The package path of the file `rel` (relative to the `MLmodel` folder); ModelFailed when absent."""
        path = self.join(rel)
        if not self.package.has(path):
            raise self.failed(f"its MLmodel names the file {rel[:200]!r}, which the package does not hold")
        return path

    def read(self, flavor: str, key: str) -> bytes:
        """The checked bytes of the file `flavors[flavor][key]` names."""
        return self.package.read(self.file(self.text(flavor, key)))

    def under(self, rel: str) -> list[str]:
        """Package paths of the files under the folder `rel` (relative to the `MLmodel` folder)."""
        base = self.join(rel)
        prefix = f"{base}/" if base else ""
        return [item["path"] for item in self.package.manifest["files"] if item["path"].startswith(prefix)]

    def local_folder(self, rel: str) -> str:
        """Where the folder `rel` (relative to the `MLmodel` folder) lies in the package's local copy."""
        base = self.join(rel)
        return self.package.local_path(base) if base else self.package.folder

    def failed(
        self, what: str, fix: str = "register the model again from a directory MLflow saved"
    ) -> ModelFailed:
        """ModelFailed naming the model and its flavors, what was wrong, and `fix`."""
        return ModelFailed(
            f"MLflow model {self.package.ref} ({self.flavor_names}) cannot be loaded: {what}; {fix}."
        )


class MlflowFlavor(Flavor):
    """A directory MLflow saved (`mlflow.<flavor>.save_model`, `log_model`), registered as it is.

    `predict` answers what MLflow's pyfunc answers: a scikit-learn model saved with
    `pyfunc_predict_fn="predict_proba"` predicts probabilities, as MLflow serves it.
    """

    name = "mlflow"
    libraries = ()
    _predict_fn = "predict"

    @classmethod
    def detect(cls, model: Any) -> bool:
        return False  # MLflow models are files, never a Python object handed to register_model

    def save(self, model: Any, path: str, **options: Any) -> dict[str, Any]:
        raise InvalidInput(
            "The mlflow flavor holds models MLflow saved: they arrive through MLflow's API "
            "(`mlflow.register_model` against `plinth server`) or `plinth import mlflow`. "
            "Register a Python model with its own flavor (leave flavor= out to detect it)."
        )

    def load(self, package: Package) -> Any:
        model = find_model(package)
        for flavor in NATIVE:
            if flavor in model.flavors:
                _add_code(model, flavor)
                if flavor == "sklearn":
                    self._predict_fn = _sklearn_predict_fn(model)
                return LOADERS[flavor](model)
        return _load_pyfunc(model)

    def predict(self, raw: Any, data: Any) -> Any:
        if self._predict_fn != "predict":
            return getattr(raw, self._predict_fn)(data)
        xgb = sys.modules.get("xgboost")
        if xgb is not None and isinstance(raw, xgb.Booster):
            return XGBoostFlavor().predict(raw, data)
        return super().predict(raw, data)


def find_model(package: Package) -> MlflowModel:
    """The MLflow model in `package`, its `MLmodel` read with `yaml.safe_load`.

    Raises:
        ModelFailed: no `MLmodel`, two at the same depth, or one that is not MLflow's YAML.
    """
    path = mlmodel_path(package)
    try:
        doc = yaml.safe_load(package.read(path))
    except yaml.YAMLError as exc:
        raise ModelFailed(f"The {path} file of model {package.ref} is not YAML ({exc}).") from exc
    flavors = doc.get("flavors") if isinstance(doc, dict) else None
    if not (isinstance(flavors, dict) and flavors and all(isinstance(c, dict) for c in flavors.values())):
        raise ModelFailed(
            f"The {path} file of model {package.ref} declares no flavors as MLflow writes them."
        )
    return MlflowModel(package, posixpath.dirname(path), {str(k): v for k, v in flavors.items()})


def shallowest_mlmodels(paths: Iterable[str]) -> list[str]:
    """The `MLmodel` files among `paths` nearest the package's root, sorted (none: not an MLflow
    model; several: several models side by side)."""
    found = [path for path in paths if posixpath.basename(path) == MLMODEL]
    if not found:
        return []
    depth = min(path.count("/") for path in found)
    return sorted(path for path in found if path.count("/") == depth)


def mlmodel_path(package: Package) -> str:
    """The `MLmodel` the manifest's meta names, else the package's shallowest one.

    Raises:
        ModelFailed: the package holds no `MLmodel`, or several at the shallowest depth.
    """
    named = package.meta.get("mlmodel")
    if isinstance(named, str) and posixpath.basename(named) == MLMODEL and package.has(named):
        return named
    shallowest = shallowest_mlmodels(f["path"] for f in package.manifest["files"])
    if not shallowest:
        raise ModelFailed(
            f"Model {package.ref} is registered as an MLflow model but holds no {MLMODEL} file; "
            f"register the folder MLflow saved (the one holding {MLMODEL})."
        )
    if len(shallowest) > 1:
        raise ModelFailed(
            f"Model {package.ref} holds several MLflow models ({', '.join(shallowest[:5])}); "
            "register each model's own folder as its own version."
        )
    return shallowest[0]


def _add_code(model: MlflowModel, flavor: str) -> None:
    """Put the flavor's `code` folder at the front of `sys.path`, as MLflow does, its files checked first."""
    if not model.flavors[flavor].get("code"):
        return
    rel = model.text(flavor, "code")
    files = model.under(rel)
    for path in files:
        model.package.path(path)
    folder = model.local_folder(rel)
    if files and folder not in sys.path:
        sys.path.insert(0, folder)


def _sklearn_predict_fn(model: MlflowModel) -> str:
    """The method MLflow's pyfunc answers `predict` with for a scikit-learn model."""
    if PYFUNC not in model.flavors:
        return "predict"
    name = model.text(PYFUNC, "predict_fn", "predict")
    if name not in SKLEARN_PREDICT_FNS:
        raise model.failed(f"its predict_fn {name!r:.100} is none of {', '.join(SKLEARN_PREDICT_FNS)}")
    return name


def _load_sklearn(model: MlflowModel) -> Any:
    """mlflow.sklearn: `pickled_model` in its `serialization_format` (pickle when not given, as in MLflow)."""
    data = model.read("sklearn", "pickled_model")
    return _deserialize(model, "sklearn", data, model.text("sklearn", "serialization_format", "pickle"))


def _load_xgboost(model: MlflowModel) -> Any:
    """mlflow.xgboost: `data` (ubj, json or xgb) loaded into `model_class`."""
    xgb = _library(model, "xgboost")
    dotted = model.text("xgboost", "model_class", XGB_BOOSTERS[0])
    cls = xgb.Booster if dotted in XGB_BOOSTERS else _xgboost_class(model, dotted, xgb)
    data = bytearray(model.read("xgboost", "data"))
    try:
        built = cls()
        built.load_model(data)
    except Exception as exc:  # XGBoostError, or anything a subclass's own code raises
        raise model.failed(
            f"XGBoost refused its file ({type(exc).__name__}: {str(exc)[:300]})",
            "install the XGBoost version MLflow recorded in MLmodel (xgb_version)",
        ) from exc
    return built


def _load_lightgbm(model: MlflowModel) -> Any:
    """mlflow.lightgbm: a Booster's text file, or a scikit-learn-API model serialized as sklearn's."""
    lgb = _library(model, "lightgbm")
    data = model.read("lightgbm", "data")
    if model.text("lightgbm", "model_class", LGB_BOOSTER) != LGB_BOOSTER:
        return _deserialize(
            model, "lightgbm", data, model.text("lightgbm", "serialization_format", "cloudpickle")
        )
    try:
        return lgb.Booster(model_str=data.decode())
    except (UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
        raise model.failed(
            f"LightGBM refused its file ({exc})", "install the LightGBM version MLflow recorded (lgb_version)"
        ) from exc


LOADERS = {"sklearn": _load_sklearn, "xgboost": _load_xgboost, "lightgbm": _load_lightgbm}


def _deserialize(model: MlflowModel, flavor: str, data: bytes, form: str) -> Any:
    """A scikit-learn-API object from pickle, cloudpickle or skops bytes (runs code from the package)."""
    _library(model, flavor)
    try:
        if form in ("pickle", "cloudpickle"):
            import cloudpickle  # noqa: F401 - registers what cloudpickle'd objects need

            return pickle.loads(data)
        if form == "skops":
            return _skops(model).loads(data, trusted=model.flavors[flavor].get("skops_trusted_types"))
    except (ImportError, AttributeError) as exc:  # a class the model was pickled with is not importable
        raise model.failed(
            f"{type(exc).__name__}: {str(exc)[:300]}",
            "install the packages it was saved with (its requirements.txt lists them)",
        ) from exc
    except Exception as exc:
        raise model.failed(
            f"its {form} file could not be read ({type(exc).__name__}: {str(exc)[:300]})"
        ) from exc
    raise model.failed(f"its serialization_format {form!r:.50} is none of pickle, cloudpickle, skops")


def _skops(model: MlflowModel) -> Any:
    """`skops.io`; ModelFailed when skops is not installed."""
    try:
        return importlib.import_module("skops.io")
    except ImportError as exc:
        raise model.failed(
            "MLflow saved it in the skops format, and skops is not installed", "pip install skops"
        ) from exc


def _library(model: MlflowModel, flavor: str) -> Any:
    """The flavor's library, imported; ModelFailed naming what to install when it is missing."""
    try:
        return importlib.import_module(flavor)
    except ImportError as exc:
        raise model.failed(f"{flavor} is not installed", f"pip install {FLAVOR_LIBRARIES[flavor]}") from exc


def _xgboost_class(model: MlflowModel, dotted: str, xgb: Any) -> type:
    """The `model_class` MLmodel names, checked to be XGBoost's before anything is built from it."""
    if not _DOTTED.fullmatch(dotted):
        raise model.failed(
            f"its MLmodel names {dotted[:200]!r} as the model class, which is not a class path"
        )
    module, _, name = dotted.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except Exception as exc:  # ImportError, AttributeError, or whatever the module raises as it runs
        raise model.failed(
            f"its model class {dotted!r} cannot be imported ({type(exc).__name__})",
            "install the package that defines it",
        ) from exc
    if not (isinstance(found, type) and issubclass(found, (xgb.XGBModel, xgb.Booster))):
        raise model.failed(f"its MLmodel names {dotted!r} as the model class, which is not XGBoost's")
    return found


def _load_pyfunc(model: MlflowModel) -> Any:
    """Any other flavor, through `mlflow.pyfunc.load_model` on the checked files of the model folder."""
    if PYFUNC not in model.flavors:
        raise model.failed("it has no python_function flavor, the one MLflow loads every model through")
    if importlib.util.find_spec("mlflow") is None:
        libraries = " ".join(FLAVOR_LIBRARIES.get(f, "") for f in sorted(model.flavors)).split()
        raise model.failed(
            "plinth loads only scikit-learn, XGBoost and LightGBM models without MLflow, and MLflow "
            "is not installed here",
            f"pip install {' '.join(['mlflow', *libraries])}",
        )
    try:
        pyfunc = importlib.import_module("mlflow.pyfunc")
    except ImportError as exc:
        raise model.failed(f"MLflow is installed but cannot be imported ({exc})", "reinstall mlflow") from exc
    for path in model.under(""):
        model.package.path(path)  # checked now: MLflow opens the files itself
    try:
        return pyfunc.load_model(model.local_folder(""))
    except Exception as exc:  # MlflowException, or whatever the flavor's loader raises
        raise model.failed(
            f"mlflow.pyfunc.load_model raised {type(exc).__name__}: {str(exc)[:500]}",
            "install the packages it was saved with (its requirements.txt lists them)",
        ) from exc
