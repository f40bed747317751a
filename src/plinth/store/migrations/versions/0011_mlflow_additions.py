"""MLflow's data: model version and model tags, where a version's files came from, logged models

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("source", sa.Text(), nullable=True))
    op.create_table(
        "model_version_tags",
        sa.Column("model_version_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"]),
        sa.PrimaryKeyConstraint("model_version_id", "key"),
    )
    op.create_table(
        "registered_model_tags",
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["name"], ["registered_models.name"]),
        sa.PrimaryKeyConstraint("name", "key"),
    )
    op.create_table(
        "logged_models",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("experiment_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("model_type", sa.String(length=256), nullable=False),
        sa.Column("source_run_id", sa.String(length=32), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    # a search walks one of these backwards: newest first within an experiment, a run or a name
    op.create_index("ix_logged_models_experiment", "logged_models", ["experiment_id", "created_ms"])
    op.create_index("ix_logged_models_run", "logged_models", ["run_id", "created_ms"])
    op.create_index("ix_logged_models_name", "logged_models", ["name", "created_ms"])
    op.create_table(
        "logged_model_tags",
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["logged_models.id"]),
        sa.PrimaryKeyConstraint("model_id", "key"),
    )


def downgrade() -> None:
    op.drop_table("logged_model_tags")
    op.drop_index("ix_logged_models_name", table_name="logged_models")
    op.drop_index("ix_logged_models_run", table_name="logged_models")
    op.drop_index("ix_logged_models_experiment", table_name="logged_models")
    op.drop_table("logged_models")
    op.drop_table("registered_model_tags")
    op.drop_table("model_version_tags")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("source")
