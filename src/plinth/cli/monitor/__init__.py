"""`plinth monitor` and `plinth labels`: the monitoring commands, one module per command group."""

from plinth.cli.monitor.group import monitor as monitor
from plinth.cli.monitor.labels import labels as labels

__all__ = ["labels", "monitor"]
