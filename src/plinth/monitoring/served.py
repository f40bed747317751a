"""Drift of a served model: its prediction logs against its training data's profile.

The reference is the dataset version set with `set_reference`, or else the one the run that
produced the model version logged with role "train" (found through lineage edges). Features are
the model signature's inputs; the predictions are compared with the training target column
(the profile's one column that is not an input, or the one named by `target=`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plinth.core.entities import DatasetVersion, ModelVersion
from plinth.core.errors import InvalidInput, NotFound
from plinth.core.refs import DatasetRef, ModelRef
from plinth.core.windows import Window
from plinth.monitoring.drift import DriftReport, DriftThresholds, drift, reference_from_profile
from plinth.monitoring.windows import Logged
from plinth.store.base import Store


@dataclass(frozen=True, repr=False)
class ModelDrift:
    """Drift of one model over one window, and what it was compared with."""

    model: str
    version: int | None
    window: Window
    reference: str  # dataset NAME/N
    reference_source: str  # "set_reference" or "lineage"
    requests: int
    report: DriftReport

    def __repr__(self) -> str:
        drifted, total = len(self.drifted_features), len(self.report.features)
        return (
            f"<ModelDrift {self.model}: {drifted} of {total} features drifted vs {self.reference}, "
            f"{self.requests} requests>"
        )

    @property
    def drifted_features(self) -> list[str]:
        """Names of the drifted features."""
        return self.report.drifted_features

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "model": self.model,
            "version": self.version,
            "start_ms": self.window.start_ms,
            "end_ms": self.window.end_ms,
            "reference": self.reference,
            "reference_source": self.reference_source,
            "requests": self.requests,
            **self.report.to_dict(),
        }


def reference_dataset(store: Store, model: str, version: int | None = None) -> tuple[DatasetVersion, str]:
    """The dataset version a model is compared with, and how it was found.

    Raises:
        NotFound: no reference was set and the version's run logged no training dataset.
    """
    chosen = store.get_reference(model)
    if chosen is not None:
        return _dataset_by_id(store, chosen), "set_reference"
    mv = store.get_model_version(model, version)
    if mv.run_id:
        consumed = [e for e in store.edges(dst=("run", mv.run_id)) if e.src_type == "dataset_version"]
        train = [e for e in consumed if e.attributes.get("role") == "train"]
        pick = train or (consumed if len(consumed) == 1 else [])
        if pick:
            return _dataset_by_id(store, pick[-1].src_id), "lineage"
    raise NotFound(
        f"Model {mv.ref} has no drift reference: its run logged no dataset with role='train'. "
        f"Log the training data in the run (run.log_dataset(df, name, role='train')) or set one with "
        f"plinth.set_reference({model!r}, 'DATASET/N')."
    )


def find_dataset(store: Store, ref: str | DatasetRef | DatasetVersion) -> DatasetVersion:
    """A dataset version from 'NAME/N', 'NAME' (latest), a `DatasetRef` or the object itself."""
    if isinstance(ref, DatasetVersion):
        return ref
    parsed = DatasetRef.parse(ref)
    return store.get_dataset_version(parsed.name, parsed.version)


def model_drift(
    store: Store,
    model: str | ModelRef,
    span: Window,
    *,
    version: int | None = None,
    target: str | None = None,
    thresholds: DriftThresholds | None = None,
) -> ModelDrift:
    """Drift of `model`'s answered requests in `span` (one version or all) against its reference.

    `model` is a name (all versions, or `version`) or a reference to one version ('churn/3',
    'churn@champion').

    Raises:
        InvalidInput: no answered requests in the window, or no input of the model in the reference.
    """
    model, version = named_version(store, model, version)
    return drift_of(store, model, span, answered(store, model, span, version), version, target, thresholds)


def drift_of(
    store: Store,
    model: str,
    span: Window,
    logged: Logged,
    version: int | None = None,
    target: str | None = None,
    thresholds: DriftThresholds | None = None,
) -> ModelDrift:
    """`model_drift` over requests already read (`answered`).

    Raises:
        InvalidInput: no requests, or no input of the model in the reference.
    """
    if not logged.requests:
        which = f"{model}/{version}" if version is not None else model
        raise InvalidInput(f"No answered predictions of {which} in {span.describe()}; widen the window.")
    mv, dataset, source = _reference_of(store, model, version, logged)
    return _compare(mv, dataset, source, span, logged, version, target, thresholds)


def _reference_of(
    store: Store, model: str, version: int | None, logged: Logged
) -> tuple[ModelVersion, DatasetVersion, str]:
    """The version that answered (`version`, else the newest in `logged`) and its drift reference."""
    mv = store.get_model_version(model, version if version is not None else max(logged.versions()))
    dataset, source = reference_dataset(store, model, mv.version)
    return mv, dataset, source


def drift_over_time(
    store: Store,
    model: str | ModelRef,
    span: Window,
    *,
    version: int | None = None,
    target: str | None = None,
    thresholds: DriftThresholds | None = None,
) -> list[ModelDrift]:
    """Drift per part of `span` (`span.every_ms` long); parts without requests are left out.

    Raises:
        InvalidInput: `span` has no `every_ms`, or would make more than 10,000 parts.
    """
    model, version = named_version(store, model, version)
    return drift_parts(store, model, span, answered(store, model, span, version), version, target, thresholds)


def drift_parts(
    store: Store,
    model: str,
    span: Window,
    logged: Logged,
    version: int | None = None,
    target: str | None = None,
    thresholds: DriftThresholds | None = None,
) -> list[ModelDrift]:
    """`drift_over_time` over requests already read (`answered`)."""
    if not logged.requests:
        return []
    mv, dataset, source = _reference_of(store, model, version, logged)
    times = logged.times
    out = []
    for part in span.parts(int(times[0]), int(times[-1])):
        inside = logged.between(part.start_ms, part.end_ms)
        if inside.requests:
            out.append(_compare(mv, dataset, source, part, inside, version, target, thresholds))
    return out


def named_version(store: Store, model: str | ModelRef, version: int | None) -> tuple[str, int | None]:
    """(name, version) that monitoring reads: a bare name keeps `version` (None: every version);
    a reference such as 'churn/3', 'churn@champion' or 'churn@latest' names one version.

    Raises:
        InvalidInput: a bad reference, or a reference to one version together with `version`.
        NotFound: the alias, or the model, does not exist.
    """
    parsed = ModelRef.parse(model)
    if str(model) == parsed.name:
        return parsed.name, version
    if version is not None:
        raise InvalidInput(
            f"{str(model)!r:.80} already names a version; pass the name {parsed.name!r} with "
            f"version={version}, or the reference alone."
        )
    if parsed.alias is not None:
        return parsed.name, store.resolve_alias(parsed.name, parsed.alias)
    if parsed.version is not None:
        return parsed.name, parsed.version
    return parsed.name, store.get_model_version(parsed.name, None).version


def answered(store: Store, model: str, span: Window, version: int | None = None) -> Logged:
    """The window's successfully answered, non-shadow requests, oldest first, read as columns."""
    return Logged.read(store, model, span, version).answered()


def _compare(
    mv: ModelVersion,
    dataset: DatasetVersion,
    source: str,
    span: Window,
    logged: Logged,
    version: int | None,
    target: str | None,
    thresholds: DriftThresholds | None,
) -> ModelDrift:
    reference = reference_from_profile(dataset.profile)
    inputs = (mv.signature or {}).get("inputs") or {}
    names = [c["name"] for c in inputs.get("columns", [])] if inputs.get("type") == "frame" else None
    current = logged.features(names)
    features = [str(c) for c in current.columns if str(c) in reference.columns]
    if not features:
        raise InvalidInput(
            f"None of {mv.ref}'s inputs ({', '.join(map(str, current.columns[:10]))}) are columns of the "
            f"reference {dataset.ref}; set a reference with the model's features (plinth.set_reference)."
        )
    current.columns = [str(c) for c in current.columns]
    prediction = _target(reference.columns, features, target, dataset)
    if prediction is not None:
        predicted = logged.predictions()
        if len(predicted) == len(current):
            current[prediction] = predicted
        else:
            prediction = None
    report = drift(reference, current, columns=features, prediction=prediction, thresholds=thresholds)
    return ModelDrift(mv.name, version, span, dataset.ref, source, logged.requests, report)


def _target(columns: Any, features: list[str], target: str | None, dataset: DatasetVersion) -> str | None:
    if target is not None:
        if target not in columns:
            raise InvalidInput(f"target={target!r} is not a column of the reference {dataset.ref}.")
        return target
    rest = [c for c in columns if c not in features]
    return rest[0] if len(rest) == 1 else None


def _dataset_by_id(store: Store, dataset_id: str) -> DatasetVersion:
    for ds in store.list_dataset_versions():
        if ds.id == dataset_id:
            return ds
    raise NotFound(f"The reference dataset version {dataset_id} no longer exists; set another one.")


def reference_ref(store: Store, model: str, ref: str | DatasetVersion) -> DatasetVersion:
    """Check `ref` exists and `model` is registered; return the dataset version."""
    if model not in {m.name for m in store.list_registered_models()}:
        raise NotFound(f"No registered model {model!r}; list them with `plinth models list`.")
    return find_dataset(store, ref)
