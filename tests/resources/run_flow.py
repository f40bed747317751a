"""Runs a flow of flows_example in this process (for killing the driver from a test)."""

import sys

sys.path.insert(0, sys.argv[1])
import flows_example

flows_example.stages.run(marker=sys.argv[2], fail_at=99)
