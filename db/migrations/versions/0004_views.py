"""views: latest_units, head_wide, induction_mosaic, top_neurons, run_provenance

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

from db.views import view_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for sql in view_sql().values():
        op.execute(sql)


def downgrade() -> None:
    for name in reversed(list(view_sql())):
        op.execute(f"DROP VIEW {name}")
