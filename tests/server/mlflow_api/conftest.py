"""What the MLflow API tests share: a team server over SQLite (a module that runs on both
backends, or needs a server of its own, defines `server` itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from team_servers import ThreadServer


@pytest.fixture
def server(server_factory: Any, tmp_path: Path) -> ThreadServer:
    started: ThreadServer = server_factory(f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}")
    return started
