"""The governance commands, one module per command: `plinth audit`, `plinth lineage`,
`plinth erase` and `plinth retention`."""

from plinth.cli.governance.audit import audit as audit
from plinth.cli.governance.erase import erase as erase
from plinth.cli.governance.lineage import lineage as lineage
from plinth.cli.governance.retention import retention as retention

__all__ = ["audit", "erase", "lineage", "retention"]
