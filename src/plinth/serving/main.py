"""Entry point uvicorn imports in each worker process (`plinth serve --workers N`)."""

from __future__ import annotations

import json
import os

from fastapi import FastAPI

from plinth.core.settings import Settings
from plinth.serving.app import create_app
from plinth.serving.options import ServeOptions

CONFIG_ENV = "PLINTH_SERVE_CONFIG"


def config_json(refs: list[str], options: ServeOptions) -> str:
    """The serving configuration as the JSON handed to worker processes."""
    return json.dumps({"refs": refs, "options": options.__dict__})


def app() -> FastAPI:
    """Build the app from the configuration `plinth serve` put in the environment."""
    config = json.loads(os.environ[CONFIG_ENV])
    options = dict(config["options"])
    if options.get("canary") is not None:
        options["canary"] = tuple(options["canary"])
    return create_app(config["refs"], Settings.from_env(), ServeOptions(**options))
