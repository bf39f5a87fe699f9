"""Read-only SQL for researchers: ``survey query`` and ``survey.open(...).query``.

Read-only by construction, not by inspecting the SQL:

- SQLite is opened with ``mode=ro``, and an authorizer allows only reads (SELECT, reading
  tables and views, functions, recursive CTEs, and introspection PRAGMAs such as table_info); ATTACH, writing
  PRAGMAs and every write are refused before they run.
- PostgreSQL runs every query inside ``SET TRANSACTION READ ONLY`` and rolls it back.

Only one statement runs per call; several are refused.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from db.common.errors import SurveyError
from db.engine import BUSY_TIMEOUT_MS, database_url, parse_database_url

# The PRAGMAs that only read; the browser's SQL page allows the same (site/assets/sql/sql-worker.js,
# READ_PRAGMAS: tests/unit/test_db.py ties the two lists).
READ_PRAGMAS = {
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "database_list", "collation_list", "function_list", "module_list",
    "pragma_list", "compile_options",
}  # fmt: skip
REFUSALS = ("not authorized", "authorization denied", "read-only", "readonly")
ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


def split_statements(sql: str) -> list[str]:
    """The statements in ``sql``, split on semicolons outside quotes and comments."""
    statements, current, i, n = [], [], 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = i + 1
            while end < n and not (sql[end] == ch and not sql.startswith(ch * 2, end)):
                end += 2 if sql.startswith(ch * 2, end) else 1
            current.append(sql[i : end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == ";":
            statements.append("".join(current))
            current, i = [], i + 1
        else:
            current.append(ch)
            i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def _authorizer(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    if action in ALLOWED:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in READ_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def readonly_engine(url: str | None) -> Engine:
    """An engine that cannot write: SQLite read-only with a read authorizer, or PostgreSQL with
    read-only transactions. SurveyError for a bad URL or a missing SQLite file."""
    parsed = parse_database_url(database_url(url))
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "").expanduser()
        if not path.is_file():
            raise SurveyError(f"no survey database at {path}; run `survey run` first or pass --db")
        engine = create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")

        @event.listens_for(engine, "connect")
        def _readonly(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            dbapi_connection.set_authorizer(_authorizer)

        return engine
    try:
        engine = create_engine(parsed)
    except (NoSuchModuleError, ImportError, ArgumentError) as exc:
        raise SurveyError(f"bad database URL {shown!r}: {exc}") from None

    @event.listens_for(engine, "begin")
    def _read_only_transaction(connection: Any) -> None:
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")

    return engine


def run_query(url: str | None, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only statement; return its column names and rows. SurveyError for several
    statements, a statement that would write, or any SQL error."""
    statements = split_statements(sql)
    if len(statements) != 1:
        raise SurveyError(f"one SQL statement at a time, got {len(statements)}")
    engine = readonly_engine(url)
    try:
        with engine.connect() as connection:
            result = connection.exec_driver_sql(statements[0])
            columns = list(result.keys()) if result.returns_rows else []
            rows = [tuple(row) for row in result] if result.returns_rows else []
            connection.rollback()
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        if any(word in reason for word in REFUSALS):
            raise SurveyError(f"refused: the survey database is read-only here ({reason})") from None
        raise SurveyError(f"query failed: {reason}") from None
    finally:
        engine.dispose()
    return columns, rows
