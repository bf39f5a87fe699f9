"""Run the real CLI in-process, and fingerprint a database file."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

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


def db_bytes(db: Path) -> str:
    """A hash of the database file and its sidecars, so any write at all is seen."""
    digest = hashlib.sha256()
    for path in sorted(db.parent.glob(db.name + "*")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()
