"""logit_lens: the per-layer logit-lens summary of a layer_summary unit

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "logit_lens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("units.id", ondelete="CASCADE"), nullable=False),
        sa.Column("layer", sa.Integer(), nullable=False),
        sa.Column("kl_to_final", sa.Float(), nullable=False),
        sa.Column("top1_agreement", sa.Float(), nullable=False),
        sa.Column("entropy", sa.Float(), nullable=False),
        sa.UniqueConstraint("unit_id", "layer", name="uq_logit_lens_layer"),
    )
    op.create_index("ix_logit_lens_unit_id", "logit_lens", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_logit_lens_unit_id", "logit_lens")
    op.drop_table("logit_lens")
