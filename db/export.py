"""``survey export``: every table and view to Parquet or CSV, read through the read-only engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine, inspect

from db.common.errors import SurveyError
from db.readonly import readonly_engine


def _flat(value: object) -> object:
    """JSON columns as JSON text, and (for CSV) bytes as hex, so every file format can hold them."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def table_names(engine: Engine, *, views: bool) -> list[str]:
    """Every table but Alembic's, and with ``views`` every view, sorted."""
    inspector = inspect(engine)
    names = [n for n in inspector.get_table_names() if n != "alembic_version"]
    return sorted(names + (inspector.get_view_names() if views else []))


def read_frame(connection: Connection, name: str) -> pd.DataFrame:
    """A table or view as a frame, its JSON columns as JSON text (bytes stay bytes)."""
    frame = pd.read_sql_table(name, connection)
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(_flat)
    return frame


def export_all(url: str | None, out: Path, fmt: str) -> Iterator[tuple[Path, int]]:
    """Write each table and view to ``out/<name>.<fmt>``; yield (path, rows). Binary columns
    become hex strings in CSV."""
    engine = readonly_engine(url)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SurveyError(f"cannot create {out}: {exc.strerror}") from None
    try:
        names = table_names(engine, views=True)
        with engine.connect() as connection:
            for name in names:
                frame = read_frame(connection, name)
                path = out / f"{name}.{fmt}"
                if fmt == "parquet":
                    frame.to_parquet(path, index=False)
                else:
                    for column in frame.columns:
                        frame[column] = frame[column].map(lambda v: v.hex() if isinstance(v, bytes) else v)
                    frame.to_csv(path, index=False)
                yield path, len(frame)
    finally:
        engine.dispose()
