"""Incremental builds: a fingerprint of everything a model's layer and head pages show, kept in a
manifest in the site folder, so that a rebuild renders only the models whose fingerprint changed.

A model's fingerprint covers its units (key, statistics, validations), its row, the build
settings, the code version, the templates and the theme's shell. Its heads' most similar heads come
from every model, so they are not in its pages but in a script beside them, written at every build
(:mod:`survey.wiki.nearby`). Everything else (the front pages, the model pages, the release
files, the search index) is rebuilt every time, so a full build and an incremental one write the
same files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from db.common.provenance import code_version
from survey.wiki.pages import SiteModel
from survey.wiki.resources import TEMPLATES

MANIFEST = ".interp-survey-manifest.json"


@dataclass(frozen=True)
class Manifest:
    """What the last build into a folder knew: each model's fingerprint (by slug), each large
    table's (see :func:`survey.wiki.release.table_fingerprints`), and each file's size, time and
    sha256 (see :func:`survey.wiki.release.write_checksums`)."""

    models: dict[str, str] = field(default_factory=dict)
    tables: dict[str, list[int]] = field(default_factory=dict)
    files: dict[str, list[Any]] = field(default_factory=dict)


def read_manifest(out: Path) -> Manifest:
    """The manifest of the build in ``out`` (empty: none, or unreadable)."""
    try:
        found = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        return Manifest(dict(found["models"]), dict(found["tables"]), dict(found["files"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Manifest()


def write_manifest(out: Path, manifest: Manifest) -> None:
    (out / MANIFEST).write_text(json.dumps(asdict(manifest), sort_keys=True), encoding="utf-8")


def fingerprints(
    conn: Connection, models: list[SiteModel], settings: dict[str, Any], shell: str
) -> dict[str, str]:
    """Each model's fingerprint, by slug."""
    common = _digest([code_version(), _templates_digest(), settings, _digest([shell])])
    return {m.slug: _digest([common, _unit_rows(conn, m.record.id), m.record.row]) for m in models}


def _unit_rows(conn: Connection, model_id: int) -> list[list[Any]]:
    """What identifies the model's stored results: every unit's key and statistics, and how many
    validations it has."""
    rows = conn.execute(
        text(
            """SELECT u.id, u.kind, u.name, u.version, u.dataset_hash, u.definition_hash, u.statistics,
            (SELECT count(*) FROM validations v WHERE v.unit_id = u.id),
            (SELECT max(v.id) FROM validations v WHERE v.unit_id = u.id)
            FROM units u WHERE u.model_id = :model ORDER BY u.id"""
        ),
        {"model": model_id},
    )
    return [list(row) for row in rows]


def _templates_digest() -> str:
    return _digest([[p.name, p.read_text(encoding="utf-8")] for p in sorted(TEMPLATES.glob("*.j2"))])


def _digest(parts: list[Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def replace_site(root: Path, built: list[Path], kept: Iterable[str], *, leave: Iterable[str] = ()) -> None:
    """Make ``root`` what the ``built`` folders hold, keeping the layer and head pages of the
    ``kept`` model slugs that ``root`` already has (``built`` has none of those), and the entries
    named in ``leave``."""
    keep, left = set(kept), {"models", *leave}
    for entry in list(root.iterdir()) if root.is_dir() else []:
        if entry.name not in left:
            _remove(entry)
    models = root / "models"
    for folder in list(models.iterdir()) if models.is_dir() else []:
        for entry in list(folder.iterdir()) if folder.name in keep and folder.is_dir() else [folder]:
            if not (folder.name in keep and entry.is_dir() and entry.name.startswith("layer-")):
                _remove(entry)
    for folder in built:
        _merge(folder, root)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _merge(source: Path, target: Path) -> None:
    """Move every file of ``source`` into ``target``, folders merged."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        destination = target / entry.name
        if entry.is_dir() and destination.is_dir():
            _merge(entry, destination)
        else:
            shutil.move(entry, destination)
