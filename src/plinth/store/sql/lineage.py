"""Lineage edges between runs, datasets, models and flows, as a part of `SqlStore`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from sqlalchemy import Connection

from plinth.core import entities as e
from plinth.store.engine import driver_cursor, refuse_unstorable
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
        where: list[str] = []
        args: list[str] = []
        for end, node in (("src", src), ("dst", dst)):
            if node is not None:
                where.append(f"{end}_type = {self._placeholder} AND {end}_id = {self._placeholder}")
                args.extend(node)
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        return self._read("read lineage", lambda conn: self._edges(conn, condition, args))

    def run_edges(self, run_id: str) -> tuple[list[e.LineageEdge], list[e.LineageEdge]]:
        """The edges into the run and those out of it, in one read (what a run's page shows)."""
        p = self._placeholder
        condition = f" WHERE (dst_type = 'run' AND dst_id = {p}) OR (src_type = 'run' AND src_id = {p})"
        both = self._read("read lineage", lambda conn: self._edges(conn, condition, [run_id, run_id]))
        consumed = [edge for edge in both if edge.dst_type == "run" and edge.dst_id == run_id]
        produced = [edge for edge in both if edge.src_type == "run" and edge.src_id == run_id]
        return consumed, produced

    def _edges(self, conn: Connection, condition: str, args: Sequence[str]) -> list[e.LineageEdge]:
        refuse_unstorable(args)
        with driver_cursor(conn) as cursor:  # a run's page reads them on every view
            cursor.execute(_EDGES + condition + " ORDER BY id", tuple(args))
            rows = cursor.fetchall()
        return [
            e.LineageEdge(src_type, src_id, relation, dst_type, dst_id, created_ms, json.loads(attributes))
            for src_type, src_id, relation, dst_type, dst_id, created_ms, attributes in rows
        ]


_EDGES = "SELECT src_type, src_id, relation, dst_type, dst_id, created_ms, attributes FROM lineage_edges"


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
