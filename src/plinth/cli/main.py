"""`plinth` command line: parse, call the library, render. Errors print one clear line.

Each top-level command lives in its own module (`plinth runs` in `cli/runs.py`, ...); this
module wires them into one group and turns errors into exit codes.
"""

from __future__ import annotations

import sys

import click

from plinth import __version__
from plinth.cli import render
from plinth.cli.artifacts import artifacts
from plinth.cli.build import build
from plinth.cli.cluster import cluster
from plinth.cli.costs import costs
from plinth.cli.datasets import datasets
from plinth.cli.db import db
from plinth.cli.demo import demo
from plinth.cli.deploy import deploy
from plinth.cli.env import env
from plinth.cli.errors import exit_code_for
from plinth.cli.experiments import experiments
from plinth.cli.flows import flows
from plinth.cli.gc import gc
from plinth.cli.governance import audit, erase, lineage, retention
from plinth.cli.import_cmd import import_group
from plinth.cli.login import login
from plinth.cli.logout import logout
from plinth.cli.members import members
from plinth.cli.models import models
from plinth.cli.monitor import labels, monitor
from plinth.cli.predict import predict
from plinth.cli.runs import runs
from plinth.cli.scheduler import scheduler
from plinth.cli.serve import serve
from plinth.cli.server import server
from plinth.cli.tokens import tokens
from plinth.cli.ui import ui
from plinth.cli.whoami import whoami
from plinth.cli.workspaces import workspaces
from plinth.core.errors import PlinthError, StoreError

EPILOG = """\b
Start here:
  plinth demo                          train 4 small models, tracked, then look around
  plinth runs list -o -metrics.acc     best runs first
  plinth runs show RUN_ID              one run in full
  plinth serve NAME@champion           serve a registered model over HTTP
  plinth monitor report NAME --html r.html   drift, performance and latency in one page

\b
Settings (environment variables):
  PLINTH_HOME         folder of the embedded default store (default ./.plinth)
  PLINTH_STORE        metadata database URL, e.g. postgresql+psycopg://user@host/db
  PLINTH_ARTIFACTS    artifact store URL, e.g. s3://bucket/prefix (default HOME/artifacts)
  PLINTH_S3_ENDPOINT_URL  endpoint of an S3-compatible store (MinIO, ...)
  PLINTH_USER         name recorded on runs and audit events (default: the OS user)
  PLINTH_HEARTBEAT_S  seconds between run heartbeats (default 10)
  PLINTH_FLUSH_S      longest wait before logged metrics are written (default 0.5)
  PLINTH_GPUS         GPUs flows may use: ids "0,1" or a count (default: discovered)
  PLINTH_SYSTEM_METRICS  sample CPU, memory and GPU use of runs (default 1; 0 turns it off)
  PLINTH_SAMPLE_S     seconds between those samples (default 5)
  PLINTH_PRICE_CPU_HOUR, PLINTH_PRICE_GPU_HOUR, PLINTH_PRICE_MEMORY_GB_HOUR
                      prices `plinth costs` bills allocated resource-hours at (default 0)
  PLINTH_ALIAS_POLL_S seconds between a server's checks of the aliases it serves (default 5)
  PLINTH_OPENTELEMETRY  servers run FastAPI's OpenTelemetry layer per request (default 0)
  RAY_ADDRESS         Ray cluster for --executor ray: auto, HOST:PORT or ray://HOST:10001
"""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EPILOG,
)
@click.version_option(__version__, "--version", "-V", prog_name="plinth")
def cli() -> None:
    """plinth: track experiments, version data and models, run flows, serve and govern them.

    Everything is stored under PLINTH_HOME (default ./.plinth): a SQLite database and a
    content-addressed artifact folder. Set PLINTH_STORE to a PostgreSQL URL and
    PLINTH_ARTIFACTS to an s3:// URL to share them with a team.

    Run `plinth COMMAND --help` for the options of a command.
    """


COMMANDS: tuple[click.Command, ...] = (
    experiments,
    runs,
    artifacts,
    datasets,
    models,
    serve,
    predict,
    flows,
    scheduler,
    lineage,
    audit,
    erase,
    retention,
    labels,
    monitor,
    env,
    build,
    deploy,
    gc,
    import_group,
    db,
    demo,
    costs,
    cluster,
    server,
    ui,
    workspaces,
    members,
    tokens,
    whoami,
    login,
    logout,
)
"""Every top-level command of `plinth`; `--help` lists them by name."""

for command in COMMANDS:
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `plinth` console script; returns the exit code.

    Exit codes (`plinth.cli.errors`): 0 ok, 1 error, 2 bad input or settings, 3 not found,
    4 integrity failure, 5 store failure, 130 interrupted.
    """
    render.fit_to_output()
    try:
        result = cli.main(args=argv, prog_name="plinth", standalone_mode=False)
    except PlinthError as exc:
        render.error(str(exc))
        return exit_code_for(exc)
    except click.exceptions.Abort:
        render.error("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except OSError as exc:
        render.error(_os_error_text(exc))
        return 1
    except Exception as exc:
        failure = _store_failure(exc)
        if failure is None:
            raise
        render.error(str(failure))
        return exit_code_for(failure)
    return result if isinstance(result, int) else 0


def _os_error_text(exc: OSError) -> str:
    """`No such file or directory: '/x'`, without the errno noise."""
    what = exc.strerror or str(exc)
    name = exc.filename if exc.filename is not None else None
    return f"{what}: {name!r}" if name is not None else what


def _store_failure(exc: Exception) -> StoreError | None:
    """A database driver error that escaped the store (e.g. server unreachable), as a StoreError."""
    from sqlalchemy.exc import SQLAlchemyError

    if not isinstance(exc, SQLAlchemyError):
        return None
    cause = getattr(exc, "orig", None) or exc
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return StoreError(f"The metadata store failed: {first} (check PLINTH_STORE and that the server is up).")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
