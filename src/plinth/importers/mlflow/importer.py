"""`import_mlflow`: one pass over an MLflow store, writing into plinth what plinth lacks.

In order: experiments (by name, with their tags), runs (with their points and files, and the
logged models they produced), logged models with no run to hold them, the datasets the runs
consumed, and with `models=True` the registry. Every step finds what an earlier import wrote by
the MLflow ids it carries as tags, so running it again adds only what is new and an import that
was stopped continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from plinth.core.entities import Experiment
from plinth.core.errors import InvalidInput, NotFound
from plinth.importers.mlflow.artifacts import Locator, Uploader
from plinth.importers.mlflow.context import IMPORTED_EXPERIMENT, ImportContext
from plinth.importers.mlflow.datasets import import_inputs
from plinth.importers.mlflow.logged import held_model_ids, import_orphans, split_models
from plinth.importers.mlflow.records import MlExperiment, Source
from plinth.importers.mlflow.registry import import_registry
from plinth.importers.mlflow.runs import plan_runs, write_runs
from plinth.importers.mlflow.summary import ImportSummary

if TYPE_CHECKING:
    from plinth.tracking.context import Backend


def open_source(url: str, *, token: str | None = None) -> Source:
    """The MLflow store `url` names: a server (http(s)://host:port) or its database (any SQLAlchemy URL).

    Raises:
        InvalidInput: not a URL either kind reads.
        NotFound: a SQLite file that does not exist.
        StoreError: the source cannot be reached or read.
        SchemaError: a database of an MLflow schema revision this plinth does not know.
    """
    scheme = urlparse(url).scheme
    if scheme in ("http", "https"):
        from plinth.importers.mlflow.source_http import HttpSource

        return HttpSource(url, token=token)
    from plinth.importers.mlflow.source_sql import SqlSource  # SQLAlchemy: loaded when first used

    return SqlSource(url)


def import_mlflow(
    be: Backend,
    source: str,
    *,
    artifacts_root: str | None = None,
    experiments: Sequence[str] = (),
    models: bool = False,
    token: str | None = None,
    show_progress: bool = True,
) -> ImportSummary:
    """Import an MLflow tracking store (and with `models` its registry) into `be`'s store.

    Args:
        be: plinth's stores to write into (its workspace is where everything goes).
        source: `sqlite:///mlflow.db`, `postgresql://user@host/db` (MLflow's database) or
            `http://host:5000` (an MLflow server).
        artifacts_root: where the artifacts lie on this machine, as MLflow lays them out under
            its artifact root (see `plinth.importers.mlflow.artifacts`); by default each run's
            recorded location, where it is local.
        experiments: only these experiments (names or MLflow ids); all when empty.
        models: also import registered models, their versions and aliases.
        token: a bearer token for an MLflow server that asks for one.
        show_progress: draw progress bars on a terminal.

    Returns:
        What was imported, what was there already, and what was left out and why.

    Raises:
        NotFound: an experiment named in `experiments` that the source does not have.
        StoreError, SchemaError, InvalidInput: see `open_source`.
    """
    opened = open_source(source, token=token)
    try:
        ctx = ImportContext(
            source=opened,
            store=be.store,
            blobs=be.blobs,
            locator=Locator(artifacts_root),
            uploader=Uploader(opened, be.blobs),
            summary=ImportSummary(opened.describe()),
            heartbeat_s=be.settings.heartbeat_s,
            show_progress=show_progress,
        )
        _import(ctx, be, experiments, models)
        return ctx.summary
    finally:
        opened.close()


def _import(ctx: ImportContext, be: Backend, names: Sequence[str], models: bool) -> None:
    if models:  # a signing key that cannot be used stops the import before it writes anything
        from plinth.registry.signing import load_signer

        ctx.signer = load_signer(be.settings)
    chosen = choose_experiments(ctx.source.experiments(), names)
    experiments = import_experiments(ctx, chosen)
    exp_ids = sorted(experiments)
    runs = ctx.source.runs(exp_ids) if exp_ids else []
    ids, works = plan_runs(ctx, runs, experiments)
    logged = ctx.source.logged_models(exp_ids) if exp_ids else []
    by_run, orphans = split_models(ctx, logged, held_model_ids(ctx, list(experiments.values())), works)
    for ml_run, produced in by_run.items():
        works[ml_run].models = produced
    write_runs(ctx, works, ids, exp_ids)
    import_orphans(ctx, orphans, experiments, ids)
    import_inputs(ctx, ctx.source.inputs(exp_ids) if exp_ids else [], ids)
    if models:
        import_registry(ctx, ids)


def choose_experiments(found: Sequence[MlExperiment], names: Sequence[str]) -> list[MlExperiment]:
    """The experiments to import: all, or those named (by name or MLflow id).

    Raises:
        NotFound: a name or id the source does not have, with the names it has.
    """
    if not names:
        return list(found)
    by_key = {e.name: e for e in found} | {e.id: e for e in found}
    unknown = [n for n in names if n not in by_key]
    if unknown:
        have = ", ".join(repr(e.name) for e in found[:20]) + (" ..." if len(found) > 20 else "")
        raise NotFound(
            f"The MLflow store has no active experiment {unknown[0]!r}; it has {have or 'none'}. "
            "Name experiments by name or MLflow id with --experiment."
        )
    return list({by_key[n].id: by_key[n] for n in names}.values())


def import_experiments(ctx: ImportContext, chosen: Sequence[MlExperiment]) -> dict[str, Experiment]:
    """Create the experiments plinth lacks (by name) and set their tags; MLflow id -> plinth experiment."""
    known = {e.name: e for e in ctx.store.list_experiments()}
    out: dict[str, Experiment] = {}
    for ml in chosen:
        tags = {**ml.tags, IMPORTED_EXPERIMENT: ml.id}
        try:
            exp = known.get(ml.name)
            if exp is None:
                exp = ctx.store.get_or_create_experiment(ml.name)
                ctx.summary.add("experiments", imported=1)
            else:
                ctx.summary.add("experiments", existing=1)
            if any(exp.tags.get(key) != value for key, value in tags.items()):
                ctx.store.set_experiment_tags(exp.id, tags)
        except InvalidInput as exc:
            ctx.summary.problem(
                f"MLflow experiment {ml.name!r} (id {ml.id}) and its runs not imported: {exc}"
            )
            continue
        out[ml.id] = exp
    return out
