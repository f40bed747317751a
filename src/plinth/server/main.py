"""Entry point uvicorn imports in each worker process (`plinth server --workers N`).

`plinth server` puts the config file's path in PLINTH_SERVER_CONFIG; each worker reads it and
the environment again, so every worker builds the same app.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from plinth.core.settings import Settings
from plinth.server.app import create_app
from plinth.server.config import ServerConfig

CONFIG_ENV = "PLINTH_SERVER_CONFIG"


def app() -> FastAPI:
    """Build the app from the config file and the environment `plinth server` set."""
    return create_app(ServerConfig.load(os.environ.get(CONFIG_ENV) or None, Settings.from_env()))
