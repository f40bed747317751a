"""`plinth models …`: the model registry from the command line."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from plinth.cli import render
from plinth.cli.options import json_option, proba_option
from plinth.cli.render import console, say, table, when
from plinth.core.entities import ModelVersion

if TYPE_CHECKING:
    from plinth.core.settings import Settings


@click.group("models", short_help="Registered models: list, show, alias, sign, predict.")
def models() -> None:
    """The model registry: versions, aliases (e.g. champion), signatures, lineage."""


@models.command("list")
@json_option
def models_list(as_json: bool) -> None:
    """List registered models with their latest version and aliases."""
    import plinth

    found = plinth.list_models()
    if as_json:
        render.emit_json([m.__dict__ for m in found])
        return
    if not found:
        say("No models yet; register one with plinth.register_model(...) or run `plinth demo`.")
        return
    rows = [
        (m.name, m.latest_version, ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items())), m.description)
        for m in found
    ]
    console.print(table(f"Models ({len(found)})", ["name", "latest", "aliases", "description"], rows))


@models.command("show", short_help="Show a model version: signature, environment, lineage.")
@click.argument("ref")
@json_option
def models_show(ref: str, as_json: bool) -> None:
    """Show a model version: REF is NAME (latest), NAME/VERSION or NAME@ALIAS.

    Prints the signature, the environment needed to load it, its aliases and its lineage
    (the run that produced it and the datasets that run consumed).
    """
    from plinth.registry import signing
    from plinth.registry.models import resolve
    from plinth.tracking.context import backend

    mv = resolve(ref)
    lineage = _lineage(mv)
    if as_json:
        render.emit_json(
            {**mv.__dict__, "signing": signing.status(mv, backend().settings), "lineage": lineage}
        )
        return
    say(f"Model {mv.ref}  flavor {mv.flavor}  created {when(mv.created_ms)} by {mv.creator}")
    if mv.aliases:
        say(f"aliases: {', '.join(mv.aliases)}")
    if mv.description:
        say(f"description: {mv.description}")
    say(f"sha256 {mv.digest}")
    say(f"signature: {signature_line(mv, backend().settings)}")
    console.print(table("Signature (inputs)", ["name", "dtype"], _signature_rows(mv)))
    env = mv.environment
    rows = [("python", env.get("python")), *sorted((env.get("libraries") or {}).items())]
    console.print(table("Environment", ["package", "version"], rows))
    if lineage:
        console.print(table("Lineage", ["relation", "entity", "id", "detail"], lineage_rows(lineage)))
    versions = backend().store.list_model_versions(mv.name)
    rows = [
        (v.version, when(v.created_ms), v.run_id or "", ", ".join(v.aliases), _short_key(v.signing_key))
        for v in versions
    ]
    console.print(
        table(f"Versions of {mv.name}", ["version", "created", "run", "aliases", "signed by"], rows)
    )


_SIGNATURE_STATES = {
    "verified": "verified",
    "bad": "BAD: it does not match this version; loading refuses it",
    "untrusted": "not checked: the key is not among PLINTH_VERIFY_KEYS",
    "unchecked": "not checked: set PLINTH_VERIFY_KEYS to check it",
}


def signature_line(mv: ModelVersion, settings: Settings) -> str:
    """Whether a version is signed, by which key, and whether the signature holds here."""
    from plinth.registry import signing

    verdict = signing.status(mv, settings)
    if verdict == "unsigned":
        return "unsigned (sign it with `plinth models sign`)"
    return f"signed by key {mv.signing_key}, {_SIGNATURE_STATES[verdict]}"


def _short_key(fingerprint: str | None) -> str:
    return f"{fingerprint[:16]}…" if fingerprint else ""


def _signature_rows(mv: ModelVersion) -> list[tuple[str, str]]:
    spec = (mv.signature or {}).get("inputs")
    if not spec:
        return [("(none)", "no input example was given")]
    if spec["type"] == "frame":
        return [(c["name"], c["dtype"]) for c in spec["columns"]]
    return [("<tensor>", f"{spec['dtype']} shape {spec['shape']}")]


def _lineage(mv: ModelVersion) -> list[dict[str, str]]:
    from plinth.tracking.context import backend

    store = backend().store
    found = []
    if mv.run_id:
        found.append({"relation": "produced by", "type": "run", "id": mv.run_id, "detail": ""})
        for edge in store.edges(dst=("run", mv.run_id)):
            if edge.src_type == "dataset_version":
                detail = _dataset_ref(edge.src_id) + f" ({edge.attributes.get('role', '')})"
                found.append(
                    {"relation": "trained on", "type": "dataset", "id": edge.src_id, "detail": detail}
                )
    return found


def _dataset_ref(dataset_id: str) -> str:
    import plinth

    for ds in plinth.list_datasets():
        if ds.id == dataset_id:
            return ds.ref
    return dataset_id


def lineage_rows(lineage: list[dict[str, str]]) -> list[tuple[str, str, str, str]]:
    """Table rows for lineage entries."""
    return [(e["relation"], e["type"], e["id"], e["detail"]) for e in lineage]


@models.command("alias", short_help="Point NAME@ALIAS at a version (the move is audited).")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int)
def models_alias(name: str, alias: str, version: int) -> None:
    """Point NAME@ALIAS at VERSION (moving it if it exists; the move is audited)."""
    import plinth

    before = plinth.set_alias(name, alias, version)
    moved = f" (was {before})" if before is not None else ""
    say(f"{name}@{alias} → version {version}{moved}")


@models.command("sign", short_help="Sign model versions with the key in PLINTH_SIGNING_KEY.")
@click.argument("ref")
@click.option(
    "--resign",
    is_flag=True,
    help="Also replace signatures that are bad or from a key not trusted here (audited with the old key).",
)
def models_sign(ref: str, resign: bool) -> None:
    """Sign existing versions with the key in PLINTH_SIGNING_KEY (each signing is audited).

    REF is NAME (every version), NAME/VERSION or NAME@ALIAS. Each version's manifest is checked
    against its record first; sign only models you trust, since a signature lets them load where
    PLINTH_REQUIRE_SIGNED=1. Versions whose signature verifies under a trusted key (this one or
    one in PLINTH_VERIFY_KEYS) are left as they are. A version signed by another key, or whose
    signature does not match its record, is refused (nothing is signed) unless --resign is given.
    """
    from plinth.registry.models import sign_versions

    done = sign_versions(ref, resign=resign)
    if done.signed:
        key = done.signed[0].signing_key
        say(f"Signed {', '.join(mv.ref for mv in done.signed)} with key {key}.")
    elif done.kept:
        say(f"Nothing to sign: every version of {ref} is signed by a trusted key already.")
    else:
        say(f"Nothing to sign: {ref} has no versions.")
    by_key: dict[str | None, list[str]] = {}
    for mv in done.kept:
        by_key.setdefault(mv.signing_key, []).append(mv.ref)
    for key, refs in by_key.items():
        say(f"Left {', '.join(refs)} as signed by key {key} (verified).")


@models.command("unalias")
@click.argument("name")
@click.argument("alias")
def models_unalias(name: str, alias: str) -> None:
    """Remove NAME@ALIAS."""
    import plinth

    version = plinth.delete_alias(name, alias)
    say(f"Removed {name}@{alias} (it pointed at version {version}).")


@models.command("predict", short_help="Predict with a model version on a file of inputs.")
@click.argument("ref")
@click.option(
    "--input", "-i", "input_path", required=True, help="CSV, Parquet, JSON or JSONL file of inputs."
)
@click.option(
    "--output", "-o", "output_path", default=None, help="Write predictions here (.csv/.parquet/.json)."
)
@proba_option
def models_predict(ref: str, input_path: str, output_path: str | None, proba: bool) -> None:
    """Predict with REF (NAME, NAME/VERSION or NAME@ALIAS) on a file, checked against the signature."""
    import numpy as np

    import plinth
    from plinth.registry.files import read_frame, write_predictions

    model = plinth.load_model(ref)
    frame = read_frame(input_path)
    predictions = model.predict_proba(frame) if proba else model.predict(frame)
    if output_path:
        write_predictions(predictions, output_path)
        say(f"Wrote {len(frame)} predictions of {model.model_version.ref} to {output_path}")
    else:
        console.file.write(json.dumps(np.asarray(predictions).tolist()) + "\n")
