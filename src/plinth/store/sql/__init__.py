"""`SqlStore`: the Store over SQLAlchemy — SQLite by default, PostgreSQL by URL.

One mixin per concept, each over the typed `SqlBase` (engine, transactions, caches, audit):
experiments, runs and their search, metrics, artifacts, logged models, datasets, lineage,
governance, the model registry, flows and serving.
"""

from __future__ import annotations

from plinth.store.base import Store
from plinth.store.sql.artifacts import SqlArtifacts
from plinth.store.sql.base import SqlBase, mapping_digest
from plinth.store.sql.datasets import SqlDatasets
from plinth.store.sql.flows import SqlFlows
from plinth.store.sql.governance import SqlGovernance
from plinth.store.sql.lineage import SqlLineage
from plinth.store.sql.logged_models import SqlLoggedModels
from plinth.store.sql.metrics import HISTORY_DTYPE, SqlMetrics
from plinth.store.sql.models import SqlModelRegistry
from plinth.store.sql.run_search import SqlRunSearch
from plinth.store.sql.runs import SqlRuns
from plinth.store.sql.serving import SqlServing

__all__ = ["HISTORY_DTYPE", "SqlBase", "SqlStore", "mapping_digest"]


class SqlStore(
    SqlRuns,
    SqlRunSearch,
    SqlMetrics,
    SqlArtifacts,
    SqlLoggedModels,
    SqlDatasets,
    SqlLineage,
    SqlGovernance,
    SqlModelRegistry,
    SqlFlows,
    SqlServing,
    Store,
):
    """The metadata store on a SQL database; migrations are applied when it opens.

    Args:
        url: SQLAlchemy URL, e.g. `sqlite:///.plinth/plinth.db` or
            `postgresql+psycopg://postgres@127.0.0.1:5432/plinth`.
        actor: who mutations are recorded as in the audit log.
        audit_key: the store's audit key, which keys the audit chain (`open_store` passes the one
            settings name); None leaves the chain unkeyed, which only suits throwaway stores.
    """

    def __repr__(self) -> str:
        return f"SqlStore({self.engine.url.render_as_string(hide_password=True)!r})"
