"""Schema, migrations and SQLite concurrency settings."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from db.engine import make_engine, open_database
from db.migrate import current_revision, head_revision
from db.schema import Base
from survey.errors import SurveyError


def test_migrations_build_exactly_the_schema(backend_url: str) -> None:
    engine = open_database(backend_url)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 's.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 10_000


def test_concurrent_read_then_write_transactions_never_fail(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 's.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE counter (n INTEGER)"))
        connection.execute(text("INSERT INTO counter VALUES (0)"))
    errors: list[BaseException] = []

    def writer() -> None:
        for _ in range(25):
            try:
                with engine.begin() as connection:  # BEGIN IMMEDIATE: read, then write
                    n = connection.execute(text("SELECT n FROM counter")).scalar_one()
                    connection.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM counter")).scalar_one() == 100  # no lost update


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "bad database URL 'not a url'"),
        ("nosuchdialect://x/y", "bad database URL"),
        ("sqlite:////no/such/folder/s.db", "folder /no/such/folder does not exist"),
        ("postgresql+psycopg2://u:secret@127.0.0.1:1/db", "bad database URL|cannot open database"),
    ],
)
def test_bad_urls_are_one_clear_line(url: str, message: str) -> None:
    with pytest.raises(SurveyError, match=message) as info:
        open_database(url)
    assert "\n" not in str(info.value) and "secret" not in str(info.value)


def test_make_engine_accepts_memory_sqlite() -> None:
    with make_engine("sqlite://").connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
