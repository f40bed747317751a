"""`plinth import mlflow`: an MLflow tracking store and registry, brought into plinth.

Reads MLflow's database (SQLite, PostgreSQL, ...) or its server's REST API and writes
experiments, runs with every metric point, artifacts, datasets, logged models and registered
models into plinth's store (`import_mlflow`). See `importer.py` for the order of the steps and
`runs.py` for how an interrupted import continues.
"""

from plinth.importers.mlflow.importer import import_mlflow as import_mlflow
from plinth.importers.mlflow.importer import open_source as open_source
from plinth.importers.mlflow.summary import ImportSummary as ImportSummary

__all__ = ["ImportSummary", "import_mlflow", "open_source"]
