"""units, head scores and validations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("dataset_hash", sa.String(64), nullable=False),
        sa.Column("dataset", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("model_id", "kind", "name", "version", "dataset_hash", name="uq_units_key"),
    )
    op.create_index("ix_units_model_id", "units", ["model_id"])
    op.create_index("ix_units_run_id", "units", ["run_id"])
    op.create_table(
        "head_scores",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("units.id", ondelete="CASCADE"), nullable=False),
        sa.Column("layer", sa.Integer(), nullable=False),
        sa.Column("head", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("label", sa.Boolean(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("percentile", sa.Float(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.UniqueConstraint("unit_id", "layer", "head", name="uq_head_scores_head"),
    )
    op.create_index("ix_head_scores_unit_id", "head_scores", ["unit_id"])
    op.create_table(
        "validations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("units.id", ondelete="CASCADE"), nullable=False),
        sa.Column("method", sa.String(50), nullable=False),
        sa.Column("metric", sa.String(50), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("heads", sa.JSON(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("effect_top", sa.Float(), nullable=False),
        sa.Column("effect_random", sa.JSON(), nullable=False),
        sa.Column("effect_random_mean", sa.Float(), nullable=True),
        sa.Column("ratio", sa.Float(), nullable=True),
        sa.Column("supported", sa.Boolean(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.UniqueConstraint("unit_id", "method", name="uq_validations_method"),
    )
    op.create_index("ix_validations_unit_id", "validations", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_validations_unit_id", "validations")
    op.drop_table("validations")
    op.drop_index("ix_head_scores_unit_id", "head_scores")
    op.drop_table("head_scores")
    op.drop_index("ix_units_run_id", "units")
    op.drop_index("ix_units_model_id", "units")
    op.drop_table("units")
