"""plinth in a notebook: rich HTML for the objects plinth returns.

    %load_ext plinth.notebook          # or: import plinth.notebook; plinth.notebook.register()

Then a run, `search_runs` results, a metric history, a model version, a flow result, a dataset
version, drift / performance / operations results, the monitoring report, lineage and costs
display as tables and SVG charts (each an `<img>` of an SVG `data:` URI), with links to the web
UI when one is known (`plinth.notebook.links`). Nothing here runs a script, so outputs render in
untrusted notebooks; `search_runs` results sort by a click on a header with CSS alone.

Registering also turns on the live views (`plinth.notebook.live`): `run.live()` charts a run's
metrics as they are logged, `flow.run(...)` shows its steps advancing, and batch prediction
(and any other long loop with a terminal bar) shows a notebook progress bar.

The formatters are registered with IPython by type name: registering imports none of the
types, nor pandas or plotly; each drawing module loads the first time its type is displayed.
`core/` entities stay plain dataclasses with short text reprs.
"""

from __future__ import annotations

import sys
from typing import Any

from plinth.core import hooks
from plinth.core.errors import ConfigError
from plinth.notebook.formatters import TYPES, drawer, list_html, to_html
from plinth.notebook.live import new_cell
from plinth.tracking.progress import LIVE_VIEW, outside_notebooks

MIME = "text/html"

__all__ = ["load_ipython_extension", "register", "to_html", "unload_ipython_extension", "unregister"]


def register(ip: Any = None, *, ui_url: str | None = None) -> None:
    """Show plinth's objects as HTML in the IPython shell `ip` (default: the running one), and
    turn on the live views of runs, flows and progress bars.

    Calling it again is harmless: each type's formatter is replaced by the same one.

    Args:
        ip: an `IPython.core.interactiveshell.InteractiveShell`; default the running shell.
        ui_url: the web UI's address for links (e.g. 'http://127.0.0.1:5050' where `plinth ui`
            runs); default PLINTH_UI_URL, else the team server the store is, else no links.

    Raises:
        ConfigError: no IPython shell is running and none was given, or `ui_url` is not an
            http(s) address.

    Example:
        import plinth.notebook
        plinth.notebook.register(ui_url="http://127.0.0.1:5050")
    """
    shell = ip if ip is not None else _running_shell()
    if ui_url is not None:
        from plinth.notebook import links

        links.choose(ui_url)
    formatter = shell.display_formatter.formatters[MIME]
    for (module, name), target in TYPES.items():
        formatter.for_type_by_name(module, name, drawer(target))
    formatter.for_type_by_name("builtins", "list", list_html)
    hooks.provide(LIVE_VIEW, _live_view)
    shell.events.register("pre_run_cell", new_cell)


def unregister(ip: Any = None) -> None:
    """Stop drawing plinth's objects as HTML in `ip` (default: the running shell), and live views."""
    shell = ip if ip is not None else _running_shell()
    hooks.provide(LIVE_VIEW, outside_notebooks)
    if new_cell in shell.events.callbacks["pre_run_cell"]:
        shell.events.unregister("pre_run_cell", new_cell)
    formatter = shell.display_formatter.formatters[MIME]
    for module, name in [*TYPES, ("builtins", "list")]:
        formatter.deferred_printers.pop((module, name), None)
        for kind in list(formatter.type_printers):
            if (kind.__module__, kind.__qualname__) == (module, name):
                formatter.type_printers.pop(kind)


def load_ipython_extension(ip: Any) -> None:
    """`%load_ext plinth.notebook`: register the formatters in this shell."""
    register(ip)


def unload_ipython_extension(ip: Any) -> None:
    """`%unload_ext plinth.notebook`: remove them again."""
    unregister(ip)


def _live_view(kind: str, *args: Any) -> Any:
    """The `live_view` hook that tracking, flows and serving ask; its module loads on the first call."""
    from plinth.notebook.live import live_view

    return live_view(kind, *args)


def _running_shell() -> Any:
    """The running IPython shell; where IPython was never imported, none is running."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        raise ConfigError(
            "plinth.notebook.register() found no running IPython shell: call it inside a notebook "
            "(or `%load_ext plinth.notebook`), or pass the shell: register(get_ipython())."
        )
    return shell
