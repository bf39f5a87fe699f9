"""Which code produced a result: the package version, the git commit and whether the tree had
uncommitted changes, and the versions of the libraries that compute and load models."""

from __future__ import annotations

import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

PACKAGE = "interp-survey"
LIBRARIES = ("torch", "transformers", "gguf")
CHECKOUT = Path(__file__).resolve().parents[2]


def package_version() -> str:
    """The installed interp-survey version ("unknown" when it is not installed)."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def _git(*args: str) -> str | None:
    """A git command's output in the checkout the code runs from; None outside one."""
    try:
        return subprocess.run(
            ["git", *args], cwd=CHECKOUT, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    sha = _git("rev-parse", "--short", "HEAD")
    return f"{package_version()}+g{sha}" if sha else package_version()


def code_dirty() -> bool | None:
    """Whether the checkout has uncommitted changes to tracked files; None outside a checkout."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


@cache
def library_versions() -> dict[str, str]:
    """The installed version of each library a result depends on ("missing" when absent)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def provenance() -> dict[str, object]:
    """Everything a run records about the code that made it."""
    return {"code_version": code_version(), "code_dirty": code_dirty(), "libraries": library_versions()}
