"""neurons v2: both tails of every neuron, its dominant sign, the first-position (massive
activation) reading, token selectivity against frequency-matched tokens, the effective output
direction's norm and the intervention check's overlap; neuron examples say which tail they hold

Rows stored before this revision keep NULL in the new neuron columns and tail "positive" (the
only tail version 1 kept); their unit's version is 1.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

VIEWS = ("run_provenance", "top_neurons", "induction_mosaic", "head_wide", "label_evidence", "latest_units")
NEURON_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("min", sa.Float()), ("frac_negative", sa.Float()), ("sign", sa.Integer()), ("typical_top", sa.Float()),
    ("first_max_abs", sa.Float()), ("direction_norm", sa.Float()), ("token_id", sa.Integer()),
    ("token_mean", sa.Float()), ("token_count", sa.Integer()), ("matched_mean", sa.Float()),
    ("check_overlap", sa.Integer()),
)  # fmt: skip


def upgrade() -> None:
    for name in VIEWS:  # SQLite cannot rebuild a table that views read; db.migrate makes them anew
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("DELETE FROM view_state")
    with op.batch_alter_table("neurons") as batch:
        for name, kind in NEURON_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    with op.batch_alter_table("neuron_examples") as batch:
        batch.add_column(sa.Column("tail", sa.String(10), nullable=False, server_default="positive"))
        batch.drop_constraint("uq_neuron_examples_neuron", type_="unique")
        batch.create_unique_constraint("uq_neuron_examples_tail", ["unit_id", "layer", "neuron", "tail"])


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("DELETE FROM view_state")
    op.execute("DELETE FROM neuron_examples WHERE tail != 'positive'")
    with op.batch_alter_table("neuron_examples") as batch:
        batch.drop_constraint("uq_neuron_examples_tail", type_="unique")
        batch.create_unique_constraint("uq_neuron_examples_neuron", ["unit_id", "layer", "neuron"])
        batch.drop_column("tail")
    with op.batch_alter_table("neurons") as batch:
        for name, _ in NEURON_COLUMNS:
            batch.drop_column(name)
