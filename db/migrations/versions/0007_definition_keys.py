"""definition keys: units.definition_hash (in the unit key) and units.definition; runs.code_dirty
and runs.libraries; view_state, so views made from the classifier registry are rebuilt when it
changes

Units stored before this revision get an empty definition hash: no current definition matches
it, so a rerun computes them again under a key that covers their whole definition.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD_VIEWS = ("run_provenance", "top_neurons", "induction_mosaic", "head_wide", "latest_units")
OLD_KEY = ["model_id", "kind", "name", "version", "dataset_hash"]


def upgrade() -> None:
    for name in OLD_VIEWS:  # SQLite cannot rebuild a table that views read; db.migrate makes them anew
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("units") as batch:
        batch.add_column(sa.Column("definition_hash", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("definition", sa.JSON(), nullable=True))
        batch.drop_constraint("uq_units_key", type_="unique")
        batch.create_unique_constraint("uq_units_key", [*OLD_KEY, "definition_hash"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("code_dirty", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("libraries", sa.JSON(), nullable=True))
    op.create_table("view_state", sa.Column("views_hash", sa.String(64), primary_key=True))


def downgrade() -> None:
    op.drop_table("view_state")
    for name in OLD_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("libraries")
        batch.drop_column("code_dirty")
    with op.batch_alter_table("units") as batch:
        batch.drop_constraint("uq_units_key", type_="unique")
        batch.create_unique_constraint("uq_units_key", OLD_KEY)
        batch.drop_column("definition")
        batch.drop_column("definition_hash")
