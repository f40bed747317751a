"""Serving: putting registered models to work (batch inference over large files, online endpoints).

`create_app(refs, settings, options)` builds the online server (an ASGI app);
`batch_predict(...)` scores files. Both load their dependencies only when used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServeOptions", "batch_predict", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from plinth.serving.app import create_app

        return create_app
    if name == "ServeOptions":
        from plinth.serving.options import ServeOptions

        return ServeOptions
    if name == "batch_predict":
        from plinth.serving.batch import batch_predict

        return batch_predict
    raise AttributeError(f"module 'plinth.serving' has no attribute {name!r}")
