"""run search indexes: runs newest first across experiments

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a search over every experiment reads runs newest first from here instead of sorting them all
    op.create_index("ix_runs_start", "runs", ["start_ms", "key"])


def downgrade() -> None:
    op.drop_index("ix_runs_start", table_name="runs")
