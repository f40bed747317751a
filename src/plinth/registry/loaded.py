"""`Model`: a loaded model version that validates input against its signature."""

from __future__ import annotations

import json
from typing import Any

from plinth.core.entities import ModelVersion
from plinth.core.errors import InvalidInput
from plinth.registry.flavors.base import Flavor

EXAMPLE_FILE = "plinth-input-example.json"


def save_example(example: Any, path: str) -> None:
    """Write an input example as JSON: a frame as {"columns", "data", "dtypes"}, an array as {"array"}."""
    import numpy as np
    import pandas as pd

    if isinstance(example, dict):
        example = pd.DataFrame(example)
    if isinstance(example, pd.DataFrame):
        doc = {
            "columns": [str(c) for c in example.columns],
            "data": json.loads(example.to_json(orient="values")),
            "dtypes": [str(d) for d in example.dtypes],
        }
    else:
        array = np.asarray(example)
        doc = {"array": array.tolist(), "dtype": str(array.dtype)}
    with open(path, "w") as fh:
        json.dump(doc, fh)


def load_example(path: str) -> Any:
    """Read back what `save_example` wrote."""
    import numpy as np
    import pandas as pd

    with open(path) as fh:
        doc = json.load(fh)
    if "array" in doc:
        return np.asarray(doc["array"], dtype=doc["dtype"])
    frame = pd.DataFrame(doc["data"], columns=doc["columns"])
    return frame.astype(dict(zip(doc["columns"], doc["dtypes"], strict=True)))


class Model:
    """A registered model, loaded and ready to predict.

    `predict` checks input against the signature (missing or extra columns, unsafe dtypes and
    wrong feature counts raise InvalidInput naming each; safe casts are applied) and then
    calls the native model. `raw` is the native object.
    """

    def __init__(
        self, version: ModelVersion, flavor: Flavor, raw: Any, example_path: str | None = None
    ) -> None:
        self.model_version = version
        self.flavor = flavor
        self.raw = raw
        self.example_path = example_path
        from plinth.registry.signature import InputSpec  # NumPy loads with the first model, not with plinth

        self._input = InputSpec((version.signature or {}).get("inputs"))

    @property
    def name(self) -> str:
        """The registered name."""
        return self.model_version.name

    @property
    def version(self) -> int:
        """The version number."""
        return self.model_version.version

    @property
    def signature(self) -> dict[str, Any] | None:
        """Inputs (and outputs) as inferred when the model was registered."""
        return self.model_version.signature

    def __repr__(self) -> str:
        return f"<Model {self.model_version.ref} ({self.flavor.name})>"

    @property
    def input_example(self) -> Any:
        """The input example given at registration (a DataFrame or an ndarray), or None."""
        if self.example_path is None:
            return None
        return load_example(self.example_path)

    def validate(self, data: Any) -> Any:
        """Return `data` checked and converted for the model; raise InvalidInput if it does not fit."""
        return self._input.prepare(data)

    def predict(self, data: Any) -> Any:
        """Predictions for `data` (DataFrame, ndarray, list of records or dict of columns)."""
        return self.flavor.predict(self.raw, self._input.prepare(data))

    @property
    def has_proba(self) -> bool:
        """True when `predict_proba` is available."""
        return self.flavor.has_proba(self.raw)

    def predict_proba(self, data: Any) -> Any:
        """Class probabilities, where the flavor has them."""
        if not self.has_proba:
            raise InvalidInput(f"Model {self.model_version.ref} ({self.flavor.name}) has no predict_proba.")
        return self.flavor.predict_proba(self.raw, self._input.prepare(data))
