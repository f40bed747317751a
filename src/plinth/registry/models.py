"""The registry's public functions: register, alias, load, list."""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

from plinth.core.entities import LineageEdge, ModelVersion, RegisteredModel
from plinth.core.errors import InvalidInput
from plinth.core.ids import now_ms
from plinth.core.validation import check_name
from plinth.registry import environment
from plinth.registry.flavors.base import Flavor, detect_flavor, flavor_class
from plinth.registry.loaded import EXAMPLE_FILE, Model, save_example
from plinth.store.base import NewModelVersion
from plinth.tracking.context import Backend, backend

_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def check_model_name(name: object) -> str:
    """Validate a model name: no '/' or '@' (they separate versions and aliases)."""
    name = check_name(name, "model")
    if "/" in name or "@" in name:
        raise InvalidInput(f"Model name {name!r} may not contain '/' or '@'; use e.g. 'iris-clf'.")
    return name


def check_alias(alias: object) -> str:
    """Validate an alias: a word starting with a letter (not a number, not 'latest')."""
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias == "latest":
        raise InvalidInput(
            f"Alias {alias!r} is not valid: use letters, digits, '_', '.', '-', starting with a letter "
            "(e.g. 'champion'); 'latest' is reserved."
        )
    return alias


def register_model(
    name: str,
    model: Any,
    *,
    input_example: Any = None,
    output_example: Any = None,
    flavor: str | None = None,
    description: str = "",
    run_id: str | None = None,
    **options: Any,
) -> ModelVersion:
    """Save `model` in its flavor's format and register it as the next version of `name`.

    Args:
        name: the model's registered name.
        model: the model object (scikit-learn, XGBoost, LightGBM, PyTorch, ONNX, or any
            object with predict / any callable).
        input_example: a few rows of input; defines the signature enforced on predict.
        output_example: optional, recorded in the signature.
        flavor: override the detected flavor.
        run_id: the run that produced the model (a lineage edge is written).
        options: passed to the flavor's save (e.g. `init_kwargs` for PyTorch).
    """
    from plinth.registry.package import store_package  # fsspec, NumPy: loaded when first used
    from plinth.registry.signature import infer_signature

    check_model_name(name)
    chosen = flavor_class(flavor)() if flavor else detect_flavor(model)
    signature = infer_signature(input_example, output_example)
    be = backend()
    env = environment.record(chosen.libraries)
    with tempfile.TemporaryDirectory(prefix="plinth-model-") as tmp:
        folder = os.path.join(tmp, "pkg")
        os.mkdir(folder)
        meta = chosen.save(model, folder, **options)
        if input_example is not None:
            save_example(input_example, os.path.join(folder, EXAMPLE_FILE))
        stored = store_package(
            be.blobs,
            folder,
            {
                "name": name,
                "flavor": chosen.name,
                "meta": meta,
                "signature": signature,
                "environment": env,
            },
        )
    mv = be.store.create_model_version(
        NewModelVersion(
            name=name,
            flavor=chosen.name,
            digest=stored.digest,
            files=stored.files,
            signature=signature,
            environment=env,
            run_id=run_id,
            description=description,
        )
    )
    if run_id is not None:
        be.store.add_edge(
            LineageEdge("run", run_id, "produced", "model_version", mv.id, now_ms(), {"name": name})
        )
    return mv


def log_model(run: Any, model: Any, name: str, **kwargs: Any) -> ModelVersion:
    """`ActiveRun.log_model`: register a model produced by `run`."""
    return register_model(name, model, run_id=run.id, **kwargs)


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """Split 'name', 'name/3' or 'name@alias' into (name, version, alias)."""
    if not isinstance(ref, str) or not ref:
        raise InvalidInput(f"A model reference must be 'name', 'name/VERSION' or 'name@ALIAS', got {ref!r}.")
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return check_model_name(name), None, (None if alias == "latest" else check_alias(alias))
    name, sep, version = ref.partition("/")
    if not sep:
        return check_model_name(name), None, None
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(f"Model version in {ref!r} must be a positive number, e.g. '{name}/3'.")
    return check_model_name(name), int(version), None


def resolve(ref: str, be: Backend | None = None) -> ModelVersion:
    """The model version a reference names."""
    be = be or backend()
    name, version, alias = parse_ref(ref)
    if alias is not None:
        version = be.store.resolve_alias(name, alias)
    return be.store.get_model_version(name, version)


def load_model(ref: str) -> Model:
    """Load 'name' (latest), 'name/3' or 'name@alias', verifying every byte before deserializing."""
    be = backend()
    return load_version(be, resolve(ref, be))


def load_version(be: Backend, mv: ModelVersion) -> Model:
    """Materialize, verify and load one model version (no in-process cache)."""
    from plinth.registry.package import materialize

    folder, manifest = materialize(be.blobs, mv, os.path.join(be.settings.home, "cache", "models"))
    environment.check(mv.environment, mv.ref, key=mv.id)
    chosen: Flavor = flavor_class(mv.flavor)()
    raw = chosen.load(folder, manifest.get("meta") or {})
    example = os.path.join(folder, EXAMPLE_FILE)
    return Model(mv, chosen, raw, example_path=example if os.path.exists(example) else None)


def set_alias(name: str, alias: str, version: int) -> int | None:
    """Point `name@alias` at `version` (which must exist); returns the previous version."""
    check_model_name(name)
    check_alias(alias)
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidInput(f"Version must be an integer, got {version!r}.")
    return backend().store.set_alias(name, alias, version)


def delete_alias(name: str, alias: str) -> int:
    """Remove `name@alias`; returns the version it pointed at."""
    return backend().store.delete_alias(check_model_name(name), check_alias(alias))


def get_model_version(name: str, version: int | None = None) -> ModelVersion:
    """One version of a model (the latest when `version` is None)."""
    return backend().store.get_model_version(check_model_name(name), version)


def list_model_versions(name: str) -> list[ModelVersion]:
    """Every version of a model, oldest first."""
    return backend().store.list_model_versions(check_model_name(name))


def list_models() -> list[RegisteredModel]:
    """Every registered model with its latest version and aliases."""
    return backend().store.list_registered_models()


def set_model_description(name: str, description: str, version: int | None = None) -> None:
    """Describe a model (or one version of it)."""
    if not isinstance(description, str):
        raise InvalidInput("A description must be a string.")
    backend().store.set_model_description(check_model_name(name), version, description)
