"""prediction segments: logged inputs and outputs stored as columnar segments

Requests logged before keep their JSON in `prediction_logs` and are read from there, and are
moved into segments by the next compaction of their model (which needs the artifact store, so
it is not done here).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_UNSEGMENTED = sa.text("part_id IS NULL")


def upgrade() -> None:
    op.create_table(
        "prediction_segments",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    op.create_index("ix_segments_model_time", "prediction_segments", ["model", "start_ms", "end_ms"])
    op.create_table(
        "prediction_parts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("segment_id", sa.BigInteger(), nullable=False),
        sa.Column("base", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_parts_segment", "prediction_parts", ["segment_id"])
    op.create_table(
        "prediction_segment_blobs",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("time_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    with op.batch_alter_table("prediction_logs", schema=None) as batch_op:
        batch_op.alter_column("inputs", existing_type=sa.Text(), nullable=True)
        batch_op.alter_column("outputs", existing_type=sa.Text(), nullable=True)
        batch_op.add_column(sa.Column("part_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("part_row", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "ix_predictions_unsegmented",
            ["model", "time_ms"],
            unique=False,
            sqlite_where=_UNSEGMENTED,
            postgresql_where=_UNSEGMENTED,
        )


def downgrade() -> None:
    """Back to JSON rows only: possible while no request has been moved into a segment."""
    bind = op.get_bind()
    moved = bind.execute(sa.text("SELECT count(*) FROM prediction_logs WHERE part_id IS NOT NULL")).scalar()
    if moved:
        raise RuntimeError(
            f"{moved} prediction logs are held in segments; the schema before 0007 cannot hold them."
        )
    with op.batch_alter_table("prediction_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_predictions_unsegmented")
        batch_op.drop_column("part_row")
        batch_op.drop_column("part_id")
        batch_op.alter_column("outputs", existing_type=sa.Text(), nullable=False)
        batch_op.alter_column("inputs", existing_type=sa.Text(), nullable=False)
    op.drop_table("prediction_segment_blobs")
    op.drop_index("ix_parts_segment", table_name="prediction_parts")
    op.drop_table("prediction_parts")
    op.drop_index("ix_segments_model_time", table_name="prediction_segments")
    op.drop_table("prediction_segments")
