"""What the server serves: a model reference, the version answering now, and how it moves.

A `Deployment` holds a `ServedVersion` (loaded model + its batcher). When the alias it serves
moves, the new version is loaded off the event loop, checked by predicting its input example,
and swapped in with one assignment; requests that already hold the old version finish on it.
A version that fails to load or to predict is not swapped in; the refusal is logged and audited
once per version record, and named in `refusal` (which `/readyz` reports) while it stands.
Swaps and failed swaps are audited where there is a store to audit to; an audit event the
store cannot take leaves the swap standing, and is counted and named in `audit_error` (which
`/readyz` reports). Versions are read from a `ModelSource`: a store, or a bundle folder.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.core.errors import ConfigError, StoreError
from plinth.core.refs import ModelRef
from plinth.core.settings import Settings
from plinth.registry.bundle import BundleSource
from plinth.registry.loaded import Model
from plinth.registry.models import load_version, resolve
from plinth.serving.batcher import Batcher
from plinth.serving.inputs import RequestParser
from plinth.serving.options import ServeOptions
from plinth.tracking.context import Backend, open_backend

if TYPE_CHECKING:
    from plinth.registry.source import ModelSource
    from plinth.store.base import Store

log = logging.getLogger("plinth.serving")


@dataclass
class ServedVersion:
    """One loaded model version with its request parser and batchers (labels and probabilities)."""

    model: Model
    parser: RequestParser
    batchers: dict[str, Batcher] = field(default_factory=dict)

    @property
    def version(self) -> int:
        """The version number."""
        return self.model.version

    def raw_predict(self, parts: list[Any], output: str) -> Any:
        """Predict the concatenated parts directly (no batching)."""
        data = self.parser.model_input(parts)
        raw = self.model.raw
        if output == "proba":
            return np.asarray(self.model.flavor.predict_proba(raw, data))
        return np.asarray(self.model.flavor.predict(raw, data))

    async def predict(self, part: Any, rows: int, output: str) -> Any:
        """The answer for one request's rows, batched with concurrent requests when enabled."""
        batcher = self.batchers.get(output)
        if batcher is None:
            return self.raw_predict([part], output)
        return await batcher.submit(part, rows)


def serve_version(
    model: Model, options: ServeOptions, observe: Callable[[int], None] | None
) -> ServedVersion:
    """Wrap a loaded model for serving (parser from its signature, batchers when enabled)."""
    spec = (model.signature or {}).get("inputs")
    served = ServedVersion(model, RequestParser(spec, max_rows=options.max_rows, allow_nan=options.allow_nan))
    batching, max_batch, max_wait_ms = options.batch_policy(model.name)
    if batching:
        outputs = ["predict", "proba"] if model.has_proba else ["predict"]
        for output in outputs:
            served.batchers[output] = Batcher(
                functools.partial(served.raw_predict, output=output), max_batch, max_wait_ms, observe
            )
    return served


def open_sources(settings: Settings, options: ServeOptions) -> tuple[ModelSource, Backend | None]:
    """Where models are read from, and the backend that takes logs, labels and audit events.

    Without a bundle both are the store in `settings`. With one, models come from the bundle
    and a backend is opened only when `settings.store_url` names a store (None otherwise).

    Raises:
        ConfigError: a bundle with `options.auth` and no store named (tokens live in a store).
        NotFound, IntegrityError: no bundle at `options.bundle`, or a corrupted one.
    """
    if options.bundle is None:
        be = open_backend(settings)
        return be, be
    if options.auth and settings.store_url is None:
        raise ConfigError(
            "Tokens are checked against a store's identity tables, and a bundle has none: set "
            "PLINTH_STORE to the store (or team server) that holds them, or serve without --auth."
        )
    source = BundleSource(options.bundle, settings)
    return source, open_backend(settings) if settings.store_url is not None else None


def check_version(model: Model) -> None:
    """Predict the model's input example; raise if it cannot (the version is not served then)."""
    example = model.input_example
    if example is not None:
        model.predict(example)


class Deployment:
    """A served reference (NAME, NAME/VERSION or NAME@ALIAS) and the version answering it.

    Args:
        source: where versions are resolved and read from.
        audit: the store swaps are audited in; None audits nothing.
    """

    def __init__(
        self,
        ref: str,
        source: ModelSource,
        options: ServeOptions,
        observe: Callable[[str, int, int], None],
        *,
        audit: Store | None = None,
        on_write_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.ref = ref
        self.model_ref = ModelRef.parse(ref)
        self.name, self.alias = self.model_ref.name, self.model_ref.alias
        self.source = source
        self.audit = audit
        self.options = options
        self.observe = observe
        self.on_write_failure = on_write_failure
        self.current: ServedVersion | None = None
        self.last_error: str | None = None
        self.audit_failures = 0
        self.audit_error: str | None = None
        self.refusal: str | None = None  # the version the reference moved to and was refused, and why
        self._refused: tuple[Any, ...] | None = None  # that version's record, to try it once

    @property
    def watches(self) -> bool:
        """True when the reference can move (an alias or 'latest')."""
        return self.model_ref.moves

    def load(self) -> ServedVersion:
        """Resolve, load, check and serve the version the reference names now (blocking)."""
        mv = resolve(self.ref, self.source)
        model = load_version(self.source, mv)
        check_version(model)
        served = serve_version(model, self.options, functools.partial(self.observe, self.name, mv.version))
        self.current = served
        return served

    async def refresh(self) -> str | None:
        """Swap in the version the reference names now, if it moved; returns what happened.

        A version that fails to load or to predict is refused once: logged, audited and named in
        `refusal` while the old version keeps serving. It is tried again when its record changes
        (signed, say) and not before. A store that cannot be read raises: that is no refusal.
        """
        mv = await asyncio.to_thread(resolve, self.ref, self.source)
        if self.current is not None and mv.version == self.current.version:
            self._refused, self.refusal = None, None
            return None
        target = (mv.version, mv.digest, mv.manifest_signature, mv.signing_key)
        if target == self._refused:
            return None
        old = self.current.version if self.current else None
        try:
            model = await asyncio.to_thread(load_version, self.source, mv)
            await asyncio.to_thread(check_version, model)
        except StoreError:
            raise
        except Exception as exc:  # the old version keeps serving
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._refused = target
            refusal = f"{self.ref} -> {mv.version} refused, still serving {old}: {self.last_error}"
            self.refusal = refusal[:1000]
            log.error(
                "%s moved to version %s, which failed its check and is not served: %s",
                self.ref,
                mv.version,
                self.last_error,
            )
            await self._audit("serving.swap_failed", old, f"{mv.version}: {self.last_error}"[:2000])
            return "failed"
        self.current = serve_version(
            model, self.options, functools.partial(self.observe, self.name, mv.version)
        )
        self._refused, self.refusal = None, None
        log.info("%s now serves version %s (was %s)", self.ref, mv.version, old)
        await self._audit("serving.swap", old, str(mv.version))
        return "swapped"

    async def _audit(self, action: str, old: int | None, after: str) -> None:
        """Audit a swap; when the store cannot take the event the swap stands, and it is reported."""
        if self.audit is None:
            return
        before = None if old is None else str(old)
        try:
            await asyncio.to_thread(self.audit.record_audit, action, "model", self.name, before, after)
        except Exception as exc:  # the version served is decided; only its record is missing
            self.audit_failures += 1
            self.audit_error = (
                f"{self.audit_failures} audit events of {self.ref} could not be recorded; last: {action} "
                f"{before} -> {after[:200]}: {type(exc).__name__}: {exc}"
            )
            log.error("%s", self.audit_error)
            if self.on_write_failure is not None:
                self.on_write_failure("audit")
