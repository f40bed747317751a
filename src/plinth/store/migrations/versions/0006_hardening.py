"""hardening: NaN metrics, 128-char request ids, flow drivers, keyed audit chain, signed models

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _metrics(nullable: bool) -> sa.Table:
    return sa.Table(
        "metrics",
        sa.MetaData(),
        sa.Column("run_key", sa.BigInteger(), primary_key=True),
        sa.Column("key_id", sa.BigInteger(), primary_key=True),
        sa.Column("step", sa.BigInteger(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=nullable),
        sqlite_with_rowid=False,
    )


def _latest_metrics(nullable: bool) -> sa.Table:
    return sa.Table(
        "latest_metrics",
        sa.MetaData(),
        sa.Column("run_key", sa.BigInteger(), primary_key=True),
        sa.Column("key_id", sa.BigInteger(), primary_key=True),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=nullable),
        sa.Index("ix_latest_key_value", "key_id", "value"),
        sqlite_with_rowid=False,
    )


def _set_value_nullable(nullable: bool) -> None:
    # copy_from keeps SQLite's WITHOUT ROWID, which reflection would drop
    for table in (_metrics(nullable), _latest_metrics(nullable)):
        with op.batch_alter_table(table.name, copy_from=table) as batch_op:
            batch_op.alter_column("value", existing_type=sa.Float(), nullable=nullable)


def upgrade() -> None:
    _set_value_nullable(True)
    if op.get_bind().dialect.name == "postgresql":  # NULL stands for NaN on every backend
        op.execute("UPDATE metrics SET value = NULL WHERE value = 'NaN'")
        op.execute("UPDATE latest_metrics SET value = NULL WHERE value = 'NaN'")
    with op.batch_alter_table("prediction_logs", schema=None) as batch_op:
        batch_op.alter_column(
            "request_id", existing_type=sa.String(length=32), type_=sa.String(length=128), nullable=False
        )
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("driver_host", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("driver_pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("driver_ns", sa.String(length=128), nullable=True))
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.Column("time_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("manifest_signature", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("signing_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("signing_key")
        batch_op.drop_column("manifest_signature")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("mac")
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.drop_column("driver_ns")
        batch_op.drop_column("driver_pid")
        batch_op.drop_column("driver_host")
    with op.batch_alter_table("prediction_logs", schema=None) as batch_op:
        batch_op.alter_column(
            "request_id", existing_type=sa.String(length=128), type_=sa.String(length=32), nullable=False
        )
    if op.get_bind().dialect.name == "postgresql":  # PostgreSQL holds NaN itself
        op.execute("UPDATE metrics SET value = 'NaN' WHERE value IS NULL")
        op.execute("UPDATE latest_metrics SET value = 'NaN' WHERE value IS NULL")
    op.execute("DELETE FROM metrics WHERE value IS NULL")
    op.execute("DELETE FROM latest_metrics WHERE value IS NULL")
    _set_value_nullable(False)
