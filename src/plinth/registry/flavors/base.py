"""The `Flavor` interface and the table of known flavors."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from plinth.core.errors import InvalidInput

if TYPE_CHECKING:
    from plinth.registry.package import Package

# name -> "module:Class"; flavors are imported only when used, so heavy libraries stay unloaded.
FLAVORS: dict[str, str] = {
    "xgboost": "plinth.registry.flavors.xgboost:XGBoostFlavor",
    "lightgbm": "plinth.registry.flavors.lightgbm:LightGBMFlavor",
    "onnx": "plinth.registry.flavors.onnx:OnnxFlavor",
    "pytorch": "plinth.registry.flavors.torch:TorchFlavor",
    "sklearn": "plinth.registry.flavors.sklearn:SklearnFlavor",
    "python": "plinth.registry.flavors.pyfunc:PythonFlavor",
    "mlflow": "plinth.registry.flavors.mlflow:MlflowFlavor",  # MLflow's files; never detected
}

# Detection order: the most specific first; "python" accepts anything with predict or a callable.
DETECTION_ORDER = ("xgboost", "lightgbm", "onnx", "pytorch", "sklearn", "python")


class Flavor(ABC):
    """How one kind of model is saved, loaded and asked for predictions.

    A flavor writes files into a folder (the package); plinth adds `plinth-model.json` and
    stores every file content-addressed. `meta` is the JSON-safe dict `save` returned.

    `load` takes what it deserializes from `package.read` (bytes checked against the manifest);
    `package.path` (checked when called) is only for formats whose loading runs no Python code,
    since the file could change between the check and the library opening it.
    """

    name: str = ""
    libraries: tuple[str, ...] = ()  # distributions whose versions the environment records

    @classmethod
    @abstractmethod
    def detect(cls, model: Any) -> bool:
        """True when this flavor handles `model`; must not import libraries the model does not use."""

    @abstractmethod
    def save(self, model: Any, path: str, **options: Any) -> dict[str, Any]:
        """Write `model` into the empty folder `path`; return metadata needed to load it."""

    @abstractmethod
    def load(self, package: Package) -> Any:
        """Load the native model object from a package (its `meta` is what `save` returned)."""

    def predict(self, raw: Any, data: Any) -> Any:
        """Predictions for validated input (a DataFrame or an ndarray)."""
        if callable(getattr(raw, "predict", None)):
            return raw.predict(data)
        return raw(data)

    def has_proba(self, raw: Any) -> bool:
        """True when the model can give class probabilities."""
        return callable(getattr(raw, "predict_proba", None))

    def predict_proba(self, raw: Any, data: Any) -> Any:
        """Class probabilities for validated input."""
        return raw.predict_proba(data)


def module_of(model: Any) -> str:
    """Top-level package of the model's class (e.g. 'sklearn' for a RandomForestClassifier)."""
    return type(model).__module__.split(".", 1)[0]


def flavor_class(name: str) -> type[Flavor]:
    """The flavor class registered under `name`; InvalidInput for an unknown name."""
    target = FLAVORS.get(name)
    if target is None:
        raise InvalidInput(f"Unknown flavor {name!r}; use one of {', '.join(sorted(FLAVORS))}.")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def detect_flavor(model: Any) -> Flavor:
    """The first flavor that accepts `model`; InvalidInput when none does."""
    for name in DETECTION_ORDER:
        cls = flavor_class(name)
        if cls.detect(model):
            return cls()
    raise InvalidInput(
        f"plinth cannot register a {type(model).__name__}: it has no predict method and is not callable. "
        "Wrap it in an object with predict(), or pass flavor=."
    )
