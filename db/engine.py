"""Engines and sessions for any SQLAlchemy URL; SQLite is tuned for several concurrent writers.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE``: a read-then-write transaction takes the
write lock up front instead of failing with "database is locked" when it tries to upgrade.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.common import settings
from db.common.errors import SurveyError

BUSY_TIMEOUT_MS = 30_000


def database_url(url: str | None) -> str:
    """The URL to use: the argument, else ``INTERP_SURVEY_DB``, else ``sqlite:///survey.db``."""
    return url or settings.value(settings.DB) or str(settings.DB.default)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below decide
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def parse_database_url(url: str) -> URL:
    """``url`` parsed; SurveyError saying what a good one looks like."""
    try:
        return make_url(url)
    except ArgumentError:
        raise SurveyError(
            f"bad database URL {url!r}: expected e.g. sqlite:///survey.db or postgresql://…"
        ) from None


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SurveyError for a malformed URL, a missing driver or a missing folder."""
    parsed = parse_database_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise SurveyError(f"bad database URL {shown!r}: folder {folder} does not exist")
    try:
        engine = create_engine(parsed)
    except (NoSuchModuleError, ImportError, ArgumentError) as exc:
        raise SurveyError(f"bad database URL {shown!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        _tune_sqlite(engine)
    return engine


def check_connection(engine: Engine) -> None:
    """Connect once, so a bad host, password or file fails before any work is done."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise SurveyError(
            f"cannot open database {engine.url.render_as_string(hide_password=True)}: {first}"
        ) from None


def open_database(url: str | None = None) -> Engine:
    """Connect to the database and migrate it to the newest schema."""
    from db.migrate import upgrade

    engine = make_engine(database_url(url))
    check_connection(engine)
    upgrade(engine)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (results are read after writing)."""
    return sessionmaker(engine, expire_on_commit=False)
