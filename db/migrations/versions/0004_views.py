"""views: latest_units, head_wide, induction_mosaic, top_neurons, run_provenance

Their SQL follows the classifier registry and later columns, so it is not frozen here:
``db.migrate.upgrade`` (re)creates every view from ``db.views`` after the migrations have run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

VIEWS = ("latest_units", "head_wide", "induction_mosaic", "top_neurons", "run_provenance")


def upgrade() -> None:
    """Nothing: ``db.migrate`` creates the views once the schema is at head."""


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
