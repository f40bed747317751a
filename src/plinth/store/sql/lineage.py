"""Lineage edges between runs, datasets, models and flows, as a part of `SqlStore`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from sqlalchemy import Connection, select

from plinth.core import entities as e
from plinth.store import schema as t
from plinth.store.sql.base import SqlBase


class SqlLineage(SqlBase):
    """Lineage methods of SqlStore: edges written once, read by either end."""

    def add_edge(self, edge: e.LineageEdge) -> None:
        self.add_edges([edge])

    def add_edges(self, edges: Sequence[e.LineageEdge]) -> None:
        if edges:
            self._write("record lineage edges", lambda conn: write_edges(self, conn, edges))

    def edges(
        self, *, src: tuple[str, str] | None = None, dst: tuple[str, str] | None = None
    ) -> list[e.LineageEdge]:
        def fetch(conn: Connection) -> list[e.LineageEdge]:
            le = t.lineage
            query = select(le).order_by(le.c.id)
            if src is not None:
                query = query.where(le.c.src_type == src[0], le.c.src_id == src[1])
            if dst is not None:
                query = query.where(le.c.dst_type == dst[0], le.c.dst_id == dst[1])
            return [
                e.LineageEdge(
                    r.src_type,
                    r.src_id,
                    r.relation,
                    r.dst_type,
                    r.dst_id,
                    r.created_ms,
                    json.loads(r.attributes),
                )
                for r in conn.execute(query)
            ]

        return self._read("read lineage", fetch)


def write_edges(store: SqlBase, conn: Connection, edges: Sequence[e.LineageEdge]) -> None:
    """Insert `edges` (those already there are kept) and audit them, on `conn`."""
    cols = ("src_type", "src_id", "relation", "dst_type", "dst_id", "created_ms", "attributes")
    rows = [
        (
            g.src_type,
            g.src_id,
            g.relation,
            g.dst_type,
            g.dst_id,
            g.created_ms,
            json.dumps(g.attributes, sort_keys=True),
        )
        for g in edges
    ]
    if not rows:
        return
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    first = edges[0]
    store._insert_ignore(conn, "lineage_edges", cols, rows)
    store._audit(
        conn, "lineage.add", first.dst_type, first.dst_id, after=f"{len(rows)} edges sha256:{digest}"
    )
