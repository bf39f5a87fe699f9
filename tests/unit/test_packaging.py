"""The layout the design fixes: three importable packages, and a `site/` that is never one."""

from __future__ import annotations

import importlib
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_packages_import() -> None:
    for name in ("survey", "classifiers", "db"):
        module = importlib.import_module(name)
        assert Path(module.__file__ or "").resolve().parent == ROOT / name


def test_site_folder_does_not_shadow_the_stdlib_site_module() -> None:
    import site

    assert not (ROOT / "site" / "__init__.py").exists()
    assert Path(site.__file__ or "").resolve().parent == Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert (ROOT / "site" / "mkdocs.yml").is_file()


def test_ci_runs_the_readme_test_command() -> None:
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    command = "bash scripts/install.sh --dev && .venv/bin/python -m pytest -q"
    assert command in readme and command in ci
