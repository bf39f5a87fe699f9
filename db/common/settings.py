"""Every environment variable and default of interp-survey, in one documented table.

``docs/settings.md`` is generated from :data:`SETTINGS` (``survey docs``), and a test keeps it
current. Code reads a setting through :func:`value`, never ``os.environ`` directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from db.common.errors import SurveyError


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
THREADS = Setting(
    "INTERP_SURVEY_THREADS", None,
    "torch threads per survey process (default: the cores this process may use, divided by "
    "`INTERP_SURVEY_PROCESSES`; a Ray task uses its `num_cpus`).",
)  # fmt: skip
PROCESSES = Setting(
    "INTERP_SURVEY_PROCESSES", "1",
    "How many survey processes share this machine's cores (e.g. nightly shards started side by side): "
    "each takes its share of threads, since oversubscribed threads spin.",
)  # fmt: skip
TEST_POSTGRES = Setting(
    "INTERP_SURVEY_TEST_POSTGRES", None,
    "Tests only: URL of a running PostgreSQL server for the PostgreSQL tests (`scripts/test.sh` starts one).",
)  # fmt: skip
ARTIFACTS = Setting(
    "INTERP_SURVEY_ARTIFACTS", None,
    "Tests only: where browser tests write screenshots (default `test-artifacts/`).",
)  # fmt: skip

SETTINGS: tuple[Setting, ...] = (DB, CATALOG, CACHE, THREADS, PROCESSES, TEST_POSTGRES, ARTIFACTS)


def value(setting: Setting) -> str | None:
    """The setting's value: the environment's when set and non-empty, else its default."""
    return os.environ.get(setting.name) or setting.default


def positive_int(setting: Setting) -> int | None:
    """The setting as a positive integer (None when unset); SurveyError otherwise."""
    text = value(setting)
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise SurveyError(f"{setting.name} must be a positive integer, not {text!r}")
    return int(text)


def thread_count() -> int:
    """Threads for this process: ``INTERP_SURVEY_THREADS``, else its share of the cores it may use."""
    explicit = positive_int(THREADS)
    if explicit is not None:
        return explicit
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // (positive_int(PROCESSES) or 1))


def cache_root() -> Path:
    """Where caches live: ``INTERP_SURVEY_CACHE``, else the user cache dir."""
    return Path(value(CACHE) or platformdirs.user_cache_dir("interp-survey"))


def settings_markdown() -> str:
    """The settings table as Markdown, for ``docs/settings.md``."""
    lines = [
        "# Settings",
        "",
        "Every environment variable interp-survey reads (`db/common/settings.py`).",
        "",
    ]
    lines += ["| variable | default | what it changes |", "|---|---|---|"]
    lines += [f"| `{s.name}` | {f'`{s.default}`' if s.default else '—'} | {s.help} |" for s in SETTINGS]
    return "\n".join(lines) + "\n"
