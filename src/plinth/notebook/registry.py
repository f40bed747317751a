"""Notebook views of the registry: a model version, a registered model, a list of versions.

A version shows its name and number, aliases, flavor, signature (inputs and outputs), tags,
description, the run it came from (linked) and the libraries it needs to load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plinth.core.entities import ModelVersion, RegisteredModel
from plinth.notebook import links
from plinth.notebook.html import (
    Table,
    clip,
    code,
    details,
    esc,
    head,
    heading,
    kv,
    link,
    muted,
    ui_link,
    when,
)
from plinth.notebook.style import document


def aliases_html(aliases: Sequence[str]) -> str:
    """Aliases as `@name` pills."""
    return " ".join(f'<span class="badge run">@{esc(a)}</span>' for a in aliases)


def model_version_html(mv: ModelVersion) -> str:
    """A model version: facts, signature, tags, description and where it came from."""
    title = head(
        f'<span class="title">{link(esc(mv.name), links.model_url(mv.name))} / version {mv.version}</span>',
        aliases_html(mv.aliases),
        f'<span class="badge muted">{esc(mv.flavor)}</span>',
        ui_link(links.model_version_url(mv.name, mv.version)),
    )
    run = link(code(mv.run_id), links.run_url(mv.run_id)) if mv.run_id else "none (registered from files)"
    facts = kv(
        [
            ("Model", esc(mv.ref)),
            ("Aliases", ", ".join(f"@{esc(a)}" for a in mv.aliases) or "none"),
            ("Flavor", esc(mv.flavor)),
            ("Created", f"{when(mv.created_ms)} by {esc(mv.creator)}"),
            ("From run", run),
            ("Source", esc(mv.source) if mv.source else ""),
            ("Digest", f'<code title="{esc(mv.digest)}">sha256 {esc(mv.digest[:12])}</code>'),
            ("Signed", f"yes, key {esc(mv.signing_key)}" if mv.manifest_signature else "no"),
            ("Description", clip(mv.description, 400) if mv.description else ""),
        ]
    )
    parts = [title, facts, signature_html(mv.signature), _tags(mv.tags), _environment(mv.environment)]
    return document("model-version", "".join(parts), model=mv.name, version=str(mv.version))


def signature_html(signature: dict[str, Any] | None) -> str:
    """The signature's inputs and outputs: a column table for a frame, shape and dtype for a tensor."""
    if not signature:
        return heading("Signature") + muted("None: inputs are passed to the model unchecked.")
    out = heading("Signature")
    for part in ("inputs", "outputs"):
        spec = signature.get(part)
        if spec:
            out += _spec(part, spec)
    return out


def _spec(part: str, spec: dict[str, Any]) -> str:
    if spec.get("type") == "tensor":
        shape = " x ".join("N" if d == -1 else str(d) for d in spec.get("shape", []))
        return f"<p>{esc(part)}: tensor {esc(shape)} of {code(str(spec.get('dtype')))}</p>"
    columns = spec.get("columns") or []
    table = Table((part[:-1] if part.endswith("s") else part, "dtype"), name=f"signature-{part}")
    for column in columns:
        table.add(
            [esc(column.get("name", "")), code(str(column.get("dtype", "")))], key=str(column.get("name", ""))
        )
    return f'<p class="muted">{esc(part)}: {len(columns)} columns</p>' + table.render(more="columns")


def _tags(tags: dict[str, str]) -> str:
    if not tags:
        return ""
    table = Table(("tag", "value"), name="tags")
    for key in sorted(tags, key=lambda k: (k.startswith("plinth."), k)):
        table.add([esc(key), clip(tags[key])], key=key)
    return heading(f"Tags ({len(tags)})") + table.render(more="tags")


def _environment(environment: dict[str, Any]) -> str:
    libraries = environment.get("libraries") or {}
    python = environment.get("python")
    if not libraries and not python:
        return ""
    table = Table(("library", "version"), name="libraries")
    for name in sorted(libraries):
        table.add([esc(name), esc(libraries[name])], key=name)
    summary = f"Needs Python {python}" if python else "Needs"
    summary += f" and {len(libraries)} libraries" if libraries else ""
    return details(summary, table.render(more="libraries"), kind="environment")


def registered_model_html(model: RegisteredModel) -> str:
    """A registered model: its latest version, aliases and tags."""
    aliases = sorted(model.aliases.items())
    title = head(
        f'<span class="title">{esc(model.name)}</span>',
        " ".join(f'<span class="badge run">@{esc(a)} → {v}</span>' for a, v in aliases),
        ui_link(links.model_url(model.name)),
    )
    facts = kv(
        [
            ("Latest version", str(model.latest_version) if model.latest_version else "none yet"),
            ("Created", when(model.created_ms)),
            ("Description", clip(model.description, 400) if model.description else ""),
        ]
    )
    return document("registered-model", title + facts + _tags(model.tags), model=model.name)


def model_versions_html(versions: Sequence[ModelVersion]) -> str:
    """Model versions in the order given: one row each, linked."""
    table = Table(
        ("model", "version", "aliases", "flavor", "created", "run"), numeric=frozenset({1}), name="models"
    )
    for mv in versions:
        run = link(code(mv.run_id), links.run_url(mv.run_id)) if mv.run_id else ""
        table.add(
            [
                link(esc(mv.name), links.model_url(mv.name)),
                link(str(mv.version), links.model_version_url(mv.name, mv.version)),
                aliases_html(mv.aliases),
                esc(mv.flavor),
                when(mv.created_ms),
                run,
            ],
            key=mv.ref,
        )
    title = head(f'<span class="title">{len(versions)} model versions</span>')
    return document("model-versions", title + table.render(more="versions"), count=str(len(versions)))
