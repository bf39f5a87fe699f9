"""Run the Alembic migrations programmatically against an engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from db.views import rebuild_views, views_current

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config pointing at this package's migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest migration."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


MIGRATION_LOCK = 7_262_730  # PostgreSQL advisory lock key: one migrating process at a time


def upgrade(engine: Engine) -> None:
    """Migrate to head and rebuild the views when their SQL changed; a database already at head
    with current views is not written to.

    Several processes may open a new database at once (sharded nightly runs): the migration
    transaction takes a lock first (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), and
    Alembic reads the revision inside it, so the later ones find the schema done.
    """
    if current_revision(engine) == head_revision() and _views_current(engine):
        return
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        if not views_current(connection):
            rebuild_views(connection)


def _views_current(engine: Engine) -> bool:
    with engine.connect() as connection:
        return views_current(connection)
