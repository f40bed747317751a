"""params and tags stored in run order (SQLite: WITHOUT ROWID tables keyed by run and key);
the index of numeric params holds numbers only

On SQLite a table with a composite primary key keeps its rows in a rowid b-tree and the key in a
second one, so reading a run's params walks the key's index and then looks each row up, and every
new param writes both. Keyed by (run_key, key) itself, the rows are the index: one b-tree to read
and to write. PostgreSQL has no such distinction: there only the index changes.

`ix_params_key_num` serves comparisons with a number, which no text param passes: it becomes a
partial index of the params that are numbers, so a text param is one index entry less to write.

The audit log loses `ix_audit_entity` (entity type, entity id), which no query reads since
`ix_audit_entity_id` (0010), and on SQLite its `seq` becomes the rowid (an INTEGER primary key)
instead of a second b-tree beside it: every write appends an event, two index entries fewer.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _params(lean: bool) -> sa.Table:
    return sa.Table(
        "params",
        sa.MetaData(),
        sa.Column(
            "run_key", sa.BigInteger(), sa.ForeignKey("runs.key", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("value_num", sa.Float()),
        sa.Index("ix_params_key_value", "key", "value"),
        sa.Index("ix_params_key_num", "key", "value_num", **_numbers_only(lean)),
        sqlite_with_rowid=not lean,
    )


def _tags(lean: bool) -> sa.Table:
    return sa.Table(
        "tags",
        sa.MetaData(),
        sa.Column(
            "run_key", sa.BigInteger(), sa.ForeignKey("runs.key", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Index("ix_tags_key_value", "key", "value"),
        sqlite_with_rowid=not lean,
    )


def _audit_events(lean: bool) -> sa.Table:
    seq = sa.Integer() if lean else sa.BigInteger()  # SQLite's INTEGER PRIMARY KEY is the rowid itself
    return sa.Table(
        "audit_events",
        sa.MetaData(),
        sa.Column("seq", seq, primary_key=True, autoincrement=False),
        sa.Column("time_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(128), nullable=False),
        sa.Column("before", sa.Text()),
        sa.Column("after", sa.Text()),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(64)),
        *([] if lean else [sa.Index("ix_audit_entity", "entity_type", "entity_id")]),
        sa.Index("ix_audit_entity_id", "entity_id", "seq"),
        sa.Index("ix_audit_action", "action", "seq"),
        sa.Index("ix_audit_actor", "actor", "seq"),
    )


def _numbers_only(partial: bool) -> dict[str, Any]:
    where = sa.text("value_num IS NOT NULL")
    return {"sqlite_where": where, "postgresql_where": where} if partial else {}


def _rebuild(lean: bool) -> None:
    """The tables as this revision has them (`lean`) or as the one before did."""
    if op.get_bind().dialect.name != "sqlite":
        op.drop_index("ix_params_key_num", table_name="params")
        op.create_index("ix_params_key_num", "params", ["key", "value_num"], **_numbers_only(lean))
        if lean:
            op.drop_index("ix_audit_entity", table_name="audit_events")
        else:
            op.create_index("ix_audit_entity", "audit_events", ["entity_type", "entity_id"])
        return
    for table in (_params(lean), _tags(lean), _audit_events(lean)):
        # the copy is made from `table`, whose options reflection would not give back
        with op.batch_alter_table(table.name, copy_from=table, recreate="always"):
            pass


def upgrade() -> None:
    _rebuild(lean=True)


def downgrade() -> None:
    _rebuild(lean=False)
