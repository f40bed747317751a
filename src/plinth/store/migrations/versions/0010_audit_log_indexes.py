"""audit log indexes: pages of the log filtered by action, actor or entity, newest first

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # each ends in seq, so a filtered page walks its index backwards and a count reads only it;
    # the log's distinct actions are a few seeks of the first
    op.create_index("ix_audit_action", "audit_events", ["action", "seq"])
    # LIKE 'alice (token %' uses it on PostgreSQL whatever the database's collation
    op.create_index(
        "ix_audit_actor", "audit_events", ["actor", "seq"], postgresql_ops={"actor": "varchar_pattern_ops"}
    )
    op.create_index("ix_audit_entity_id", "audit_events", ["entity_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_entity_id", table_name="audit_events")
    op.drop_index("ix_audit_actor", table_name="audit_events")
    op.drop_index("ix_audit_action", table_name="audit_events")
