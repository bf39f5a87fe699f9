"""nightly_jobs: every attempt of the nightly survey at one model

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nightly_jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("units_written", sa.Integer(), nullable=False),
        sa.Column("shard", sa.String(20), nullable=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_nightly_jobs_model", "nightly_jobs", ["model"])


def downgrade() -> None:
    op.drop_index("ix_nightly_jobs_model", "nightly_jobs")
    op.drop_table("nightly_jobs")
