"""The release layout: what a built site publishes beside its pages, so that any static host
serves it as it is.

- ``db/``: the SQLite database prepared for HTTP range reads (its views stored as tables with
  an index for each example question, 4 KiB pages, VACUUMed, no WAL) and cut into fixed-size
  chunks ``survey.db.000``, ``survey.db.001`` …, with ``config.json`` in sql.js-httpvfs's
  "chunked" format (its length, chunk size, name prefix, and the whole file's sha256).
  ``cat survey.db.* > survey.db`` gives the database back.
- ``parquet/``: one Parquet file per table (split in parts when one would pass the file limit),
  for pandas and DuckDB.
- ``SHA256SUMS``: a checksum for every file of the site (``sha256sum -c SHA256SUMS``).

No published file may be over ``FILE_LIMIT`` (25 MiB, the strictest common static-host cap).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from db.common.errors import SurveyError
from db.export import read_frame, table_names
from db.readonly import readonly_engine
from db.views import materialize_views

FILE_LIMIT = 25 * 1024 * 1024
CHUNK_BYTES = 16 * 1024 * 1024  # a multiple of PAGE_SIZE, under FILE_LIMIT
PAGE_SIZE = 4096
DATABASE_FOLDER = "db"
PARQUET_FOLDER = "parquet"
CHECKSUMS = "SHA256SUMS"
BUILD_STATE = ".interp-survey"  # files and folders named so are the builder's, not published data
SUFFIX_LENGTH = 4  # up to 10,000 chunks: 160 GB
SMALL_TABLE = 100_000  # rows: a table this small is cheaper to export than to compare


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
    tables: dict[str, list[int]]  # see table_fingerprints


def publish_release(source: Path, out: Path, previous: Path | None = None,
                    previous_tables: dict[str, list[int]] | None = None) -> Release:  # fmt: skip
    """The chunked database and the Parquet tables of ``source``, written under ``out``; the
    Parquet files of tables unchanged since ``previous_tables`` are taken from the release in
    ``previous``."""
    database = publish_database(source, out)
    chunks = sorted(p.relative_to(out).as_posix() for p in (out / DATABASE_FOLDER).glob("survey.db.*"))
    tables = table_fingerprints(source)
    unchanged = {name for name, found in tables.items() if (previous_tables or {}).get(name) == found}
    reuse = None if previous is None else previous / PARQUET_FOLDER
    files = publish_parquet(source, out, reuse=reuse, unchanged=unchanged)
    return Release(
        database, chunks, [(p.relative_to(out).as_posix(), p.stat().st_size) for p in files], tables
    )


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
    """A consistent copy of ``source`` with its views stored as indexed tables (see
    :func:`db.views.materialize_views`) and 4 KiB pages, compact, in rollback-journal mode."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        src.execute("VACUUM INTO ?", (str(target),))  # one pass: a compact copy
    finally:
        src.close()
    dst = sqlite3.connect(target)
    try:
        dst.execute("PRAGMA journal_mode = DELETE")
        materialize_views(dst)
        if dst.execute("PRAGMA page_size").fetchone()[0] != PAGE_SIZE:
            dst.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            dst.execute("VACUUM")
    finally:
        dst.close()


def publish_parquet(
    source: Path, out: Path, limit: int = FILE_LIMIT, *, reuse: Path | None = None,
    unchanged: frozenset[str] | set[str] = frozenset(),
) -> list[Path]:  # fmt: skip
    """One Parquet file per table of ``source`` under ``out/parquet`` (``<table>.parquet``, or
    ``<table>-0001.parquet`` … when one file would pass ``limit``), read as ``survey export``
    reads them; returns the files. The ``unchanged`` tables' files are linked from the folder
    ``reuse`` (a previous release's ``parquet/``) when it has them."""
    folder = out / PARQUET_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    engine = readonly_engine(f"sqlite:///{source}")
    try:
        with engine.connect() as connection:
            for table in table_names(engine, views=False):
                previous = _parts(reuse, table) if reuse is not None and table in unchanged else []
                for path in previous:
                    _link(path, folder / path.name)
                written += [folder / p.name for p in previous] or _write_parts(
                    read_frame(connection, table), folder, table, limit
                )
    finally:
        engine.dispose()
    return written


def _link(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source``, or a copy (same time) across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _parts(folder: Path, table: str) -> list[Path]:
    """A table's Parquet file or parts in ``folder`` (none: not there)."""
    whole = folder / f"{table}.parquet"
    return [whole] if whole.is_file() else sorted(folder.glob(f"{table}-[0-9][0-9][0-9][0-9].parquet"))


def table_fingerprints(source: Path) -> dict[str, list[int]]:
    """Each large table's row count and largest rowid: the survey only appends to them (rows of a
    replaced unit go and new ones come with higher rowids), so equal numbers mean an equal table.
    Tables under ``SMALL_TABLE`` rows are left out: they are always written again."""
    found: dict[str, list[int]] = {}
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for name in names:
            count, largest = db.execute(f'SELECT count(*), coalesce(max(rowid), 0) FROM "{name}"').fetchone()
            if count >= SMALL_TABLE:
                found[name] = [count, largest]
    return found


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


def write_checksums(out: Path, known: dict[str, list[Any]] | None = None) -> dict[str, list[Any]]:
    """``SHA256SUMS`` over every file under ``out`` (relative paths, sorted), in sha256sum's format.
    ``known`` maps a path to [size, mtime_ns, digest] from the last build: a file with the same size
    and time is not read again. Returns that map for this build."""
    lines, seen = [], {}
    published = (p for p in out.rglob("*") if p.is_file() and not is_build_state(p.relative_to(out)))
    for path in sorted(p for p in published if p.name != CHECKSUMS):
        name, stat = path.relative_to(out).as_posix(), path.stat()
        before = (known or {}).get(name)
        if before is not None and before[:2] == [stat.st_size, stat.st_mtime_ns]:
            digest = before[2]
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        seen[name] = [stat.st_size, stat.st_mtime_ns, digest]
        lines.append(f"{digest}  {name}\n")
    (out / CHECKSUMS).write_text("".join(lines), encoding="utf-8")
    return seen


def is_build_state(path: Path) -> bool:
    """Whether a path in the site is the builder's own (its manifest, marker, search stand-ins)."""
    return path.parts[0].startswith(BUILD_STATE)


def oversized(out: Path, limit: int = FILE_LIMIT) -> list[tuple[str, int]]:
    """Files under ``out`` over ``limit`` bytes: (relative path, size), largest first."""
    found = [(p.relative_to(out).as_posix(), p.stat().st_size) for p in out.rglob("*") if p.is_file()]
    return sorted(((name, size) for name, size in found if size > limit), key=lambda item: -item[1])
