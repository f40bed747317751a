"""The registry's public functions: register, alias, load, sign, list.

Loading a model runs code from the store when its flavor is pickle-based (scikit-learn, plain
Python, the LightGBM wrapper): the store is the trust root, unless versions are signed and
PLINTH_REQUIRE_SIGNED=1 makes loading refuse what a trusted key did not sign.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plinth.core.entities import LineageEdge, ModelVersion, RegisteredModel
from plinth.core.errors import ConfigError, InvalidInput, SignatureError
from plinth.core.ids import now_ms
from plinth.core.refs import MODEL_FORMS, ModelRef, check_alias, check_ref_name
from plinth.core.validation import check_key, check_text, param_text
from plinth.registry import environment, signing
from plinth.registry.flavors.base import detect_flavor, flavor_class
from plinth.registry.loaded import EXAMPLE_FILE, Model, save_example
from plinth.store.base import NewModelVersion
from plinth.tracking.context import backend

if TYPE_CHECKING:
    from plinth.registry.package import Package
    from plinth.registry.source import ModelSource
    from plinth.tracking.checkpoints import Checkpoint

CHECKPOINT_TAG = "plinth.checkpoint"
"""The tag of a model version registered from a checkpoint: the checkpoint's id."""

REF_FORMS = MODEL_FORMS


def check_model_name(name: object) -> str:
    """Validate a model name: one every reference can name (`org/churn`, not `churn/3` or `a@b`)."""
    return check_ref_name(name, "model")


def register_model(
    name: str,
    model: Any = None,
    *,
    input_example: Any = None,
    output_example: Any = None,
    flavor: str | None = None,
    description: str = "",
    run_id: str | None = None,
    from_checkpoint: Checkpoint | str | None = None,
    **options: Any,
) -> ModelVersion:
    """Save `model` in its flavor's format and register it as the next version of `name`.

    Args:
        name: the model's registered name.
        model: the model object (scikit-learn, XGBoost, LightGBM, PyTorch, ONNX, or any
            object with predict / any callable). With `from_checkpoint` of a PyTorch state
            dict: the module (of the right architecture) the state dict is loaded into.
        input_example: a few rows of input; defines the signature enforced on predict.
        output_example: optional, recorded in the signature.
        flavor: override the detected flavor.
        run_id: the run that produced the model (a lineage edge is written); defaults to the
            checkpoint's run with `from_checkpoint`.
        from_checkpoint: a `Checkpoint` (or its id) whose content, loaded and verified by hash,
            becomes the version's model: a pickled model as it is, a state dict (or a dict
            holding one under "model") loaded into `model`. The version is tagged
            `plinth.checkpoint=<checkpoint id>`.
        options: passed to the flavor's save (e.g. `init_kwargs` for PyTorch).

    Raises:
        InvalidInput: a state-dict checkpoint without `model=`, or one that does not fit it; a
            picklable checkpoint with `model=` as well; a folder checkpoint.
        NotFound: no such checkpoint (or it was pruned).
        IntegrityError: the checkpoint's bytes do not match their digest.
    """
    from plinth.registry.adopt import manifest_sealer  # YAML, fsspec, NumPy: loaded when first used
    from plinth.registry.package import store_files
    from plinth.registry.signature import infer_signature

    check_model_name(name)
    check_text(description, "description")
    checkpoint_id = None
    if from_checkpoint is not None:
        model, run_id, checkpoint_id = _from_checkpoint(from_checkpoint, model, run_id)
    elif model is None:
        raise InvalidInput(f"register_model({name!r}) needs a model: pass model=, or from_checkpoint=.")
    chosen = flavor_class(flavor)() if flavor else detect_flavor(model)
    signature = infer_signature(input_example, output_example)
    be = backend()
    signer = signing.load_signer(be.settings)  # a bad key fails here, before anything is written
    env = environment.record(chosen.libraries)
    with tempfile.TemporaryDirectory(prefix="plinth-model-") as tmp:
        folder = os.path.join(tmp, "pkg")
        os.mkdir(folder)
        meta = chosen.save(model, folder, **options)
        if input_example is not None:
            save_example(input_example, os.path.join(folder, EXAMPLE_FILE))
        files = store_files(be.blobs, folder)
    manifest = {"name": name, "flavor": chosen.name, "meta": meta, "signature": signature, "environment": env}
    mv = be.store.create_model_version(
        NewModelVersion(
            name=name,
            flavor=chosen.name,
            seal=manifest_sealer(be.blobs, signer, manifest, files),
            files=files,
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
    if checkpoint_id is not None:
        be.store.set_model_version_tags(name, mv.version, {CHECKPOINT_TAG: checkpoint_id})
        mv = be.store.get_model_version(name, mv.version)
    return mv


def _from_checkpoint(
    checkpoint: Checkpoint | str, model: Any, run_id: str | None
) -> tuple[Any, str | None, str]:
    """(the model, the run that produced it, the checkpoint's id) for `from_checkpoint`."""
    from plinth.tracking.checkpoints import Checkpoint, get_checkpoint, load_stored

    be = backend()
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else get_checkpoint(checkpoint, be)
    where = f"Checkpoint {ckpt.id[:12]}… (step {ckpt.step} of run {ckpt.run_id})"
    if ckpt.kind == "folder":
        raise InvalidInput(
            f"{where} is a folder, not a model object: build the model from "
            "plinth.load_checkpoint(id) (a local folder) and register that."
        )
    if ckpt.kind == "pickle":
        if model is not None:
            raise InvalidInput(
                f"{where} holds a pickled object, which is the model itself: pass from_checkpoint= "
                "without model=, or model= without from_checkpoint=."
            )
        return load_stored(be, ckpt), run_id or ckpt.run_id, ckpt.id
    return _with_state(where, model, load_stored(be, ckpt)), run_id or ckpt.run_id, ckpt.id


def _with_state(where: str, module: Any, state: Any) -> Any:
    """`module` with the checkpoint's state dict loaded into it."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise InvalidInput(
            f"{where} holds a PyTorch state dict, which is not a model by itself: pass model=, a "
            "torch.nn.Module of the architecture it was saved from, and plinth loads the weights "
            "into it."
        )
    mine = set(module.state_dict())
    if not mine & set(state) and isinstance(state.get("model"), Mapping):
        state = state["model"]  # {"model": sd, "optim": ..., "epoch": ...}
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError) as exc:
        raise InvalidInput(
            f"{where} does not fit the {type(module).__name__} given as model=: {exc}".rstrip()
            + " Pass a module of the architecture the checkpoint was saved from."
        ) from exc
    return module


def log_model(run: Any, model: Any, name: str, **kwargs: Any) -> ModelVersion:
    """`ActiveRun.log_model`: register a model produced by `run`."""
    return register_model(name, model, run_id=run.id, **kwargs)


def parse_ref(ref: str | ModelRef) -> tuple[str, int | None, str | None]:
    """(name, version, alias) of a reference; `ModelRef.parse` gives the same as one value."""
    parsed = ModelRef.parse(ref)
    return parsed.name, parsed.version, parsed.alias


def resolve(ref: str | ModelRef, be: ModelSource | None = None) -> ModelVersion:
    """The model version a reference (`ModelRef` or its text) names.

    Raises:
        InvalidInput: the reference is not NAME, NAME/VERSION or NAME@ALIAS.
        NotFound: no such model, version or alias.
    """
    be = be or backend()
    parsed = ModelRef.parse(ref)
    version = parsed.version
    if parsed.alias is not None:
        version = be.store.resolve_alias(parsed.name, parsed.alias)
    return be.store.get_model_version(parsed.name, version)


def load_model(ref: str | ModelRef) -> Model:
    """Load 'name' (latest), 'org/churn/3', 'name@alias' or MLflow's 'models:/name/3', verifying
    every byte before deserializing.

    Pickle-based flavors run code from the package as they load: load only from a store whose
    writers you trust, or require signed versions (PLINTH_REQUIRE_SIGNED=1).

    Raises:
        NotFound: no such model, version or alias.
        IntegrityError: the package's bytes, or its manifest, do not match the version's record.
        SignatureError: the version is badly signed, or unsigned where signing is required.
    """
    from plinth.registry.source import model_source  # sqlite3: loaded with the first model, not with plinth

    with model_source() as source:
        return load_version(source, resolve(ref, source))


def load_version(be: ModelSource, mv: ModelVersion) -> Model:
    """Check the signature, then materialize, verify and load one model version (no in-process cache)."""
    from plinth.registry.package import materialize

    signing.check(mv, be.settings)
    package = materialize(be.blobs, mv, os.path.join(be.settings.home, "cache", "models"))
    environment.check(mv.environment, mv.ref, key=mv.id)
    return open_model(mv, package)


def open_model(mv: ModelVersion, package: Package) -> Model:
    """Load a version from its package (every file is checked against the manifest as it is read)."""
    chosen = flavor_class(mv.flavor)()
    raw = chosen.load(package)
    example = package.path(EXAMPLE_FILE) if package.has(EXAMPLE_FILE) else None
    return Model(mv, chosen, raw, example_path=example)


def check_signed(ref: str | ModelRef) -> ModelVersion:
    """The version `ref` names, after the signature checks `load_model` makes (no bytes are read).

    Raises:
        SignatureError: as `load_model`.
    """
    be = backend()
    mv = resolve(ref, be)
    signing.check(mv, be.settings)
    return mv


@dataclass(frozen=True)
class Signing:
    """What `sign_versions` did: the versions it signed, and those it left signed as they were."""

    signed: list[ModelVersion]
    kept: list[ModelVersion]


def sign_versions(ref: str | ModelRef, *, resign: bool = False) -> Signing:
    """Sign existing versions with PLINTH_SIGNING_KEY.

    'name' takes every version, 'name/3' or 'name@alias' one. A signature vouches for what the
    version's record points at now, so each version is checked first. Unsigned versions are
    signed; versions whose signature verifies under a trusted key (this one or one in
    PLINTH_VERIFY_KEYS) are left as they are; a version signed by a key not trusted here, or
    whose signature does not match its record, is refused unless `resign` (each re-signing is
    audited with the key it replaces).

    Raises:
        ConfigError: no signing key is set, or a key cannot be used.
        SignatureError: a version is badly signed or signed by an untrusted key, and not `resign`.
        IntegrityError: a version's manifest does not match its record.
        Nothing is signed when any of these is raised.
    """
    from plinth.registry.package import read_manifest

    be = backend()
    signer = signing.load_signer(be.settings)
    if signer is None:
        raise ConfigError(
            f"Signing needs {signing.SIGNING_SETTING}: the path of an Ed25519 private key in PEM "
            "(make one with `openssl genpkey -algorithm ed25519 -out signing-key.pem`)."
        )
    parsed = ModelRef.parse(ref)
    if str(ref) == parsed.name:  # a bare name takes every version; NAME@latest the newest only
        targets = be.store.list_model_versions(parsed.name)
    else:
        targets = [resolve(parsed, be)]
    verdicts = [(mv, signing.status(mv, be.settings)) for mv in targets]
    refused = [(mv, verdict) for mv, verdict in verdicts if verdict not in ("unsigned", "verified")]
    if refused and not resign:
        raise SignatureError(_resign_refusal(refused))
    chosen = [mv for mv, verdict in verdicts if verdict != "verified"]
    for mv in chosen:
        read_manifest(be.blobs, mv)
    signed = [
        be.store.sign_model_version(
            mv.name,
            mv.version,
            mv.digest,
            signer.sign(mv.name, mv.version, mv.flavor, mv.digest),
            signer.fingerprint,
        )
        for mv in chosen
    ]
    return Signing(signed, [mv for mv, verdict in verdicts if verdict == "verified"])


def _resign_refusal(refused: list[tuple[ModelVersion, str]]) -> str:
    reasons = [
        f"the signature of {mv.ref} does not match its record"
        if verdict == "bad"
        else f"{mv.ref} is signed by key {mv.signing_key}, which is not trusted here"
        for mv, verdict in refused
    ]
    return (
        f"{'; '.join(reasons)}. Nothing was signed: a signature from another key is not replaced "
        "silently, since the record may have been changed after it was signed. If you trust the "
        f"other key, add its public half to {signing.VERIFY_SETTING}; if you have checked what these "
        "versions hold now, sign them again with --resign (each is audited with the key it replaces)."
    )


def set_alias(name: str, alias: str, version: int) -> int | None:
    """Point `name@alias` at `version` (which must exist); returns the previous version."""
    check_model_name(name)
    check_alias(alias)
    return backend().store.set_alias(name, alias, _check_version(version))


def delete_alias(name: str, alias: str) -> int:
    """Remove `name@alias`; returns the version it pointed at."""
    return backend().store.delete_alias(check_model_name(name), check_alias(alias))


def get_model_version(name: str | ModelRef, version: int | None = None) -> ModelVersion:
    """One version of a model: `name` is a name (then `version`, or the latest) or a reference.

    `get_model_version("org/churn", 3)`, `get_model_version("org/churn/3")` and
    `get_model_version("org/churn@champion")` all work.

    Raises:
        InvalidInput: a bad reference, or a version given both in the reference and as `version`.
        NotFound: no such model, version or alias.
    """
    parsed = ModelRef.parse(name)
    if version is None:
        return resolve(parsed)
    if parsed.version is not None or parsed.alias is not None:
        raise InvalidInput(
            f"{str(parsed)!r} already names a version; pass the name {parsed.name!r} with version={version}, "
            "or the reference alone."
        )
    return backend().store.get_model_version(parsed.name, _check_version(version))


def list_model_versions(name: str) -> list[ModelVersion]:
    """Every version of a model, oldest first."""
    return backend().store.list_model_versions(check_model_name(name))


def list_models() -> list[RegisteredModel]:
    """Every registered model with its latest version and aliases."""
    return backend().store.list_registered_models()


def set_model_description(name: str, description: str, version: int | None = None) -> None:
    """Describe a model (or one version of it)."""
    check_text(description, "description")
    version = None if version is None else _check_version(version)
    backend().store.set_model_description(check_model_name(name), version, description)


def set_model_version_tags(name: str, version: int, tags: Mapping[str, Any]) -> None:
    """Set (or overwrite) tags of one model version; values are stored as text, as a run's are.

    Example:
        >>> plinth.set_model_version_tags("churn", 3, {"validated": "yes"})

    Raises:
        InvalidInput: a bad name, version, tag key or value.
        NotFound: no such model or version.
    """
    checked = _check_tags(tags)
    backend().store.set_model_version_tags(check_model_name(name), _check_version(version), checked)


def delete_model_version_tag(name: str, version: int, key: str) -> None:
    """Remove one tag of a model version.

    Raises:
        NotFound: no such model, version or tag.
    """
    backend().store.delete_model_version_tag(check_model_name(name), _check_version(version), key)


def set_registered_model_tags(name: str, tags: Mapping[str, Any]) -> None:
    """Set (or overwrite) tags of a model (of its name, not of one version).

    Raises:
        InvalidInput: a bad name, tag key or value.
        NotFound: no such model.
    """
    backend().store.set_registered_model_tags(check_model_name(name), _check_tags(tags))


def _check_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    return {check_key(k, "tag"): param_text(k, v, "tag") for k, v in tags.items()}


def _check_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidInput(f"Version must be an integer, got {version!r:.80}.")
    return version
