"""`plinth demo`: a small real job on the embedded default store, end to end.

It sits above the CLI in the layers: it uses the capabilities and the CLI's rendering, and only
the `plinth demo` command imports it.
"""

from plinth.demo.tour import EXPERIMENT as EXPERIMENT
from plinth.demo.tour import run_demo as run_demo

__all__ = ["EXPERIMENT", "run_demo"]
