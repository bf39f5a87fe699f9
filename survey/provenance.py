"""Which code produced a result: the package version and, in a checkout, the git commit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import survey


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(survey.__file__).parent,
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return survey.__version__
    return f"{survey.__version__}+g{sha}"
