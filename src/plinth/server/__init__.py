"""The team server (`plinth server`): the REST API over the stores, with identity and roles.

`create_app(config)` builds the ASGI app; `ServerConfig.load(path, settings)` reads its
configuration. Import costs FastAPI and the database drivers: `import plinth` never does.
"""

from __future__ import annotations

from plinth.server.app import create_app
from plinth.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
