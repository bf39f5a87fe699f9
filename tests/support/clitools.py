"""Run the real CLI in-process, and fingerprint a database file."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from survey.cli import main


def run_cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["survey", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` on the SQLite file ``db``."""
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as connection:
        result = [tuple(r) for r in connection.execute(text(sql))]
    engine.dispose()
    return result


def db_bytes(db: Path) -> str:
    """A hash of the database file and its sidecars, so any write at all is seen."""
    digest = hashlib.sha256()
    for path in sorted(db.parent.glob(db.name + "*")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()
