"""label statistics: head_scores gain an interval, a null, p and q values and the reason for
the label; validations gain the top effect's rank among the random draws, a z-score and the
minimum effect; units gain their statistics (the null's false-positive rate, seed stability)

Rows stored before this revision keep NULL in the new columns; their units' classifier
versions are older than any that fills them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

VIEWS = ("run_provenance", "top_neurons", "induction_mosaic", "head_wide", "label_evidence", "latest_units")
HEAD_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("reason", sa.String(20)), ("ci_low", sa.Float()), ("ci_high", sa.Float()), ("null_score", sa.Float()),
    ("null_percentile", sa.Float()), ("p_value", sa.Float()), ("q_value", sa.Float()),
)  # fmt: skip
VALIDATION_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("rank", sa.Integer()),
    ("z_score", sa.Float()),
    ("min_effect", sa.Float()),
)


def upgrade() -> None:
    for name in VIEWS:  # SQLite cannot rebuild a table that views read; db.migrate makes them anew
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("DELETE FROM view_state")  # so db.migrate makes the views again
    with op.batch_alter_table("units") as batch:
        batch.add_column(sa.Column("statistics", sa.JSON(), nullable=True))
    with op.batch_alter_table("head_scores") as batch:
        for name, kind in HEAD_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    with op.batch_alter_table("validations") as batch:
        for name, kind in VALIDATION_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("DELETE FROM view_state")
    with op.batch_alter_table("validations") as batch:
        for name, _ in VALIDATION_COLUMNS:
            batch.drop_column(name)
    with op.batch_alter_table("head_scores") as batch:
        for name, _ in HEAD_COLUMNS:
            batch.drop_column(name)
    with op.batch_alter_table("units") as batch:
        batch.drop_column("statistics")
