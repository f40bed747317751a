"""Entry point uvicorn imports in each worker process (`plinth server --workers N`).

`plinth server` puts the config file's path in PLINTH_SERVER_CONFIG; each worker reads it and
the environment again, so every worker builds the same app.
"""

from __future__ import annotations

import dataclasses
import os

from fastapi import FastAPI

from plinth.core.settings import Settings
from plinth.server.app import create_app
from plinth.server.config import ServerConfig

CONFIG_ENV = "PLINTH_SERVER_CONFIG"
ACCESS_LOG_ENV = "PLINTH_SERVER_ACCESS_LOG"
"""Set to 1 by `plinth server` when each worker logs its requests."""


def app() -> FastAPI:
    """Build the app from the config file and the environment `plinth server` set."""
    config = ServerConfig.load(os.environ.get(CONFIG_ENV) or None, Settings.from_env())
    return create_app(dataclasses.replace(config, access_log=os.environ.get(ACCESS_LOG_ENV) == "1"))
