"""LightGBM boosters and scikit-learn wrappers, saved in LightGBM's native text format.

A raw `lightgbm.Booster` is `model.txt` alone. A wrapper (LGBMClassifier, LGBMRegressor,
LGBMRanker...) is its booster's `model.txt` plus `wrapper.pkl`: the wrapper pickled without
its booster (classes, label encoder, parameters), which loading puts back together.
"""

from __future__ import annotations

import copy
import os
import pickle
import sys
from typing import TYPE_CHECKING, Any

from plinth.core.errors import InvalidInput
from plinth.registry.flavors.base import Flavor

if TYPE_CHECKING:
    from plinth.registry.package import Package

MODEL_FILE = "model.txt"
WRAPPER_FILE = "wrapper.pkl"


class LightGBMFlavor(Flavor):
    """`lightgbm.Booster` and `LGBMModel` subclasses."""

    name = "lightgbm"
    libraries = ("lightgbm",)

    @classmethod
    def detect(cls, model: Any) -> bool:
        lgb = sys.modules.get("lightgbm")
        return lgb is not None and isinstance(model, (lgb.Booster, lgb.LGBMModel))

    def save(self, model: Any, path: str, **options: Any) -> dict[str, Any]:
        import lightgbm as lgb

        if options:
            raise InvalidInput(
                f"The lightgbm flavor takes no save options; remove {', '.join(sorted(options))}."
            )
        cls = type(model)
        meta: dict[str, Any] = {
            "file": MODEL_FILE,
            "format": "text",
            "class": f"{cls.__module__}.{cls.__qualname__}",
        }
        if isinstance(model, lgb.Booster):
            model.save_model(os.path.join(path, MODEL_FILE))
            return meta
        if not isinstance(model, lgb.LGBMModel):
            raise InvalidInput(
                f"The lightgbm flavor saves a lightgbm.Booster or LGBMModel, got {cls.__name__}; "
                "pass one of those or choose another flavor."
            )
        booster = _fitted_booster(model, lgb)
        booster.save_model(os.path.join(path, MODEL_FILE))
        meta["wrapper"] = WRAPPER_FILE
        meta["booster_in_wrapper"] = _pickle_wrapper(model, os.path.join(path, WRAPPER_FILE))
        return meta

    def load(self, package: Package) -> Any:
        import lightgbm as lgb

        meta = package.meta
        booster = lgb.Booster(model_str=package.read(package.field("file")).decode())
        if "wrapper" not in meta:
            return booster
        wrapper = pickle.loads(package.read(package.field("wrapper")))  # runs code from the package
        if not meta.get("booster_in_wrapper"):
            wrapper._Booster = booster
        return wrapper


def _fitted_booster(model: Any, lgb: Any) -> Any:
    """The wrapper's booster; InvalidInput when the wrapper was never fitted."""
    try:
        return model.booster_
    except (ValueError, AttributeError, lgb.basic.LightGBMError) as exc:  # NotFittedError is a ValueError
        raise InvalidInput(f"This {type(model).__name__} is not fitted; fit it before registering.") from exc


def _pickle_wrapper(model: Any, file: str) -> bool:
    """Pickle `model` without its booster where it keeps one in `_Booster`; True if it had to keep it."""
    shell = copy.copy(model)
    kept = not hasattr(shell, "_Booster")
    if not kept:
        shell._Booster = None
    with open(file, "wb") as fh:
        pickle.dump(shell, fh, protocol=5)
    return kept
