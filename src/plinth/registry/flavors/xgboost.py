"""XGBoost boosters and scikit-learn-API estimators, saved in XGBoost's native UBJSON format."""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import TYPE_CHECKING, Any

from plinth.core.errors import IntegrityError, InvalidInput
from plinth.registry.flavors.base import Flavor

if TYPE_CHECKING:
    from plinth.registry.package import Package

MODEL_FILE = "model.ubj"
BOOSTER = "Booster"
_DOTTED = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)+")


class XGBoostFlavor(Flavor):
    """`xgboost.Booster` and `XGBModel` subclasses (XGBClassifier, XGBRegressor, XGBRanker...).

    The model is written with `save_model` as UBJSON; `meta["class"]` is "Booster" for a raw
    booster or the estimator's class path, and loading rebuilds that class with `load_model`.
    """

    name = "xgboost"
    libraries = ("xgboost",)

    @classmethod
    def detect(cls, model: Any) -> bool:
        xgb = sys.modules.get("xgboost")
        return xgb is not None and isinstance(model, (xgb.Booster, xgb.XGBModel))

    def save(self, model: Any, path: str, **options: Any) -> dict[str, Any]:
        import xgboost as xgb

        _refuse_options(options)
        if not isinstance(model, (xgb.Booster, xgb.XGBModel)):
            raise InvalidInput(
                f"The xgboost flavor saves an xgboost.Booster or XGBModel, got {type(model).__name__}; "
                "pass one of those or choose another flavor."
            )
        try:
            model.save_model(os.path.join(path, MODEL_FILE))
        except (xgb.core.XGBoostError, ValueError, TypeError) as exc:  # unfitted estimators
            raise InvalidInput(f"This {type(model).__name__} cannot be saved ({exc}); fit it first.") from exc
        return {"file": MODEL_FILE, "format": "ubjson", "class": _class_name(model, xgb)}

    def load(self, package: Package) -> Any:
        import xgboost as xgb

        name = package.field("class")
        cls = xgb.Booster if name == BOOSTER else _model_class(package, name, xgb)
        data = bytearray(package.read(package.field("file")))
        try:
            model = cls()
            model.load_model(data)
        except Exception as exc:  # XGBoostError, or anything from a subclass's own code
            raise InvalidInput(
                f"Model {package.ref} could not be loaded into {name} ({type(exc).__name__}: "
                f"{str(exc)[:500]}); install the XGBoost version it was saved with (its environment "
                "records it), or register the model again."
            ) from exc
        return model

    def predict(self, raw: Any, data: Any) -> Any:
        import xgboost as xgb

        if not isinstance(raw, xgb.Booster):
            return raw.predict(data)
        return raw.predict(_dmatrix(raw, data, xgb), validate_features=raw.feature_names is not None)


def _refuse_options(options: dict[str, Any]) -> None:
    """InvalidInput when save options are given: this flavor takes none."""
    if options:
        raise InvalidInput(f"The xgboost flavor takes no save options; remove {', '.join(sorted(options))}.")


def _class_name(model: Any, xgb: Any) -> str:
    """'Booster' for a raw booster, else the estimator's 'module.QualName'."""
    if isinstance(model, xgb.Booster):
        return BOOSTER
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def _model_class(package: Package, dotted: str, xgb: Any) -> type:
    """The estimator class the manifest names, checked to be an XGBModel or Booster subclass.

    Nothing is called before the check: a forged manifest could otherwise name any importable
    callable. Importing the named module runs its code, as importing the class's module would.

    Raises:
        IntegrityError: the name is not a dotted class path, or the class is not XGBoost's.
        InvalidInput: the class cannot be imported here.
    """
    if not _DOTTED.fullmatch(dotted):
        raise _not_xgboost(package, dotted, "is not a 'package.module.Class' path")
    found = _import_class(dotted)
    if not (isinstance(found, type) and issubclass(found, (xgb.XGBModel, xgb.Booster))):
        raise _not_xgboost(package, dotted, "is not an xgboost.XGBModel or xgboost.Booster subclass")
    return found


def _not_xgboost(package: Package, dotted: str, what: str) -> IntegrityError:
    return IntegrityError(
        f"The manifest of model {package.ref} names {dotted[:200]!r} as its model class (meta.class), "
        f"which {what}; nothing was built from it. The store was edited by hand: restore it from a "
        "backup, or register the model again."
    )


def _import_class(dotted: str) -> Any:
    """The object at 'package.module.Class'; InvalidInput when it cannot be imported."""
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except Exception as exc:  # ImportError, AttributeError, or whatever the module raises as it runs
        raise InvalidInput(
            f"Cannot import the model class {dotted!r} this XGBoost model was saved from "
            f"({type(exc).__name__}: {str(exc)[:200]}); install the package that defines it."
        ) from exc


def _dmatrix(booster: Any, data: Any, xgb: Any) -> Any:
    """`data` as a DMatrix; DataFrames keep their column names, arrays get the booster's."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return xgb.DMatrix(data, enable_categorical=True)
    array = np.asarray(data)
    names = booster.feature_names
    if names is not None and (array.ndim != 2 or array.shape[1] != len(names)):
        names = None  # let the booster report the shape mismatch
    return xgb.DMatrix(array, feature_names=names)
