"""`plinth` command line: parse, call the library, render. Errors print one clear line."""

from __future__ import annotations

import sys

import click

from plinth import __version__
from plinth.cli import commands
from plinth.cli.render import err_console
from plinth.core.errors import PlinthError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="plinth")
def cli() -> None:
    """plinth: track experiments, version artifacts and datasets, on a laptop or a team server.

    Everything is stored under PLINTH_HOME (default ./.plinth): a SQLite database and a
    content-addressed artifact folder. Set PLINTH_STORE to a PostgreSQL URL and
    PLINTH_ARTIFACTS to an s3:// URL to share them with a team.
    """


for command in commands.ALL:
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `plinth` console script."""
    try:
        cli.main(args=argv, prog_name="plinth", standalone_mode=False)
    except PlinthError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return exc.exit_code
    except click.exceptions.Abort:
        err_console.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
