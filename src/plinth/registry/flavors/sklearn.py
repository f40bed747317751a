"""scikit-learn estimators (and pipelines), saved with pickle protocol 5."""

from __future__ import annotations

import os
import pickle
import sys
from typing import TYPE_CHECKING, Any

from plinth.registry.flavors.base import Flavor, module_of

if TYPE_CHECKING:
    from plinth.registry.package import Package


class SklearnFlavor(Flavor):
    """Any scikit-learn estimator, pipeline or subclass of `BaseEstimator` with `predict`."""

    name = "sklearn"
    libraries = ("scikit-learn",)

    @classmethod
    def detect(cls, model: Any) -> bool:
        if not callable(getattr(model, "predict", None)):
            return False
        if module_of(model) == "sklearn":
            return True
        base = sys.modules.get("sklearn.base")
        return base is not None and isinstance(model, base.BaseEstimator)

    def save(self, model: Any, path: str, **options: Any) -> dict[str, Any]:
        with open(os.path.join(path, "model.pkl"), "wb") as fh:
            pickle.dump(model, fh, protocol=5)
        return {"file": "model.pkl", "class": f"{type(model).__module__}.{type(model).__qualname__}"}

    def load(self, package: Package) -> Any:
        return pickle.loads(package.read(package.field("file")))  # runs code from the package
