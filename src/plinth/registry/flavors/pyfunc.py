"""Plain Python: any object with `predict`, or any callable, saved with cloudpickle."""

from __future__ import annotations

import os
import pickle
from typing import TYPE_CHECKING, Any

from plinth.core.errors import InvalidInput
from plinth.registry.flavors.base import Flavor

if TYPE_CHECKING:
    from plinth.registry.package import Package


class PythonFlavor(Flavor):
    """Objects with `predict(data)` or callables `f(data)`; code is captured by value."""

    name = "python"
    libraries = ("cloudpickle",)

    @classmethod
    def detect(cls, model: Any) -> bool:
        return callable(getattr(model, "predict", None)) or callable(model)

    def save(self, model: Any, path: str, **options: Any) -> dict[str, Any]:
        try:
            import cloudpickle
        except ImportError as exc:
            raise InvalidInput("Plain Python models need cloudpickle: pip install cloudpickle.") from exc
        with open(os.path.join(path, "model.pkl"), "wb") as fh:
            try:
                cloudpickle.dump(model, fh, protocol=5)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                raise InvalidInput(f"This {type(model).__name__} cannot be serialized: {exc}") from exc
        return {"file": "model.pkl", "callable": not callable(getattr(model, "predict", None))}

    def load(self, package: Package) -> Any:
        import cloudpickle  # noqa: F401 - registers what cloudpickle'd objects need

        return pickle.loads(package.read(package.field("file")))  # runs code from the package
