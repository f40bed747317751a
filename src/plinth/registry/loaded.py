"""`Model`: a loaded model version that validates input against its signature."""

from __future__ import annotations

from typing import Any

from plinth.core.entities import ModelVersion
from plinth.core.errors import InvalidInput
from plinth.registry.flavors.base import Flavor


class Model:
    """A registered model, loaded and ready to predict.

    `predict` checks input against the signature (missing or extra columns, unsafe dtypes and
    wrong feature counts raise InvalidInput naming each; safe casts are applied) and then
    calls the native model. `raw` is the native object.
    """

    def __init__(self, version: ModelVersion, flavor: Flavor, raw: Any) -> None:
        self.model_version = version
        self.flavor = flavor
        self.raw = raw
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
