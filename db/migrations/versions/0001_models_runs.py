"""models and runs

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("revision", sa.String(200), nullable=True),
        sa.Column("resolved_sha", sa.String(64), nullable=False),
        sa.Column("family", sa.String(100), nullable=True),
        sa.Column("architecture", sa.String(50), nullable=False),
        sa.Column("n_layers", sa.Integer(), nullable=False),
        sa.Column("n_heads", sa.Integer(), nullable=False),
        sa.Column("n_kv_heads", sa.Integer(), nullable=False),
        sa.Column("d_model", sa.Integer(), nullable=False),
        sa.Column("d_head", sa.Integer(), nullable=False),
        sa.Column("d_mlp", sa.Integer(), nullable=False),
        sa.Column("d_vocab", sa.Integer(), nullable=False),
        sa.Column("n_params", sa.BigInteger(), nullable=False),
        sa.Column("parallel_attn_mlp", sa.Boolean(), nullable=False),
        sa.Column("quantization", sa.Text(), nullable=True),
        sa.Column("bos_token", sa.String(100), nullable=True),
        sa.Column("license", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", "source", "resolved_sha", name="uq_models_identity"),
    )
    op.create_index("ix_models_name", "models", ["name"])
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("code_version", sa.String(100), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("device", sa.String(50), nullable=False),
        sa.Column("dtype", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_runs_model_id", "runs", ["model_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_model_id", "runs")
    op.drop_table("runs")
    op.drop_index("ix_models_name", "models")
    op.drop_table("models")
