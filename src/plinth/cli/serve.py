"""`plinth serve`: the online model server."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from typing import TYPE_CHECKING

import click

from plinth.cli.render import say

if TYPE_CHECKING:
    from plinth.core.settings import Settings
    from plinth.serving.options import ServeOptions


@click.command("serve", short_help="Serve registered models over HTTP (REST, OpenAPI, metrics).")
@click.argument("refs", nargs=-1)
@click.option(
    "--bundle",
    default=None,
    metavar="DIR",
    help="Serve the model version baked into DIR (as container images do), with no store; "
    "REFS default to its model.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, help="TCP port.")
@click.option("--workers", default=1, show_default=True, help="Server processes (each loads the models).")
@click.option(
    "--canary", default=None, help="NAME@ALIAS=PERCENT: a challenger answering that share of requests."
)
@click.option(
    "--shadow", default=None, help="NAME@ALIAS: gets a copy of every request; its answers are only logged."
)
@click.option(
    "--alias-poll",
    type=float,
    default=None,
    help="Seconds between checks for moved aliases [default: PLINTH_ALIAS_POLL_S, else 5].",
)
@click.option("--max-batch", default=64, show_default=True, help="Most rows predicted together.")
@click.option(
    "--max-wait-ms", default=0.0, show_default=True, help="Longest a request waits for its batch to fill."
)
@click.option("--no-batching", is_flag=True, help="Predict each request on its own.")
@click.option(
    "--batch",
    "batch_rules",
    multiple=True,
    help="Per-model batching: NAME=off, NAME=ROWS or NAME=ROWS/WAIT_MS (repeatable).",
)
@click.option("--max-body-mb", default=10.0, show_default=True, help="Largest request body accepted.")
@click.option("--allow-nan", is_flag=True, help="Accept NaN and infinity in numeric inputs.")
@click.option(
    "--auth",
    is_flag=True,
    help="Require a token (Authorization: Bearer) with the predict right in the model's workspace "
    "for predict and labels, and the read right for /metrics.",
)
def serve(
    refs: tuple[str, ...],
    host: str,
    port: int,
    workers: int,
    canary: str | None,
    shadow: str | None,
    alias_poll: float | None,
    max_batch: int,
    max_wait_ms: float,
    no_batching: bool,
    batch_rules: tuple[str, ...],
    max_body_mb: float,
    allow_nan: bool,
    auth: bool,
    bundle: str | None,
) -> None:
    """Serve REFS (NAME, NAME/VERSION or NAME@ALIAS) at POST /v1/models/NAME/predict.

    Aliases are watched: when one moves, the new version is loaded, checked on its input example
    and swapped in without failing a request. Also: /healthz, /readyz, /metrics (Prometheus),
    /v1/models, /docs and /openapi.json. Every prediction is logged for monitoring. A version
    whose signature is bad, or unsigned where PLINTH_REQUIRE_SIGNED=1, is never served.

    With --auth, callers send `Authorization: Bearer TOKEN` (from `plinth tokens create
    --role predictor`); the token's role in the model's workspace (PLINTH_WORKSPACE, else
    `default`) must allow predict. Tokens are checked against the store's identity tables, or
    asked of the team server when PLINTH_STORE is one; a check is reused for at most 5 s, so
    a revoked token is refused within 5 s. /healthz, /readyz, /docs and /openapi.json stay
    open; /v1/models needs the load right (viewer or predictor) and /metrics the read right
    (a viewer token for the scraper).

    With --bundle DIR, the model is read from a folder a version was baked into (a container
    image holds one at /opt/plinth/model), verified and signature-checked as from a store. REFS
    may then be left out (the baked model by name) and must name the baked version: NAME,
    NAME/VERSION or NAME@ALIAS with an alias it had when baked. No store is opened unless
    PLINTH_STORE names one; then prediction logs, labels and audit go there. Without it nothing
    is logged, labels are refused (503), and --auth is refused (tokens live in a store). A
    bundle never moves, so no alias is watched, and it takes no --canary or --shadow.
    """
    import uvicorn

    from plinth.core.settings import Settings
    from plinth.serving.main import CONFIG_ENV, config_json
    from plinth.serving.options import ServeOptions, parse_batch, parse_canary

    settings = Settings.from_env()
    options = ServeOptions(
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        batching=not no_batching,
        alias_poll_s=alias_poll if alias_poll is not None else settings.alias_poll_s,
        max_body_bytes=int(max_body_mb * 2**20),
        allow_nan=allow_nan,
        canary=parse_canary(canary) if canary else None,
        shadow=shadow,
        per_model=dict(parse_batch(rule) for rule in batch_rules),
        auth=auth,
        bundle=os.path.abspath(bundle) if bundle is not None else None,
    )
    refs = tuple(_checked_refs(refs, options, settings))
    os.environ[CONFIG_ENV] = config_json(list(refs), options)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="plinth-metrics-")
    fast = (
        importlib.util.find_spec("uvloop") is not None and importlib.util.find_spec("httptools") is not None
    )
    guarded = ", tokens required" if auth else ""
    plural = "s" if workers > 1 else ""
    baked = f" from the bundle {options.bundle}" if options.bundle else ""
    say(f"Serving {', '.join(refs)}{baked} on http://{host}:{port} ({workers} worker{plural}{guarded})")
    uvicorn.run(
        "plinth.serving.main:app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop" if fast else "auto",
        http="httptools" if fast else "auto",
        log_level="warning",
        timeout_graceful_shutdown=30,
    )


def _checked_refs(refs: tuple[str, ...], options: ServeOptions, settings: Settings) -> list[str]:
    """The references to serve, refused here with the reason rather than in each worker's startup."""
    from plinth.core.errors import ConfigError
    from plinth.registry.bundle import check_bundle
    from plinth.registry.models import check_signed

    if options.bundle is not None:
        if options.auth and settings.store_url is None:
            raise ConfigError(
                "--auth with --bundle needs PLINTH_STORE: tokens are checked against a store's "
                "identity tables, and a bundle has none. Set PLINTH_STORE to that store or team "
                "server, or serve without --auth."
            )
        return check_bundle(options.bundle, refs, settings)
    if not refs:
        raise click.UsageError("Name a model to serve (NAME, NAME/VERSION or NAME@ALIAS), or a --bundle DIR.")
    canary = [options.canary[0]] if options.canary else []
    for ref in [*refs, *canary, *([options.shadow] if options.shadow else [])]:
        check_signed(ref)
    return list(refs)
