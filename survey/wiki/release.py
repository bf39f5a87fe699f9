"""The release layout: what a built site publishes beside its pages, so that any static host
serves it as it is.

- ``db/``: the SQLite database prepared for HTTP range reads (4 KiB pages, VACUUMed, no WAL)
  and cut into fixed-size chunks ``survey.db.000``, ``survey.db.001`` …, with ``config.json``
  in sql.js-httpvfs's "chunked" format (its length, chunk size, name prefix, and the whole
  file's sha256). ``cat survey.db.* > survey.db`` gives the database back.
- ``parquet/``: one Parquet file per table (split in parts when one would pass the file limit),
  for pandas and DuckDB.
- ``SHA256SUMS``: a checksum for every file of the site (``sha256sum -c SHA256SUMS``).

No published file may be over ``FILE_LIMIT`` (25 MiB, the strictest common static-host cap).
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from db.export import read_frame, table_names
from db.readonly import readonly_engine
from survey.errors import SurveyError

FILE_LIMIT = 25 * 1024 * 1024
CHUNK_BYTES = 16 * 1024 * 1024  # a multiple of PAGE_SIZE, under FILE_LIMIT
PAGE_SIZE = 4096
DATABASE_FOLDER = "db"
PARQUET_FOLDER = "parquet"
CHECKSUMS = "SHA256SUMS"
SUFFIX_LENGTH = 4  # up to 10,000 chunks: 160 GB


@dataclass(frozen=True)
class ChunkedDatabase:
    """``config.json``: how a reader finds the chunks of the published database."""

    serverMode: str  # noqa: N815 -- sql.js-httpvfs's field names
    requestChunkSize: int  # noqa: N815
    databaseLengthBytes: int  # noqa: N815
    serverChunkSize: int  # noqa: N815
    urlPrefix: str  # noqa: N815
    suffixLength: int  # noqa: N815
    sha256: str


@dataclass(frozen=True)
class Release:
    """What a build publishes beside its pages: the chunked database and the Parquet files
    (paths relative to the site root, with their sizes in bytes)."""

    database: ChunkedDatabase
    chunks: list[str]
    parquet: list[tuple[str, int]]


def publish_release(source: Path, out: Path) -> Release:
    """The chunked database and the Parquet tables of ``source``, written under ``out``."""
    database = publish_database(source, out)
    chunks = sorted(p.relative_to(out).as_posix() for p in (out / DATABASE_FOLDER).glob("survey.db.*"))
    parquet = [(p.relative_to(out).as_posix(), p.stat().st_size) for p in publish_parquet(source, out)]
    return Release(database, chunks, parquet)


def publish_database(source: Path, out: Path, chunk_bytes: int = CHUNK_BYTES) -> ChunkedDatabase:
    """Snapshot ``source`` (the backup API), prepare it for range reads and write its chunks and
    ``config.json`` under ``out/db``."""
    if chunk_bytes % PAGE_SIZE:
        raise ValueError(f"chunk size {chunk_bytes} is not a multiple of the {PAGE_SIZE}-byte page")
    folder = out / DATABASE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    digest, length, index = hashlib.sha256(), 0, 0
    with tempfile.TemporaryDirectory(prefix="interp-survey-release-") as tmp:
        copy = Path(tmp) / "survey.db"
        _snapshot(source, copy)
        chunks = max(1, math.ceil(copy.stat().st_size / chunk_bytes))
        if chunks > 10**SUFFIX_LENGTH:
            raise SurveyError(f"the database needs {chunks} chunks, more than {10**SUFFIX_LENGTH} names")
        with copy.open("rb") as handle:
            while part := handle.read(chunk_bytes):
                (folder / f"survey.db.{index:0{SUFFIX_LENGTH}d}").write_bytes(part)
                digest.update(part)
                length, index = length + len(part), index + 1
    config = ChunkedDatabase(
        "chunked", PAGE_SIZE, length, chunk_bytes, "survey.db.", SUFFIX_LENGTH, digest.hexdigest()
    )
    (folder / "config.json").write_text(json.dumps(asdict(config), indent=1) + "\n", encoding="utf-8")
    return config


def _snapshot(source: Path, target: Path) -> None:
    """A consistent copy of ``source`` with 4 KiB pages, VACUUMed, in rollback-journal mode."""
    src, dst = sqlite3.connect(f"file:{source}?mode=ro", uri=True), sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE")
        dst.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        dst.execute("VACUUM")
    finally:
        src.close()
        dst.close()


def publish_parquet(source: Path, out: Path, limit: int = FILE_LIMIT) -> list[Path]:
    """One Parquet file per table of ``source`` under ``out/parquet`` (``<table>.parquet``, or
    ``<table>-0001.parquet`` … when one file would pass ``limit``), read as ``survey export``
    reads them; returns the files."""
    folder = out / PARQUET_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    engine = readonly_engine(f"sqlite:///{source}")
    try:
        with engine.connect() as connection:
            for table in table_names(engine, views=False):
                written += _write_parts(read_frame(connection, table), folder, table, limit)
    finally:
        engine.dispose()
    return written


def _write_parts(frame: pd.DataFrame, folder: Path, table: str, limit: int) -> list[Path]:
    """Write ``frame`` as one file, or as many equal row slices as it takes to stay under ``limit``."""
    whole = folder / f"{table}.parquet"
    frame.to_parquet(whole, index=False)
    if whole.stat().st_size <= limit:
        return [whole]
    parts = math.ceil(whole.stat().st_size / (limit * 0.8))
    whole.unlink()
    while True:
        rows = math.ceil(len(frame) / parts)
        paths = [folder / f"{table}-{i + 1:04d}.parquet" for i in range(parts)]
        for i, path in enumerate(paths):
            frame.iloc[i * rows : (i + 1) * rows].to_parquet(path, index=False)
        if all(path.stat().st_size <= limit for path in paths) or rows <= 1:
            return paths
        for path in paths:
            path.unlink()
        parts *= 2


def write_checksums(out: Path) -> Path:
    """``SHA256SUMS`` over every file under ``out`` (relative paths, sorted), in sha256sum's format."""
    lines = []
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != CHECKSUMS):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(out).as_posix()}\n")
    target = out / CHECKSUMS
    target.write_text("".join(lines), encoding="utf-8")
    return target


def oversized(out: Path, limit: int = FILE_LIMIT) -> list[tuple[str, int]]:
    """Files under ``out`` over ``limit`` bytes: (relative path, size), largest first."""
    found = [(p.relative_to(out).as_posix(), p.stat().st_size) for p in out.rglob("*") if p.is_file()]
    return sorted(((name, size) for name, size in found if size > limit), key=lambda item: -item[1])
