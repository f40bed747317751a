"""The web UI's files: one page (`static/index.html`) and the ES modules, styles and vendored
libraries it loads, served by the team server (`plinth server`, `plinth ui`) at `/`.

The UI reads only through the server's API (`/api/v1`, views under `/api/v1/ui`); nothing here
runs in Python but the lookup of the folder.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"
"""The folder of the UI's files (index.html, app.js, lib/, pages/, vendor/)."""
