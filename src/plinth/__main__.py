"""`python -m plinth ...` runs the `plinth` command line."""

import sys

from plinth.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
