"""Bring what other tools recorded into plinth: `plinth import mlflow` (`plinth.importers.mlflow`).

An importer reads another tool's store as that tool wrote it and writes plinth entities through
the `Store` and `BlobStore` interfaces, like any other capability; the original ids travel as
tags, so importing again adds only what is new.
"""
